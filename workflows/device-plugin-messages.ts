// Messages between NodeENI entities and the per-node device-plugin workflow. Pure.
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { DevicePluginConfig, DevicePluginEntry } from '../common/device-plugin.js';

/** An entity's complete wish for one node (level-triggered: it replaces what that owner sent before). */
export interface PublishEntries {
  /** The entity's workflow ID; answers go back to it. */
  owner: string;
  entries: DevicePluginEntry[];
  requestId: string;
}

export interface DevicePluginApplied {
  nodeName: string;
  requestId: string;
  /** The config on the node contains exactly what was asked, and the plugin serves it (or no plugin runs). */
  ok: boolean;
  podFound: boolean;
  restarted: boolean;
  message: string;
}

export interface DevicePluginView {
  nodeName: string;
  owners: Record<string, DevicePluginEntry[]>;
  applied?: DevicePluginConfig;
  lastResult?: DevicePluginApplied;
  restarts: number;
}

export const publishEntriesSignal = defineSignal<[PublishEntries]>('publishEntries');
export const devicePluginAppliedSignal = defineSignal<[DevicePluginApplied]>('devicePluginApplied');
export const devicePluginStateQuery = defineQuery<DevicePluginView>('devicePluginState');

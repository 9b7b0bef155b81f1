// Messages and options of the per-node resctrl workflow. Pure: shared with the watcher and tests.
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { ResctrlEvent, ResctrlState } from './resctrl-state.js';

export interface ResctrlOptions {
  groupPrefix: string;
  cleanupOnStart: boolean;
  /** 'monitor': a MON group under the root's mon_groups (uses RMIDs); 'control': a CTRL_MON group (uses CLOSIDs). */
  mode: 'monitor' | 'control';
  /** Periodic pass: late containers, exec'd processes, retries, metrics. */
  resyncSeconds: number;
  nodeAgentStartTimeoutMs: number;
  maxHistoryLength: number;
}

export interface ResctrlView {
  state: ResctrlState;
  events: ResctrlEvent[];
}

export const podsChangedSignal = defineSignal<[]>('podsChanged');
export const resctrlStateQuery = defineQuery<ResctrlView>('resctrlState');

// The entity workflow's durable state: plain JSON, carried across continue-as-new.
import type { LeakedENI } from '../common/types.js';
import type { ForceFinishRequest } from './messages.js';

/** What a successful provisioning produced for one attachment key. */
export interface ConfiguredAttachment {
  eniId: string;
  attachmentId: string;
  deviceIndex: number;
  macAddress: string;
  interfaceName: string;
  pciAddress?: string;
  mtu: number;
  generation: number;
  /** Set when the device was bound to a DPDK driver; needed to give it back to the kernel. */
  dpdk?: { driver: string; originalDriver: string; pciAddress: string };
}

/** What this entity last asked of a node's device plugin, and the answer. */
export interface DevicePluginState {
  /** JSON of the entries sent (sorted), to send only changes. */
  sent: string;
  requestId: string;
  answer?: { requestId: string; ok: boolean; podFound: boolean; message: string };
}

export interface FailureRecord {
  reason: string;
  message: string;
  generation: number;
  /** Epoch ms; until then the same generation is not retried (no create/delete loops). */
  retryAt: number;
  attempts: number;
}

export interface EntityOptions {
  /** Periodic re-read of everything, to catch drift nobody signalled. */
  resyncSeconds: number;
  /** Continue-as-new once history passes this length (Temporal also suggests it). */
  maxHistoryLength: number;
  /** Bound on a non-forced detach before Force is used. */
  detachTimeoutMs: number;
  /** How long a node-local step may wait for that node's agent before the node counts as gone. */
  nodeAgentStartTimeoutMs: number;
  /** First retry delay after a failed provisioning or teardown; doubles up to 30 minutes. */
  failureBackoffSeconds: number;
  clusterName: string;
}

export const DEFAULT_ENTITY_OPTIONS: EntityOptions = {
  resyncSeconds: 300,
  maxHistoryLength: 2000,
  detachTimeoutMs: 120_000,
  nodeAgentStartTimeoutMs: 120_000,
  failureBackoffSeconds: 60,
  clusterName: 'default',
};

export interface EntityState {
  seq: number;
  configured: Record<string, ConfiguredAttachment>;
  /** Keyed by attachment key (provisioning) or `eni:<id>` (teardown). */
  failures: Record<string, FailureRecord>;
  leaked: LeakedENI[];
  pendingForce: ForceFinishRequest[];
  devicePlugin: Record<string, DevicePluginState>;
}

export function emptyEntityState(): EntityState {
  return { seq: 0, configured: {}, failures: {}, leaked: [], pendingForce: [], devicePlugin: {} };
}

/** What the `state` query returns. */
export interface EntityView {
  state: EntityState;
  inFlight: { key: string; op: 'provision' | 'teardown'; workflowId: string; eniId?: string; node: string }[];
}

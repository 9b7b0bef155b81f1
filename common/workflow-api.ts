// The contract between the workflows and everything that talks to them
// (activities, the watcher, the CLI, tests): inputs, options, durable state,
// messages and results. Workflows and activities both import this module and
// never each other's runtime code, so there are no import cycles.
// Pure: no Node imports (workflow code imports it).
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { AttachmentKey } from './names.js';
import type { DevicePluginConfig, DevicePluginEntry } from './device-plugin.js';
import type { LeakedENI } from './types.js';
import type { LeakTagResult, ManagedEni, PassInstance, ResolvedSpec } from '../activities/ec2/ec2-activities.js';

// ---------------------------------------------------------------------------
// The reconcile loop every long-lived workflow runs (workflows/reconciler.ts)

/** Why the last pass failed; kept until a pass succeeds. */
export interface PassFailure {
  reason: string;
  message: string;
  /** Consecutive failed passes. */
  attempts: number;
  /** Epoch ms of the next try. */
  retryAt: number;
}

/** The loop's own durable part, carried across continue-as-new. */
export interface ReconcilerState {
  failure?: PassFailure;
}

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

// ---------------------------------------------------------------------------
// NodeENI entity

export interface ForceFinishRequest {
  /** Why the operator gives up on the remaining cleanup; recorded in status, an Event and an EC2 tag. */
  reason: string;
  /** Only the operations on this node; all of this NodeENI's when omitted. */
  node?: string;
}

export interface ForceFinishResult {
  /** The ENIs left behind in EC2, now tagged for the leaked-ENI sweeper. */
  leftBehind: string[];
}

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
  answer?: { requestId: string; ok: boolean; podFound: boolean; message: string; retrying?: boolean };
}

export interface FailureRecord {
  reason: string;
  message: string;
  generation: number;
  /** Epoch ms; until then the same generation is not retried (no create/delete loops). */
  retryAt: number;
  attempts: number;
}

/** A step a running child keeps retrying, as Temporal reports its pending activity. */
export interface StepRetry {
  activity: string;
  attempt: number;
  /** The failure's type: the EC2 or Kubernetes code. */
  reason: string;
  message: string;
  /** Epoch ms of the next attempt, when Temporal says. */
  nextRetryAt?: number;
}

/** A child workflow the entity started and has not heard the end of. Tracked by ID: it outlives continue-as-new. */
export interface ChildRecord {
  op: 'provision' | 'teardown';
  workflowId: string;
  /** Attachment key (provision, teardown of a keyed ENI) or `eni:<id>`. */
  key: string;
  eniId?: string;
  node: string;
  /** The instance the ENI belongs to, for the record of what a forced teardown left. */
  instanceId?: string;
  generation: number;
  /** Epoch ms. */
  startedAt: number;
  /** The step it keeps retrying, as last seen; reported once per distinct failure. */
  retrying?: StepRetry & { reported?: boolean };
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
  /** A provisioning that has not finished by then is undone and retried later. */
  provisionDeadlineSeconds: number;
  clusterName: string;
  /** At most this many provisioning and teardown children at once (Temporal limits pending children per workflow). */
  maxConcurrentChildren: number;
  /** At most this many rows in status.attachments; the rest are counted in status.attachmentsOmitted. */
  maxStatusAttachments: number;
  /** While children run, how often the entity asks Temporal whether one keeps retrying a step (to say so in status). */
  childCheckSeconds: number;
  /**
   * Children's reports pace the passes (a pass no sooner after the last one than it took) only while
   * at least this many children run: a few children get a pass per report at once, as one node's
   * Ready should; many make a pass per pass-time instead of passes back to back.
   */
  pacePassesFromChildren: number;
  /** Nodes one pass asks whether their interfaces drifted; a round over more is spread over passes (workflows/drift.ts). */
  driftNodesPerPass: number;
  /** Base URL of the Temporal UI; status.workflowURL links to the entity when set. */
  uiBaseUrl?: string;
}

/**
 * How long one workflow task of an entity may take. Temporal's 10 s default is too short for an
 * entity with a thousand attachments on a busy worker: its history holds megabytes of what the
 * passes read, a task that waits behind the children's tasks runs out, and the retry has to replay
 * the whole history first, which takes as long again. Set when the watcher starts the entity and
 * on every continue-as-new (a run started before keeps the default until it continues-as-new).
 */
export const ENTITY_WORKFLOW_TASK_TIMEOUT = '30s';

/**
 * The entity's Temporal task priority (1 is the highest, 3 the default). Its workflow tasks share the
 * control worker's queues, sticky queue included, with those of its up to thousands of children;
 * FIFO, a pass waits behind every child task queued before it. Ahead of them, the one workflow
 * that starts and paces the children is not the one kept waiting when a worker falls behind. (It
 * orders what is queued in matching; a Temporal server that is itself behind, as the benchmark's
 * single-shard dev server at 1,000 nodes, still delays every task.) Its activities inherit it;
 * continue-as-new keeps it. Set by the watcher when it starts the entity.
 */
export const ENTITY_PRIORITY = { priorityKey: 1 } as const;

export const DEFAULT_ENTITY_OPTIONS: EntityOptions = {
  resyncSeconds: 300,
  maxHistoryLength: 2000,
  detachTimeoutMs: 120_000,
  nodeAgentStartTimeoutMs: 120_000,
  failureBackoffSeconds: 60,
  provisionDeadlineSeconds: 900,
  clusterName: 'default',
  maxConcurrentChildren: 100,
  maxStatusAttachments: 500,
  childCheckSeconds: 30,
  pacePassesFromChildren: 10,
  driftNodesPerPass: 100,
};

export interface EntityState {
  seq: number;
  configured: Record<string, ConfiguredAttachment>;
  /** Keyed by attachment key (provisioning) or `eni:<id>` (teardown). */
  failures: Record<string, FailureRecord>;
  leaked: LeakedENI[];
  pendingForce: ForceFinishRequest[];
  devicePlugin: Record<string, DevicePluginState>;
  /** Running children by workflow ID. Absent in state written by v1 entities. */
  children?: Record<string, ChildRecord>;
  /** Outcomes reported by children, applied by the next pass. */
  finished?: ChildOutcome[];
  reconciler?: ReconcilerState;
  /** Attachments whose interface on the node no longer looks as configured (after a reboot, say), by attachment key. */
  drift?: Record<string, DriftRecord>;
  /** Nodes whose agent (re)started since the last pass: their interfaces are verified at once. */
  agentStarted?: string[];
  /**
   * The current round of drift checks (workflows/drift.ts), carried across continue-as-new so a new
   * run does not start another: when it started (epoch ms) and the nodes it has yet to ask.
   */
  driftRound?: { startedAt: number; pending: string[] };
  /** When the entity last asked Temporal how its children are doing (epoch ms), carried across continue-as-new. */
  childrenCheckedAt?: number;
  /**
   * What the last run had read of EC2, handed to the next run (with WORLD_CARRY_PATCH) so that a
   * run does not begin by reading every instance again; present only in continue-as-new input.
   */
  world?: CarriedWorld;
}

/** An entity run's read of EC2 in a form that survives continue-as-new. */
export interface CarriedWorld {
  /** Epoch ms of the last full read: the next one is due a resync later, as within a run. */
  fullAt: number;
  /** A signal from outside arrived after that read and no pass has read the world since. */
  outsideChanged: boolean;
  instances: PassInstance[];
  /** Network interfaces per instance type. */
  maxInterfaces: Record<string, number>;
  resolved?: { generation: number; byVpc: ResolvedSpec[] };
}

/** What a node's agent reported different from what was configured, and when. */
export interface DriftRecord {
  node: string;
  drift: InterfaceDrift[];
  /** Epoch ms. */
  at: number;
}

export function emptyEntityState(): EntityState {
  return { seq: 0, configured: {}, failures: {}, leaked: [], pendingForce: [], devicePlugin: {}, children: {}, finished: [], reconciler: {} };
}

export interface EntityInput {
  name: string;
  uid: string;
  options?: Partial<EntityOptions>;
  /** Carried across continue-as-new. */
  state?: EntityState;
}

/** What the `state` query returns. */
export interface EntityView {
  state: EntityState;
  inFlight: { key: string; op: 'provision' | 'teardown'; workflowId: string; eniId?: string; node: string }[];
}

// ---------------------------------------------------------------------------
// Provision and teardown children

export interface ProvisionInput {
  nodeEniName: string;
  nodeEniUid: string;
  clusterName: string;
  key: AttachmentKey;
  attachmentKey: string;
  securityGroupIds: string[];
  description?: string;
  preferredDeviceIndex: number;
  deleteOnTermination: boolean;
  mtu?: number;
  enableDPDK: boolean;
  dpdkDriver: string;
  /** When set, the device found by MAC must sit at this PCI address. */
  dpdkPCIAddress?: string;
  generation: number;
  nodeAgentStartTimeoutMs: number;
  detachTimeoutMs: number;
  /** Give up (undo, report) after this long. Absent in inputs written by v1 entities. */
  deadlineMs?: number;
  /** The entity's workflow ID, told the outcome by signal. Absent in inputs written by v1 entities. */
  reportTo?: string;
  /** How this ENI is configured on the node now, when an earlier provisioning of the same ENI succeeded (a spec change). */
  current?: ConfiguredAttachment;
  /**
   * What the entity's pass saw, so the child skips the describes it would make
   * (and runs its EC2 calls on the paced task queues). Absent in inputs written
   * before it was added: those children describe before each step.
   */
  observed?: ProvisionObserved;
  /** Re-apply the node steps to an ENI already configured (drift after a reboot): also re-bind a DPDK device. */
  repair?: boolean;
  /**
   * Record this child's Events after it reported, all in one local activity. A local activity holds
   * its workflow task open until it finishes, so an Event recorded as a step finished held back the
   * next step's command (and, the last one, the report) by a Kubernetes round trip. Set by entities
   * since it was added; such children also ask no patch (each patch is a marker and a search
   * attribute update per child). Absent: the Events are recorded as each step finishes.
   */
  eventsAfterReport?: boolean;
}

export interface ProvisionObserved {
  /** The ENI that carries this attachment key now; absent: none, create one. */
  eni?: {
    eniId: string;
    macAddress: string;
    securityGroupIds?: string[];
    attachment?: { attachmentId: string; instanceId: string; deviceIndex: number; status: string; deleteOnTermination: boolean };
  };
  /** The device index the pass chose on the instance, and how many interfaces it has of how many it may. */
  attach?: { deviceIndex: number; usedInterfaces: number; maxInterfaces?: number };
}

export interface TeardownInput {
  nodeEniName: string;
  nodeEniUid: string;
  eniId: string;
  nodeName?: string;
  macAddress: string;
  /** Present when the device is bound to a DPDK driver: give it back to the kernel first. */
  dpdk?: { driver: string; originalDriver: string; pciAddress: string; mtu: number };
  detachTimeoutMs: number;
  nodeAgentStartTimeoutMs: number;
  /** The entity's workflow ID, told the outcome by signal. Absent in inputs written by v1 entities. */
  reportTo?: string;
  /**
   * What the entity's pass saw of the ENI's attachment (`null`: none). When
   * present the EC2 calls run on the paced task queues and the detach needs no
   * describe first; absent in inputs written before it was added.
   */
  observed?: { attachment: { attachmentId: string; status: string } | null };
  /**
   * Record this child's Events after it reported, all in one local activity. A local activity holds
   * its workflow task open until it finishes, so an Event recorded as a step finished held back the
   * next step's command (and, the last one, the report) by a Kubernetes round trip. Set by entities
   * since it was added; such children also ask no patch (each patch is a marker and a search
   * attribute update per child). Absent: the Events are recorded as each step finishes.
   */
  eventsAfterReport?: boolean;
}

export type TeardownResult =
  | { eniId: string; outcome: 'deleted'; nodeStep: string }
  /** `gone`: EC2 no longer had the ENI when it was to be tagged (deleted just before the force), so nothing is left behind. */
  | { eniId: string; outcome: 'forced'; reason: string; nodeStep: string; gone?: true };

/**
 * Whether a tagLeaked result says the ENI was already gone. Results recorded before tagLeaked answered
 * are empty: read as found, which is what they were taken for.
 */
export function leakTagFoundGone(result: LeakTagResult | void | undefined): boolean {
  return result?.found === false;
}

/**
 * A provisioning or teardown workflow an entity has the control worker start for it
 * (activities/temporal/child-starter.ts): one activity starts a window of them, so the entity's
 * history holds one report per child instead of four events, and its pass waits for one answer
 * instead of a start confirmation per child.
 */
export type ChildStart = { workflowId: string; summary: string; nodeEniName: string; nodeName: string } & (
  | { workflowType: 'provisionAttachment'; input: ProvisionInput }
  | { workflowType: 'teardownAttachment'; input: TeardownInput }
);

/** A child's last word to its entity: sent by the child itself, so it reaches whichever run of the entity is current. */
export type ChildOutcome =
  /**
   * `eni`: the ENI as the child last saw it in EC2 (attached, its subnet, security groups and
   * DeleteOnTermination as it set them), for the entity's next pass to take instead of reading it
   * again. Absent in reports of children on the original path and of older releases.
   */
  | { workflowId: string; op: 'provision'; ok: true; result: ConfiguredAttachment; eni?: ManagedEni }
  | { workflowId: string; op: 'teardown'; ok: true; result: TeardownResult }
  | { workflowId: string; op: 'provision' | 'teardown'; ok: false; reason: string; message: string };

// ---------------------------------------------------------------------------
// Per-node device-plugin workflow

export interface DevicePluginOptions {
  namespaces: string[];
  labelSelectors: string[];
  /** Quiet period after the last change before applying. */
  debounceMs: number;
  /** Longest a burst of changes can postpone applying. */
  maxDelayMs: number;
  nodeAgentStartTimeoutMs: number;
  restartTimeoutMs: number;
  maxHistoryLength: number;
  /** Also keep the config in this ConfigMap, key = node name (for plugin deployments that mount one). */
  configMap?: { namespace: string; name: string };
}

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
  /** Not an answer yet: applying failed and is retried; the device is still in the config. */
  retrying?: boolean;
}

export interface DevicePluginNodeInput {
  nodeName: string;
  options: DevicePluginOptions;
  owners?: Record<string, DevicePluginEntry[]>;
  applied?: DevicePluginConfig;
  restarts?: number;
  /** Requests not answered yet (carried across continue-as-new). */
  pending?: PublishEntries[];
  rejected?: Record<string, string[]>;
  lastResult?: DevicePluginApplied;
  /** The config on the node changed and the plugin has not been restarted with it yet. */
  restartOwed?: boolean;
  reconciler?: ReconcilerState;
}

export interface DevicePluginView {
  nodeName: string;
  owners: Record<string, DevicePluginEntry[]>;
  applied?: DevicePluginConfig;
  lastResult?: DevicePluginApplied;
  restarts: number;
  failure?: PassFailure;
}

// ---------------------------------------------------------------------------
// Per-node resctrl workflow

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

export type GroupState = { kind: 'Exists'; path: string } | { kind: 'Failed'; reason: string };
export type ContainerState = 'Partial' | 'Reconciled';

export interface PodRecord {
  uid: string;
  namespace: string;
  name: string;
  group: GroupState;
  containers: Record<string, ContainerState>;
  /** What the last event said; undefined until the first event for this pod. */
  announced?: string;
}

export type ResctrlEvent =
  | { type: 'AddOrUpdate'; podUid: string; groupState: string; totalContainers: number; reconciledContainers: number }
  | { type: 'Removed'; podUid: string };

export interface ResctrlState {
  pods: Record<string, PodRecord>;
  /** Cleanup at start happened (it runs once per node, never again on continue-as-new or a retry). */
  cleanedUp: boolean;
  reconciler?: ReconcilerState;
}

export interface ResctrlNodeInput {
  nodeName: string;
  options: ResctrlOptions;
  state?: ResctrlState;
}

export interface ResctrlView {
  state: ResctrlState;
  events: ResctrlEvent[];
  /** Why the last pass failed, until one succeeds. */
  failure?: PassFailure;
}

// ---------------------------------------------------------------------------
// Node drift: verifyInterfaces (a read-only node activity) and what it finds
// after a reboot (MTU and link state back to defaults, DPDK bindings undone)

/** What one attachment should look like on its node. */
export interface ExpectedInterface {
  macAddress: string;
  /** ConfiguredAttachment.mtu. Not checked while the device is bound to DPDK (it has no netdev then). */
  mtu: number;
  /** ConfiguredAttachment.dpdk: the device at pciAddress should be bound to driver. */
  dpdk?: { driver: string; pciAddress: string };
}

export interface VerifyInterfacesInput {
  expected: ExpectedInterface[];
}

export type InterfaceDrift =
  /** No netdev with the MAC and (DPDK) no device of it at the PCI address: detached, or not probed yet. */
  | { kind: 'missing' }
  /** The netdev's MTU (plain attachments only). */
  | { kind: 'mtu'; expected: number; actual: number }
  /** The netdev lacks IFF_UP (plain attachments only). */
  | { kind: 'down' }
  /**
   * The device is on another driver than expected: a DPDK device back on its kernel driver
   * (`actual` e.g. 'ena', as after a reboot), on no driver (null) or another DPDK driver;
   * or a plain attachment's device still bound to DPDK (`expected` its kernel driver).
   * `pciAddress` is where the device is now.
   */
  | { kind: 'driver'; expected: string; actual: string | null; pciAddress: string }
  /** Several device-backed netdevs carry the MAC: nothing to repair automatically. */
  | { kind: 'ambiguous'; interfaceNames: string[] };

export interface InterfaceCheck {
  /** The expected entry's MAC, normalized (lower case, colons). */
  macAddress: string;
  /** No drift. */
  ok: boolean;
  drift: InterfaceDrift[];
  /** What the node shows now (fields absent when there is nothing to read). */
  actual: { interfaceName?: string; pciAddress?: string; driver?: string; mtu?: number; up?: boolean };
}

export interface VerifyInterfacesResult {
  /** Every check ok. */
  ok: boolean;
  /** One per expected entry, in its order. */
  interfaces: InterfaceCheck[];
}

// ---------------------------------------------------------------------------
// Leaked-ENI sweeper (workflows/sweeper.ts), started by a Temporal Schedule

export interface SweepOptions {
  /** Only ENIs tagged with this cluster (the watcher's CLUSTER_NAME) are looked at. */
  clusterName: string;
  /** ENIs younger than this by their created-at tag are left alone; one without the tag is never swept. */
  graceSeconds: number;
  /** Report what would be deleted, delete nothing. */
  dryRun: boolean;
  /** ENIs per page: one describe, one ownership check and that page's deletes (default 200, 5 to 1000). */
  pageSize?: number;
  /** Entries kept in each list of the result; the counts stay exact (default 500). */
  maxListed?: number;
  /** Continue-as-new between pages once the history passes this (default 4000; sooner when Temporal suggests it). */
  maxHistoryLength?: number;
}

export interface SweepInput extends SweepOptions {
  /** Where a continued run picks up: the next page, and what the earlier runs found. */
  progress?: { nextToken: string; result: SweepResult };
}

/** Why an ENI was deleted (or, in a dry run, would be). */
export type SweepDeleteReason = 'Orphaned' | 'Leaked';
/** Why an ENI of ours was left alone. */
export type SweepSkipReason = 'InUse' | 'NoCreatedAt' | 'TooYoung' | 'Owned';

export interface SweptEni {
  eniId: string;
  why: SweepDeleteReason;
  nodeEniName?: string;
  nodeEniUid?: string;
  node?: string;
  createdAt?: string;
  /** The reason force-finish wrote on the leaked tag. */
  leakedReason?: string;
  /** It was gone already when the sweeper deleted it. */
  alreadyGone?: boolean;
}

export interface SkippedEni {
  eniId: string;
  reason: SweepSkipReason;
  detail: string;
}

export interface FailedEni {
  eniId: string;
  reason: string;
  message: string;
}

export interface SweepResult {
  clusterName: string;
  dryRun: boolean;
  graceSeconds: number;
  startedAt: string;
  finishedAt?: string;
  /** ENIs with our managed-by and cluster tags that were looked at. */
  examined: number;
  pages: number;
  /** Deleted ENIs; in a dry run, the ones that would be. */
  deleted: SweptEni[];
  skipped: SkippedEni[];
  failed: FailedEni[];
  counts: { deleted: number; failed: number; skipped: Partial<Record<SweepSkipReason, number>> };
  /** A list reached maxListed: the counts are complete, the lists are not. */
  truncated: boolean;
}

// ---------------------------------------------------------------------------
// Messages

/** "Something about this NodeENI or its nodes changed": the entity re-reads everything. */
export const reconcileSignal = defineSignal<[]>('reconcile');
/** A node's agent (re)started: whatever happened to the node while it was away, verify its interfaces now. */
export const nodeAgentStartedSignal = defineSignal<[{ nodeName: string }]>('nodeAgentStarted');
/** Operator escape hatch for a stuck teardown or provisioning: acknowledged, validated, auditable. */
export const forceFinishUpdate = defineUpdate<ForceFinishResult, [ForceFinishRequest]>('forceFinish');
/** The same request as a Signal, for tools that cannot send Updates. */
export const forceFinishSignal = defineSignal<[ForceFinishRequest]>('forceFinishSignal');
/** A child's own force-finish (the entity forwards requests to it). */
export const childForceSignal = defineSignal<[ForceFinishRequest]>('forceFinish');
/** A child tells its entity how it ended. */
export const childFinishedSignal = defineSignal<[ChildOutcome]>('childFinished');
export const stateQuery = defineQuery<EntityView>('state');

export const publishEntriesSignal = defineSignal<[PublishEntries]>('publishEntries');
export const devicePluginAppliedSignal = defineSignal<[DevicePluginApplied]>('devicePluginApplied');
export const devicePluginStateQuery = defineQuery<DevicePluginView>('devicePluginState');
/** "The node changed (or went)": the device-plugin workflow looks again. */
export const devicePluginRecheckSignal = defineSignal<[]>('recheck');

export const podsChangedSignal = defineSignal<[]>('podsChanged');
export const resctrlStateQuery = defineQuery<ResctrlView>('resctrlState');

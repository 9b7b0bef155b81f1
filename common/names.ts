// Names shared by workflows, activities, the watcher, the CLI and tests.
// Pure module: no Node imports, so workflow code may import it.

export const API_GROUP = 'networking.k8s.aws';
export const API_VERSION = 'v1alpha1';
export const NODEENI_PLURAL = 'nodeenis';
export const NODEENI_KIND = 'NodeENI';
export const FINALIZER = 'nodeeni.networking.k8s.aws/finalizer';

/** Task queue of the control worker (workflows, EC2 and Kubernetes activities). */
export const DEFAULT_CONTROL_TASK_QUEUE = 'nodeeni-control';

/**
 * EC2 calls have task queues of their own, one per mutating API (EC2 keeps a
 * token bucket per API) and one for the describes a pass makes, so Temporal's
 * task-queue rate limit paces each of them across every worker.
 */
export const EC2_APIS = ['create', 'attach', 'modify', 'detach', 'delete', 'read'] as const;
export type Ec2Api = (typeof EC2_APIS)[number];

export function ec2TaskQueue(controlQueue: string, api: Ec2Api): string {
  return `${controlQueue}-ec2-${api}`;
}

/** Per-node task queue, served only by the node agent running on that node. */
export function nodeTaskQueue(nodeName: string): string {
  return `node-${nodeName}`;
}

/** One entity workflow per NodeENI object; the UID makes a re-created object a new entity. */
export function entityWorkflowId(name: string, uid: string): string {
  return `nodeeni/${name}/${uid}`;
}

/** Stable identity of one desired ENI: (NodeENI uid, node, instance, subnet). */
export interface AttachmentKey {
  nodeName: string;
  instanceId: string;
  subnetId: string;
}

export function attachmentKeyString(uid: string, k: AttachmentKey): string {
  return `${uid}/${k.nodeName}/${k.instanceId}/${k.subnetId}`;
}

export function childWorkflowId(entityId: string, op: 'provision' | 'teardown', k: AttachmentKey, seq: number): string {
  return `${entityId}/${op}/${k.nodeName}/${k.subnetId}/${seq}`;
}

/**
 * What child workflow IDs start with: `nodeeni/<name>`, short enough to leave the UI's
 * list readable (the entity's own ID adds the UID; children of v2 entities start with it).
 * Unique without the UID: teardowns are per ENI, and a re-created NodeENI's entity only
 * starts after the old one, which waits for its children, has ended.
 */
export function childIdPrefix(nodeEniName: string): string {
  return `nodeeni/${nodeEniName}`;
}

/** One provisioning attempt: a new ID (and so a new EC2 ClientToken) per attempt. `prefix`: childIdPrefix (or a v2 entity's ID). */
export function provisionWorkflowId(prefix: string, k: AttachmentKey, seq: number): string {
  return `${prefix}/provision/${k.nodeName}/${k.subnetId}/${seq}`;
}

/** At most one teardown of an ENI runs at a time: the ID is the ENI's. */
export function teardownWorkflowId(prefix: string, nodeName: string, eniId: string): string {
  return `${prefix}/teardown/${nodeName}/${eniId}`;
}

/** EC2 tags written on every ENI we create; adoption and the leak sweeper key on them. */
export const TAG = {
  managedBy: 'nodeeni.networking.k8s.aws/managed-by',
  cluster: 'nodeeni.networking.k8s.aws/cluster',
  nodeEniName: 'nodeeni.networking.k8s.aws/nodeeni',
  nodeEniUid: 'nodeeni.networking.k8s.aws/uid',
  node: 'nodeeni.networking.k8s.aws/node',
  instanceId: 'nodeeni.networking.k8s.aws/instance-id',
  subnetId: 'nodeeni.networking.k8s.aws/subnet-id',
  attachmentKey: 'nodeeni.networking.k8s.aws/attachment-key',
  createdAt: 'nodeeni.networking.k8s.aws/created-at',
  leaked: 'nodeeni.networking.k8s.aws/leaked',
  /** Set when we adopted an ENI another controller created (value: which one). */
  adoptedFrom: 'nodeeni.networking.k8s.aws/adopted-from',
  /** VPC CNI's ipamd leaves ENIs with this tag alone. */
  vpcCniNoManage: 'node.k8s.amazonaws.com/no_manage',
} as const;

export const MANAGED_BY_VALUE = 'nodeeni-controller';

/**
 * Tags the Go "AWS Multi-ENI Controller" (the system this one replaces) puts on
 * every ENI it creates (CreateNetworkInterface TagSpecifications). No cluster,
 * NodeENI UID or instance tag: `subnetId` only since its multi-subnet release.
 * Migration adopts ENIs by them (workflows/go-migration.ts).
 */
export const GO_CONTROLLER_TAG = {
  managedBy: 'kubernetes.io/cluster/managed-by',
  nodeEni: 'NodeENI',
  node: 'Node',
  subnetId: 'SubnetID',
} as const;
export const GO_CONTROLLER_MANAGED_BY_VALUE = 'nodeeni-controller';
/** Value of TAG.adoptedFrom on ENIs adopted from the Go controller. */
export const GO_CONTROLLER_NAME = 'aws-multi-eni-controller';

/** Node labels used to place a node. */
export const ZONE_LABEL = 'topology.kubernetes.io/zone';

/**
 * The leaked-ENI sweeper's Temporal Schedule, created by the control worker
 * (SWEEP_SCHEDULE_ID overrides it: installations sharing a namespace need one each).
 * Its runs get this ID plus the time; `nodeeni sweep` runs get `<id>/manual/<time>`.
 */
export const DEFAULT_SWEEPER_SCHEDULE_ID = 'nodeeni-sweeper';

export function manualSweepWorkflowId(scheduleId: string, at: Date): string {
  return `${scheduleId}/manual/${at.toISOString()}`;
}

/** One device-plugin workflow per node: it owns that node's SR-IOV device plugin config. */
export function devicePluginWorkflowId(nodeName: string): string {
  return `deviceplugin/${nodeName}`;
}

/** One resctrl workflow per node: the per-pod groups of that node's pods. */
export function resctrlWorkflowId(nodeName: string): string {
  return `resctrl/${nodeName}`;
}

/** A pass re-reads at most this many reported ENIs by id (one DescribeNetworkInterfaces: EC2 takes 200 values per filter); more, and it lists them all. */
export const MAX_ENIS_PER_NARROW_READ = 200;

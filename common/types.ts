// The NodeENI API as TypeScript types. The CRD schema in deploy/crds is the
// validating source of truth; these types mirror it.

export interface NodeENISpec {
  nodeSelector: Record<string, string>;
  subnetID?: string;
  subnetIDs?: string[];
  subnetName?: string;
  subnetNames?: string[];
  securityGroupIDs?: string[];
  securityGroupNames?: string[];
  deviceIndex?: number;
  deleteOnTermination?: boolean;
  description?: string;
  mtu?: number;
  enableDPDK?: boolean;
  dpdkDriver?: string;
  dpdkResourceName?: string;
  dpdkPCIAddress?: string;
}

export type AttachmentPhase = 'Pending' | 'Creating' | 'Attaching' | 'Configuring' | 'Ready' | 'Failed' | 'Detaching' | 'Deleting' | 'Leaked';

export interface ENIAttachmentStatus {
  nodeID: string;
  instanceID: string;
  eniID?: string;
  attachmentID?: string;
  subnetID: string;
  subnetCIDR?: string;
  mtu?: number;
  deviceIndex?: number;
  interfaceName?: string;
  pciAddress?: string;
  macAddress?: string;
  phase: AttachmentPhase;
  message?: string;
  dpdkBound?: boolean;
  dpdkDriver?: string;
  dpdkResourceName?: string;
  dpdkPCIAddress?: string;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface LeakedENI {
  eniID: string;
  nodeID: string;
  instanceID: string;
  reason: string;
}

export interface NodeENIStatus {
  /** The entity workflow that owns this object. */
  workflowID?: string;
  /** Its page in the Temporal UI, when the UI address is configured. */
  workflowURL?: string;
  observedGeneration?: number;
  desiredCount?: number;
  readyCount?: number;
  attachments?: ENIAttachmentStatus[];
  /** Rows left out of `attachments` to bound the object's size (rows that are not Ready are listed first). */
  attachmentsOmitted?: number;
  leakedENIs?: LeakedENI[];
  conditions?: Condition[];
}

export interface NodeENIObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    uid: string;
    generation?: number;
    resourceVersion?: string;
    deletionTimestamp?: string;
    finalizers?: string[];
    labels?: Record<string, string>;
  };
  spec: NodeENISpec;
  status?: NodeENIStatus;
}

// EC2 side of the leaked-ENI sweeper: one page of the ENIs carrying our
// managed-by and cluster tags, reduced to what the sweep decides on, so a
// cluster with thousands of ENIs is read page by page and every activity
// result stays small. Deleting reuses the reconciler's deleteEni (NotFound is
// done), on the paced delete queue.
import { DescribeNetworkInterfacesCommand, type EC2Client, type NetworkInterface } from '@aws-sdk/client-ec2';
import { MANAGED_BY_VALUE, TAG } from '../../common/names.js';
import { ec2Call } from './errors.js';

/** What the sweep needs to know of one ENI. */
export interface SweepCandidate {
  eniId: string;
  /** EC2's status: only `available` ENIs are ever deleted. */
  status: string;
  /** The instance it is attached to, when it is. */
  attachedTo?: string;
  nodeEniUid?: string;
  nodeEniName?: string;
  node?: string;
  /** The created-at tag, as written (ISO time). */
  createdAt?: string;
  /** The leaked tag's value (the force-finish reason), when present. */
  leaked?: string;
}

export interface SweepPage {
  enis: SweepCandidate[];
  /** Absent on the last page. */
  nextToken?: string;
}

function tag(ni: NetworkInterface, key: string): string | undefined {
  return ni.TagSet?.find((t) => t.Key === key)?.Value;
}

// Absent tags stay undefined, which the JSON payload leaves out.
function candidate(ni: NetworkInterface): SweepCandidate {
  const attachment = ni.Attachment && ni.Attachment.Status !== 'detached' ? ni.Attachment : undefined;
  return {
    eniId: ni.NetworkInterfaceId!,
    status: ni.Status ?? 'unknown',
    attachedTo: attachment?.InstanceId,
    nodeEniUid: tag(ni, TAG.nodeEniUid),
    nodeEniName: tag(ni, TAG.nodeEniName),
    node: tag(ni, TAG.node),
    createdAt: tag(ni, TAG.createdAt),
    leaked: tag(ni, TAG.leaked),
  };
}

export function createSweeperEc2Activities({ ec2 }: { ec2: EC2Client }) {
  return {
    /**
     * One page of this cluster's ENIs (our managed-by tag and its cluster tag,
     * every status: an in-use ENI is reported, never deleted). EC2 does the
     * tag filtering, so ENIs of other tools and other clusters are never read.
     */
    async listSweepCandidates(input: { clusterName: string; pageSize: number; nextToken?: string }): Promise<SweepPage> {
      const res = await ec2Call('DescribeNetworkInterfaces (sweep)', () =>
        ec2.send(
          new DescribeNetworkInterfacesCommand({
            Filters: [
              { Name: `tag:${TAG.managedBy}`, Values: [MANAGED_BY_VALUE] },
              { Name: `tag:${TAG.cluster}`, Values: [input.clusterName] },
            ],
            MaxResults: Math.min(1000, Math.max(5, input.pageSize)),
            NextToken: input.nextToken,
          }),
        ),
      );
      const enis = (res.NetworkInterfaces ?? []).filter((ni) => ni.NetworkInterfaceId).map(candidate);
      return { enis, ...(res.NextToken ? { nextToken: res.NextToken } : {}) };
    },
  };
}

export type SweeperEc2Activities = ReturnType<typeof createSweeperEc2Activities>;

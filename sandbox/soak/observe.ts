// What the soak reads to judge the system, never through the fault proxy:
// EC2 straight from moto, NodeENIs from the API server, workflows from Temporal.
import { DescribeNetworkInterfacesCommand, type EC2Client, type NetworkInterface } from '@aws-sdk/client-ec2';
import type { CustomObjectsApi } from '@kubernetes/client-node';
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import { API_GROUP, API_VERSION, NODEENI_PLURAL, TAG } from '../../common/names.js';
import type { NodeENIObject } from '../../common/types.js';

/** The workflows that must run for as long as their subject exists and never fail. */
export const LONG_LIVED_TYPES = ['nodeEniEntity', 'devicePluginNode', 'resctrlNode'] as const;

export interface OurEni {
  id: string;
  uid?: string;
  nodeEniName?: string;
  node?: string;
  instanceTag?: string;
  subnetId: string;
  attachmentKey?: string;
  leaked?: string;
  status?: string;
  attachment?: { instanceId?: string; status?: string; deviceIndex?: number; attachmentId?: string };
  securityGroupIds: string[];
}

const tag = (ni: NetworkInterface, key: string) => ni.TagSet?.find((t) => t.Key === key)?.Value;

function toOurEni(ni: NetworkInterface): OurEni {
  return {
    id: ni.NetworkInterfaceId ?? '',
    uid: tag(ni, TAG.nodeEniUid),
    nodeEniName: tag(ni, TAG.nodeEniName),
    node: tag(ni, TAG.node),
    instanceTag: tag(ni, TAG.instanceId),
    subnetId: ni.SubnetId ?? '',
    attachmentKey: tag(ni, TAG.attachmentKey),
    leaked: tag(ni, TAG.leaked),
    status: ni.Status,
    attachment: ni.Attachment
      ? { instanceId: ni.Attachment.InstanceId, status: ni.Attachment.Status, deviceIndex: ni.Attachment.DeviceIndex, attachmentId: ni.Attachment.AttachmentId }
      : undefined,
    securityGroupIds: (ni.Groups ?? []).map((g) => g.GroupId ?? '').sort(),
  };
}

/** Every ENI in moto that carries one of our tags (managed-by or a NodeENI uid). */
export async function listOurEnis(moto: EC2Client, ids?: string[]): Promise<OurEni[]> {
  const out: OurEni[] = [];
  let nextToken: string | undefined;
  do {
    const page = await moto.send(new DescribeNetworkInterfacesCommand({
      ...(ids ? { NetworkInterfaceIds: ids } : {}),
      ...(nextToken ? { NextToken: nextToken } : {}),
    }));
    for (const ni of page.NetworkInterfaces ?? []) {
      if ((ni.TagSet ?? []).some((t) => t.Key === TAG.managedBy || t.Key === TAG.nodeEniUid)) out.push(toOurEni(ni));
    }
    nextToken = page.NextToken;
  } while (nextToken);
  return out;
}

/** The ENIs (by id) that still exist; ids moto does not know are left out. */
export async function stillExisting(moto: EC2Client, ids: string[]): Promise<OurEni[]> {
  const all = await listOurEnis(moto);
  const wanted = new Set(ids);
  return all.filter((e) => wanted.has(e.id));
}

export async function listNodeEnis(custom: CustomObjectsApi, labelSelector?: string): Promise<NodeENIObject[]> {
  const res = (await custom.listClusterCustomObject({ group: API_GROUP, version: API_VERSION, plural: NODEENI_PLURAL, labelSelector })) as { items: NodeENIObject[] };
  return res.items;
}

export async function getNodeEni(custom: CustomObjectsApi, name: string): Promise<NodeENIObject | undefined> {
  try {
    return (await custom.getClusterCustomObject({ group: API_GROUP, version: API_VERSION, plural: NODEENI_PLURAL, name })) as NodeENIObject;
  } catch (err) {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  }
}

/** Duplicate attachment keys among ENIs not tagged leaked. */
export function duplicateKeys(enis: OurEni[]): Map<string, OurEni[]> {
  const byKey = new Map<string, OurEni[]>();
  for (const e of enis) {
    if (e.leaked !== undefined || e.attachmentKey === undefined) continue;
    byKey.set(e.attachmentKey, [...(byKey.get(e.attachmentKey) ?? []), e]);
  }
  return new Map([...byKey].filter(([, list]) => list.length > 1));
}

const longLivedQuery = (statuses: string[]) =>
  `(${LONG_LIVED_TYPES.map((t) => `WorkflowType = '${t}'`).join(' OR ')}) AND (${statuses.map((s) => `ExecutionStatus = '${s}'`).join(' OR ')})`;

/** Long-lived workflow runs that ended Failed, Terminated or TimedOut. */
export async function failedLongLived(client: Client): Promise<WorkflowExecutionInfo[]> {
  const out: WorkflowExecutionInfo[] = [];
  for await (const wf of client.workflow.list({ query: longLivedQuery(['Failed', 'Terminated', 'TimedOut']) })) out.push(wf);
  return out;
}

export interface HistoryMax {
  events: number;
  workflowId: string;
  runId: string;
  type: string;
}

/**
 * The longest history among the given executions: closed runs from
 * visibility, running ones from DescribeWorkflowExecution (visibility does not
 * keep the length of a running workflow current).
 */
export async function longestHistory(client: Client, query: string): Promise<{ max?: HistoryMax; scanned: number }> {
  let max: HistoryMax | undefined;
  let scanned = 0;
  for await (const wf of client.workflow.list({ query })) {
    scanned++;
    let events = wf.historyLength;
    if (wf.status.name === 'RUNNING') {
      try {
        events = (await client.workflow.getHandle(wf.workflowId, wf.runId).describe()).historyLength;
      } catch {
        continue;
      }
    }
    if (!max || events > max.events) max = { events, workflowId: wf.workflowId, runId: wf.runId, type: wf.type };
  }
  return { max, scanned };
}

export interface FailingPasses {
  type: string;
  workflowId: string;
  runId: string;
  reason: string;
  message: string;
  attempts: number;
}

interface PassFailureView {
  reason: string;
  message: string;
  attempts: number;
}

/** Each long-lived type's query and where its reconcile loop's last failure sits in the answer. */
const FAILURE_OF: Record<(typeof LONG_LIVED_TYPES)[number], { query: string; failure: (view: unknown) => PassFailureView | undefined }> = {
  nodeEniEntity: { query: 'state', failure: (v) => (v as { state?: { reconciler?: { failure?: PassFailureView } } }).state?.reconciler?.failure },
  devicePluginNode: { query: 'devicePluginState', failure: (v) => (v as { failure?: PassFailureView }).failure },
  resctrlNode: { query: 'resctrlState', failure: (v) => (v as { failure?: PassFailureView }).failure },
};

/**
 * Running long-lived workflows whose reconcile loop is failing right now (its
 * last pass failed and it is backing off), by their own queries. A workflow
 * that does not answer is reported as failing with reason `QueryFailed`.
 */
export async function failingLongLived(client: Client): Promise<FailingPasses[]> {
  const out: FailingPasses[] = [];
  const query = `(${LONG_LIVED_TYPES.map((t) => `WorkflowType = '${t}'`).join(' OR ')}) AND ExecutionStatus = 'Running'`;
  for await (const wf of client.workflow.list({ query })) {
    const how = FAILURE_OF[wf.type as (typeof LONG_LIVED_TYPES)[number]];
    if (!how) continue;
    try {
      const f = how.failure(await client.workflow.getHandle(wf.workflowId, wf.runId).query(how.query));
      if (f) out.push({ type: wf.type, workflowId: wf.workflowId, runId: wf.runId, reason: f.reason, message: f.message, attempts: f.attempts });
    } catch (err) {
      // Closed meanwhile: not failing.
      const d = await client.workflow.getHandle(wf.workflowId, wf.runId).describe().catch(() => undefined);
      if (d?.status.name !== 'RUNNING') continue;
      out.push({ type: wf.type, workflowId: wf.workflowId, runId: wf.runId, reason: 'QueryFailed', message: err instanceof Error ? err.message : String(err), attempts: 0 });
    }
  }
  return out;
}

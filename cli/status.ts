// `nodeeni status`: every NodeENI next to what EC2 holds for it (by its UID
// tag) and what its entity workflow is doing, one row each. The three views
// are read independently, so a row shows a disagreement between them (ENIs
// in EC2 but no workflow running, say) instead of hiding it.
import type { EC2Client, NetworkInterface } from '@aws-sdk/client-ec2';
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { enisByNodeEniUid } from '../activities/ec2/eni-lookup.js';
import { listNodeEnis } from '../activities/kube/nodeeni-owners.js';
import { entityWorkflowId, TAG } from '../common/names.js';
import type { NodeENIObject } from '../common/types.js';
import { stateQuery, type EntityView } from '../common/workflow-api.js';
import { table } from './table.js';

export interface StatusRow {
  name: string;
  /** The Ready condition's status (`Unknown` before the first status write). */
  ready: string;
  readyCount: number;
  desiredCount: number;
  /** ENIs in EC2 with this NodeENI's UID tag, leaked ones included. */
  enis: number;
  leaked: number;
  workflowId: string;
  /** `running`, `closed (<status>)` or `none`. */
  workflow: string;
  /** Provisioning and teardown children running now; undefined when the state query could not be answered. */
  inFlight?: number;
  /** Failed provisionings and teardowns waiting for their retry, plus a failing reconcile pass. */
  failing?: number;
  /** Why the state is missing (no control worker answering, say). */
  note?: string;
}

export interface StatusSources {
  client: Client;
  kc: KubeConfig;
  ec2: EC2Client;
  /** Only the NodeENIs with these labels (`key=value,...`). */
  labelSelector?: string;
  /** How long a state query may take before the row says so (default 5000 ms). */
  queryTimeoutMs?: number;
}

/** The entity's state, or why there is none; a query nobody answers gives up after `timeoutMs`. */
export async function entityState(client: Client, workflowId: string, timeoutMs: number): Promise<{ workflow: string; view?: EntityView; note?: string }> {
  const handle = client.workflow.getHandle(workflowId);
  try {
    const { status } = await handle.describe();
    if (status.name !== 'RUNNING') return { workflow: `closed (${status.name.toLowerCase()})` };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return { workflow: 'none' };
    throw err;
  }
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer to the state query within ${timeoutMs} ms: is a control worker running?`)), timeoutMs);
  });
  try {
    return { workflow: 'running', view: await Promise.race([handle.query(stateQuery), timeout]) };
  } catch (err) {
    return { workflow: 'running', note: err instanceof Error ? err.message : String(err) };
  } finally {
    clearTimeout(timer);
  }
}

export function failingCount(view: EntityView): number {
  return Object.keys(view.state.failures).length + (view.state.reconciler?.failure ? 1 : 0);
}

async function rowOf(o: NodeENIObject, enis: NetworkInterface[], src: StatusSources): Promise<StatusRow> {
  const workflowId = entityWorkflowId(o.metadata.name, o.metadata.uid);
  const { workflow, view, note } = await entityState(src.client, workflowId, src.queryTimeoutMs ?? 5000);
  return {
    name: o.metadata.name,
    ready: o.status?.conditions?.find((c) => c.type === 'Ready')?.status ?? 'Unknown',
    readyCount: o.status?.readyCount ?? 0,
    desiredCount: o.status?.desiredCount ?? 0,
    enis: enis.length,
    leaked: enis.filter((ni) => ni.TagSet?.some((t) => t.Key === TAG.leaked)).length,
    workflowId,
    workflow,
    ...(view ? { inFlight: view.inFlight.length, failing: failingCount(view) } : {}),
    ...(note ? { note } : {}),
  };
}

export async function clusterStatus(src: StatusSources): Promise<StatusRow[]> {
  const objects = (await listNodeEnis(src.kc.makeApiClient(CustomObjectsApi), src.labelSelector)).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  const enis = await enisByNodeEniUid(src.ec2, objects.map((o) => o.metadata.uid));
  return Promise.all(objects.map((o) => rowOf(o, enis.get(o.metadata.uid) ?? [], src)));
}

export function statusTable(rows: StatusRow[]): string {
  if (rows.length === 0) return 'No NodeENIs.';
  const n = (v: number | undefined) => (v === undefined ? '?' : String(v));
  const body = table(
    ['NAME', 'READY', 'DESIRED', 'ENIs', 'IN-FLIGHT', 'FAILING', 'WORKFLOW'],
    rows.map((r) => [r.name, `${r.ready} ${r.readyCount}/${r.desiredCount}`, String(r.desiredCount), r.leaked ? `${r.enis} (${r.leaked} leaked)` : String(r.enis), n(r.inFlight), n(r.failing), `${r.workflowId} (${r.workflow})`]),
  );
  const notes = rows.filter((r) => r.note).map((r) => `${r.name}: ${r.note}`);
  return notes.length > 0 ? `${body}\n\n${notes.join('\n')}` : body;
}

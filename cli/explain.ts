// `nodeeni explain NAME`: why a NodeENI is not Ready, from its status and its
// entity workflow: the failing reconcile pass and steps with their reasons,
// attempts and next retry, the children in flight and the step each one keeps
// retrying (asked of Temporal, live), what a force-finish would leave behind,
// and the exact command to run it.
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { Client } from '@temporalio/client';
import { API_GROUP, API_VERSION, entityWorkflowId, NODEENI_PLURAL } from '../common/names.js';
import type { Condition, ENIAttachmentStatus, LeakedENI, NodeENIObject } from '../common/types.js';
import { retryOf } from '../activities/temporal/child-status.js';
import type { FailureRecord, PassFailure, StepRetry } from '../common/workflow-api.js';
import { entityState } from './status.js';
import { when } from './table.js';

export interface Explanation {
  name: string;
  uid: string;
  deleting: boolean;
  ready?: Condition;
  /** Degraded or Progressing when True: what the status itself says is going on. */
  conditions: Condition[];
  readyCount: number;
  desiredCount: number;
  workflowId: string;
  /** `running`, `closed (<status>)` or `none`. */
  workflow: string;
  /** Why the entity's state is missing, when it is. */
  note?: string;
  passFailure?: PassFailure;
  failures: Array<FailureRecord & { what: string }>;
  inFlight: Array<{ op: 'provision' | 'teardown'; workflowId: string; node: string; eniId?: string; step?: StepRetry }>;
  /** status.attachments rows that are not Ready. */
  attachments: ENIAttachmentStatus[];
  /** The ENIs a force-finish would leave in EC2 (tagged leaked, for the sweeper). */
  wouldLeave: string[];
  /** Provisionings a force-finish would stop (and undo). */
  wouldStop: number;
  leaked: LeakedENI[];
  /** The commands, when there is something to force-finish. */
  forceFinish?: { nodeeni: string; temporal: string };
}

/** At most this many children are described (one call each): the first ones tell the story. */
const MAX_DESCRIBED = 20;

/** What a running child keeps retrying, asked of Temporal now (the entity's own view is up to a check interval old). */
async function stepOf(client: Client, workflowId: string): Promise<StepRetry | undefined> {
  const { raw } = await client.workflow.getHandle(workflowId).describe();
  return retryOf(raw.pendingActivities);
}

/** `eni:<id>` is a teardown; an attachment key is `<uid>/<node>/<instance>/<subnet>`. */
function describeKey(key: string): string {
  if (key.startsWith('eni:')) return `teardown of ${key.slice(4)}`;
  const [, node, , subnet] = key.split('/');
  return `provisioning on ${node ?? '?'} in ${subnet ?? '?'}`;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export async function explainNodeEni(src: { client: Client; kc: KubeConfig; name: string; queryTimeoutMs?: number }): Promise<Explanation> {
  const custom = src.kc.makeApiClient(CustomObjectsApi);
  let o: NodeENIObject;
  try {
    o = (await custom.getClusterCustomObject({ group: API_GROUP, version: API_VERSION, plural: NODEENI_PLURAL, name: src.name })) as NodeENIObject;
  } catch (err) {
    if ((err as { code?: number }).code === 404) throw new Error(`NodeENI ${src.name} does not exist`);
    throw err;
  }
  const workflowId = entityWorkflowId(o.metadata.name, o.metadata.uid);
  const { workflow, view, note } = await entityState(src.client, workflowId, src.queryTimeoutMs ?? 5000);
  const conditions = o.status?.conditions ?? [];
  const attachments = (o.status?.attachments ?? []).filter((a) => a.phase !== 'Ready');
  const inFlight = await Promise.all((view?.inFlight ?? []).map(async (c, i) => ({
    op: c.op, workflowId: c.workflowId, node: c.node, eniId: c.eniId,
    step: i < MAX_DESCRIBED ? await stepOf(src.client, c.workflowId).catch(() => undefined) : undefined,
  })));
  const failures = Object.entries(view?.state.failures ?? {}).map(([key, f]) => ({ ...f, what: describeKey(key) }));
  const leaked = o.status?.leakedENIs ?? [];
  const leakedIds = new Set(leaked.map((l) => l.eniID));
  // What the entity's last pass was removing (its status rows), what is being torn down now, what failed to be.
  const wouldLeave = [...new Set([
    ...attachments.filter((a) => a.phase === 'Detaching' || a.phase === 'Deleting').map((a) => a.eniID),
    ...inFlight.filter((c) => c.op === 'teardown').map((c) => c.eniId),
    ...Object.keys(view?.state.failures ?? {}).filter((k) => k.startsWith('eni:')).map((k) => k.slice(4)),
  ].filter((id): id is string => !!id && !leakedIds.has(id)))].sort();
  const wouldStop = inFlight.filter((c) => c.op === 'provision').length;
  const reason = '<why: ticket, decision>';
  return {
    name: o.metadata.name,
    uid: o.metadata.uid,
    deleting: o.metadata.deletionTimestamp !== undefined,
    ready: conditions.find((c) => c.type === 'Ready'),
    conditions: conditions.filter((c) => c.type !== 'Ready' && c.status === 'True'),
    readyCount: o.status?.readyCount ?? 0,
    desiredCount: o.status?.desiredCount ?? 0,
    workflowId, workflow, note,
    passFailure: view?.state.reconciler?.failure,
    failures, inFlight, attachments, wouldLeave, wouldStop, leaked,
    ...(wouldLeave.length > 0 || inFlight.length > 0 ? {
      forceFinish: {
        nodeeni: `nodeeni force-finish ${o.metadata.name} --reason "${reason}"`,
        temporal: `temporal workflow update execute --workflow-id ${shellQuote(workflowId)} --name forceFinish --input ${shellQuote(JSON.stringify({ reason }))}`,
      },
    } : {}),
  };
}

export function explainText(e: Explanation, now = Date.now()): string {
  const cond = (c: Condition) => `${c.type}=${c.status} (${c.reason}): ${c.message}`;
  const lines = [`NodeENI ${e.name} (uid ${e.uid})${e.deleting ? ', being deleted' : ''}: ${e.readyCount}/${e.desiredCount} attachments ready`];
  lines.push(e.ready ? cond(e.ready) : 'Ready: no status written yet');
  for (const c of e.conditions) lines.push(cond(c));
  lines.push(`entity workflow ${e.workflowId}: ${e.workflow}${e.note ? ` — ${e.note}` : ''}`);
  if (e.workflow === 'none' || e.workflow.startsWith('closed')) lines.push('  nothing reconciles this NodeENI now: is the watcher running? (it starts the workflow)');
  if (e.passFailure) {
    const f = e.passFailure;
    lines.push('', `reconcile pass failing: ${f.reason}: ${f.message}`, `  ${f.attempts} attempts in a row; next try at ${when(f.retryAt, now)}`);
  }
  if (e.failures.length > 0) {
    lines.push('', 'failing steps (retried after back-off):');
    for (const f of e.failures) lines.push(`  ${f.what}: ${f.reason}: ${f.message}`, `    attempts ${f.attempts}; next retry at ${when(f.retryAt, now)}`);
  }
  if (e.inFlight.length > 0) {
    lines.push('', 'in flight:');
    for (const c of e.inFlight) {
      lines.push(`  ${c.op}${c.eniId ? ` of ${c.eniId}` : ''} on ${c.node || 'unknown'}: workflow ${c.workflowId}`);
      if (c.step) lines.push(`    keeps retrying ${c.step.activity} (attempt ${c.step.attempt}): ${c.step.reason}: ${c.step.message}; next try at ${when(c.step.nextRetryAt, now)}`);
    }
  }
  if (e.attachments.length > 0) {
    lines.push('', 'attachments not Ready:');
    for (const a of e.attachments) lines.push(`  ${a.nodeID} ${a.subnetID} ${a.eniID ?? '(no ENI yet)'}: ${a.phase}${a.message ? ` — ${a.message}` : ''}`);
  }
  for (const l of e.leaked) lines.push(`left behind earlier: ${l.eniID} on ${l.nodeID}: ${l.reason}`);
  if (e.forceFinish) {
    lines.push('', 'force-finish would:');
    if (e.wouldLeave.length > 0) lines.push(`  leave behind in EC2, tagged leaked for the sweeper: ${e.wouldLeave.join(', ')}`);
    if (e.wouldStop > 0) lines.push(`  stop and undo ${e.wouldStop} provisioning(s), retried after the back-off`);
    lines.push('run:', `  ${e.forceFinish.nodeeni}`, `or:`, `  ${e.forceFinish.temporal}`);
  } else {
    lines.push('', 'nothing to force-finish: no teardown or provisioning is pending');
  }
  return lines.join('\n');
}

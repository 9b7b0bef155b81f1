// Builds the NodeENI status from a plan and the entity state. Pure; the
// previous conditions keep their transition time while their status holds.
import type { Condition, ENIAttachmentStatus, NodeENISpec, NodeENIStatus } from '../common/types.js';
import type { DevicePluginEntry } from '../common/device-plugin.js';
import type { SpecProblem } from '../activities/ec2/ec2-activities.js';
import type { DriftRecord, EntityState, StepRetry } from '../common/workflow-api.js';
import type { Plan } from './plan.js';

export interface InFlight {
  op: 'provision' | 'teardown';
  key: string;
  eniId?: string;
  node?: string;
  /** The step it keeps retrying, when the entity has seen one. */
  retrying?: StepRetry;
}

export interface StatusInput {
  plan: Plan;
  state: EntityState;
  spec: NodeENISpec;
  generation: number;
  deleting: boolean;
  mtu?: number;
  inFlight: InFlight[];
  previous: Condition[];
  now: string;
  /** At most this many rows in status.attachments (the object must stay well under the API server's size limit). */
  maxRows?: number;
  /** The entity workflow, and its page in the Temporal UI when configured. */
  workflow?: { id: string; url?: string };
}

/** "MTU 1500 (want 9001), down, driver ena (want vfio-pci)" */
export function driftText(d: DriftRecord): string {
  return d.drift
    .map((x) => (x.kind === 'mtu' ? `MTU ${x.actual ?? '?'} (want ${x.expected})` : x.kind === 'driver' ? `driver ${x.actual ?? 'none'} (want ${x.expected})` : x.kind))
    .join(', ');
}

const iso = (ms: number | undefined) => (ms === undefined ? 'unknown' : new Date(ms).toISOString());

/** "DeleteNetworkInterface keeps failing (attempt 5): InternalError: …; next try at …" */
export function retryText(r: StepRetry): string {
  return `${r.activity} keeps failing (attempt ${r.attempt}): ${r.reason}: ${r.message}; next try at ${iso(r.nextRetryAt)}`;
}

/** About 350 bytes a row: 500 rows keep the status near 175 KB, far below etcd's 1.5 MB object limit. */
export const DEFAULT_MAX_STATUS_ROWS = 500;

/**
 * Keeps at most `max` rows: every row that is not Ready comes first (they are
 * what an operator looks for), then Ready rows, in the usual node order.
 */
export function boundRows(rows: ENIAttachmentStatus[], max: number): { rows: ENIAttachmentStatus[]; omitted: number } {
  if (rows.length <= max) return { rows, omitted: 0 };
  const notReady = rows.filter((r) => r.phase !== 'Ready');
  const ready = rows.filter((r) => r.phase === 'Ready');
  const kept = new Set([...notReady, ...ready].slice(0, max));
  return { rows: rows.filter((r) => kept.has(r)), omitted: rows.length - kept.size };
}

function attachmentRows(input: StatusInput): ENIAttachmentStatus[] {
  const { plan, state, generation } = input;
  const provisioning = new Map(input.inFlight.filter((f) => f.op === 'provision').map((f) => [f.key, f]));
  const tearingDown = new Map(input.inFlight.filter((f) => f.op === 'teardown').map((f) => [f.eniId, f]));
  const rows: ENIAttachmentStatus[] = [];
  for (const d of plan.desired) {
    const eni = plan.eniByKey.get(d.keyString);
    const done = state.configured[d.keyString];
    const failure = state.failures[d.keyString];
    const row: ENIAttachmentStatus = {
      nodeID: d.key.nodeName,
      instanceID: d.key.instanceId,
      subnetID: d.subnet.id,
      subnetCIDR: d.subnet.cidr,
      eniID: eni?.eniId,
      attachmentID: eni?.attachment?.attachmentId,
      deviceIndex: eni?.attachment?.deviceIndex,
      macAddress: eni?.macAddress || undefined,
      phase: 'Pending',
    };
    if (provisioning.has(d.keyString)) {
      row.phase = !eni ? 'Creating' : eni.attachment?.status === 'attached' ? 'Configuring' : 'Attaching';
      const retrying = provisioning.get(d.keyString)!.retrying;
      if (retrying) row.message = `retrying: ${retryText(retrying)}`;
    } else if (failure && failure.generation === generation) {
      row.phase = 'Failed';
      row.message = `${failure.reason}: ${failure.message}`;
    } else if (done && eni && done.eniId === eni.eniId && eni.attachment?.status === 'attached' && done.generation === generation) {
      const dp = input.spec.dpdkResourceName ? state.devicePlugin[d.key.nodeName] : undefined;
      const pci = done.dpdk?.pciAddress ?? done.pciAddress;
      const published = dp !== undefined && dp.answer?.requestId === dp.requestId && (JSON.parse(dp.sent) as DevicePluginEntry[]).some((e) => e.pciAddress === pci);
      row.phase = !input.spec.dpdkResourceName || published ? 'Ready' : 'Configuring';
      if (row.phase === 'Configuring') row.message = 'waiting for the device plugin to publish the device';
      row.interfaceName = done.interfaceName;
      row.pciAddress = done.dpdk?.pciAddress ?? done.pciAddress;
      row.mtu = done.mtu;
      if (done.dpdk) {
        row.dpdkBound = true;
        row.dpdkDriver = done.dpdk.driver;
        row.dpdkPCIAddress = done.dpdk.pciAddress;
      }
      if (published) row.dpdkResourceName = input.spec.dpdkResourceName;
      const drift = state.drift?.[d.keyString];
      if (drift) {
        row.phase = 'Configuring';
        row.message = `drift on the node: ${driftText(drift)}; re-applying`;
      }
    }
    rows.push(row);
  }
  for (const eni of [...plan.removing, ...plan.retained]) {
    const failure = state.failures[`eni:${eni.eniId}`];
    rows.push({
      nodeID: eni.nodeName ?? '',
      instanceID: eni.instanceId ?? '',
      subnetID: eni.subnetId,
      eniID: eni.eniId,
      attachmentID: eni.attachment?.attachmentId,
      deviceIndex: eni.attachment?.deviceIndex,
      macAddress: eni.macAddress || undefined,
      phase: plan.retained.includes(eni) ? 'Ready' : eni.attachment ? 'Detaching' : 'Deleting',
      message: plan.retained.includes(eni)
        ? 'kept: no longer resolvable from the spec, not removed while subnet references fail to resolve'
        : failure
          ? `${failure.reason}: ${failure.message} (failed ${failure.attempts}×, next try at ${iso(failure.retryAt)})`
          : tearingDown.get(eni.eniId)?.retrying
            ? `retrying: ${retryText(tearingDown.get(eni.eniId)!.retrying!)}`
            : tearingDown.has(eni.eniId)
              ? 'teardown in progress'
              : 'teardown pending',
    });
  }
  return rows.sort((a, b) => a.nodeID.localeCompare(b.nodeID) || a.subnetID.localeCompare(b.subnetID) || (a.eniID ?? '').localeCompare(b.eniID ?? ''));
}

function condition(previous: Condition[], now: string, generation: number, c: Omit<Condition, 'lastTransitionTime' | 'observedGeneration'>): Condition {
  const before = previous.find((p) => p.type === c.type);
  const lastTransitionTime = before && before.status === c.status ? before.lastTransitionTime : now;
  return { ...c, reason: conditionReason(c.reason), lastTransitionTime, observedGeneration: generation };
}

/** metav1.Condition reasons are CamelCase identifiers; EC2 codes such as `InvalidSubnetID.NotFound` are not. */
export function conditionReason(reason: string): string {
  const cleaned = reason.replace(/[^A-Za-z0-9_]/g, '');
  return /^[A-Za-z]/.test(cleaned) ? cleaned : `Error${cleaned}`;
}

function summarize(problems: SpecProblem[]): string {
  return problems.map((p) => p.message).join('; ').slice(0, 2000);
}

export function buildStatus(input: StatusInput): NodeENIStatus {
  const allRows = attachmentRows(input);
  const desiredCount = input.plan.desired.length;
  const desiredRows = new Set(input.plan.desired.map((d) => `${d.key.nodeName}/${d.subnet.id}`));
  const readyCount = allRows.filter((a) => a.phase === 'Ready' && desiredRows.has(`${a.nodeID}/${a.subnetID}`)).length;
  const { rows: attachments, omitted } = boundRows(allRows, input.maxRows ?? DEFAULT_MAX_STATUS_ROWS);
  const busy = input.inFlight.length > 0 || input.plan.provision.length > 0 || input.plan.removing.length > 0;
  const { previous, now, generation } = input;
  const skippedNote = input.plan.skipped.length ? `; skipped (other zone): ${summarize(input.plan.skipped)}` : '';

  const ready = condition(previous, now, generation,
    input.deleting
      ? { type: 'Ready', status: 'False', reason: 'Deleting', message: 'the NodeENI is being deleted' }
      : desiredCount === 0
        ? input.plan.problems.length > 0
          ? { type: 'Ready', status: 'False', reason: 'NothingToAttach', message: `no attachment can be made: ${summarize(input.plan.problems)}` }
          : { type: 'Ready', status: 'True', reason: 'NoMatchingNodes', message: 'no node matches the selector' }
        : readyCount === desiredCount
          ? { type: 'Ready', status: 'True', reason: 'AllAttachmentsReady', message: `${readyCount}/${desiredCount} attachments ready${skippedNote}` }
          : { type: 'Ready', status: 'False', reason: 'AttachmentsNotReady', message: `${readyCount}/${desiredCount} attachments ready${skippedNote}` });
  const provisioningNow = input.inFlight.filter((f) => f.op === 'provision').length;
  const waiting = input.plan.removing.filter((e) => !input.inFlight.some((f) => f.eniId === e.eniId)).length;
  const backingOff = Object.values(input.state.failures).filter((f) => f.retryAt > Date.parse(now)).length;
  const progressing = condition(previous, now, generation,
    busy
      ? {
          type: 'Progressing', status: 'True', reason: input.plan.removing.length > 0 ? 'Reconciling' : 'Provisioning',
          message: `running: ${provisioningNow} provisioning, ${input.inFlight.length - provisioningNow} teardown` +
            `${waiting > 0 ? `; ${waiting} ENIs waiting to be removed` : ''}${backingOff > 0 ? `; ${backingOff} failed steps backing off` : ''}`,
        }
      : { type: 'Progressing', status: 'False', reason: 'Idle', message: 'nothing to do' });
  const problems: SpecProblem[] = [];
  // What keeps failing right now comes first: it is what an operator looks for.
  for (const f of input.inFlight) {
    if (!f.retrying) continue;
    const what = f.op === 'teardown' ? `teardown of ${f.eniId} on ${f.node ?? 'unknown node'}` : `provisioning on ${f.node ?? f.key}`;
    problems.push({ reason: f.op === 'teardown' ? 'TeardownRetrying' : 'ProvisionRetrying', message: `${what}: ${retryText(f.retrying)}` });
  }
  problems.push(...input.plan.problems);
  for (const [key, drift] of Object.entries(input.state.drift ?? {})) {
    problems.push({ reason: 'NodeDrift', message: `${drift.node} (${key.split('/').slice(-1)[0]}): ${driftText(drift)}; re-applying` });
  }
  for (const d of input.plan.desired) {
    const f = input.state.failures[d.keyString];
    if (f && f.generation === generation) problems.push({ reason: f.reason, message: `${d.key.nodeName}/${d.subnet.id}: ${f.message} (failed ${f.attempts}×, next try at ${iso(f.retryAt)})` });
  }
  for (const eni of input.plan.removing) {
    const f = input.state.failures[`eni:${eni.eniId}`];
    if (f) problems.push({ reason: 'TeardownFailed', message: `${eni.eniId} on ${eni.nodeName ?? 'unknown node'}: ${f.reason}: ${f.message} (failed ${f.attempts}×, next try at ${iso(f.retryAt)}; nodeeni force-finish gives up)` });
  }
  for (const [nodeName, dp] of Object.entries(input.state.devicePlugin)) {
    if (dp.answer?.requestId !== dp.requestId || dp.answer.ok) continue;
    problems.push({ reason: dp.answer.podFound ? 'DevicePluginNotApplied' : 'DevicePluginNotFound', message: `node ${nodeName}: ${dp.answer.message}` });
  }
  if (input.state.leaked.length > 0) problems.push({ reason: 'ENIsLeftBehind', message: `${input.state.leaked.length} ENIs left behind by force-finish` });
  const degraded = condition(previous, now, generation,
    problems.length > 0
      ? { type: 'Degraded', status: 'True', reason: problems[0]!.reason, message: summarize(problems) }
      : { type: 'Degraded', status: 'False', reason: 'AsExpected', message: 'no problems' });

  return {
    ...(input.workflow ? { workflowID: input.workflow.id, ...(input.workflow.url ? { workflowURL: input.workflow.url } : {}) } : {}),
    observedGeneration: generation,
    desiredCount,
    readyCount,
    attachments,
    attachmentsOmitted: omitted > 0 ? omitted : undefined,
    leakedENIs: input.state.leaked.length > 0 ? input.state.leaked : undefined,
    conditions: [ready, progressing, degraded],
  };
}

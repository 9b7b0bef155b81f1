// The leaked-ENI sweeper, started by a Temporal Schedule the control worker
// keeps (workers/sweeper-schedule.ts) and by `nodeeni sweep`. It deletes the
// ENIs of this cluster nobody else will delete: ones whose NodeENI is gone
// (an entity only ever looks at its own NodeENI's ENIs) and ones force-finish
// left behind, tagged leaked. Never one in use, never one younger than the
// grace period or without its created-at tag, never one of another cluster
// or tool (EC2 filters by our tags). Page by page, continuing-as-new between
// pages when the history grows, so thousands of ENIs keep every payload small.
import { ActivityFailure, continueAsNew, isCancellation, log, setCurrentDetails, upsertMemo, workflowInfo } from '@temporalio/workflow';
import type { SweepCandidate } from '../activities/ec2/sweeper-activities.js';
import type { SweepDeleteReason, SweepInput, SweepResult, SweepSkipReason, SweptEni } from '../common/workflow-api.js';
import { failureMessage, failureReason } from './failures.js';
import { metrics } from './metrics.js';
import { kube, pacedSweeperEc2, sweeperKube } from './proxies.js';

const DEFAULTS = { pageSize: 200, maxListed: 500, maxHistoryLength: 4000 };

/** What EC2's view alone decides; `owner`: deletable unless its NodeENI still exists (the API server says). */
export type Verdict = { action: 'skip'; reason: SweepSkipReason; detail: string } | { action: 'delete'; why: SweepDeleteReason } | { action: 'owner' };

/** Pure: the checks that need no other system, in the order an operator reads them. */
export function classify(eni: SweepCandidate, nowMs: number, graceMs: number): Verdict {
  const skip = (reason: SweepSkipReason, detail: string): Verdict => ({ action: 'skip', reason, detail });
  // A leaked tag does not make an attached ENI safe to delete: someone may have put it to use.
  if (eni.status !== 'available') return skip('InUse', `${eni.status}${eni.attachedTo ? ` on ${eni.attachedTo}` : ''}`);
  const created = eni.createdAt === undefined ? Number.NaN : Date.parse(eni.createdAt);
  if (Number.isNaN(created)) return skip('NoCreatedAt', eni.createdAt === undefined ? 'no created-at tag: age unknown' : `created-at tag "${eni.createdAt}" is not a time`);
  const ageS = Math.floor((nowMs - created) / 1000);
  if (nowMs - created < graceMs) return skip('TooYoung', `created ${ageS} s ago, grace period ${Math.round(graceMs / 1000)} s`);
  return eni.leaked !== undefined ? { action: 'delete', why: 'Leaked' } : { action: 'owner' };
}

function emptySweepResult(input: SweepInput, startedAt: string): SweepResult {
  return {
    clusterName: input.clusterName, dryRun: input.dryRun, graceSeconds: input.graceSeconds, startedAt,
    examined: 0, pages: 0, deleted: [], skipped: [], failed: [], counts: { deleted: 0, failed: 0, skipped: {} }, truncated: false,
  };
}

export async function sweepLeakedEnis(input: SweepInput): Promise<SweepResult> {
  const opts = { ...DEFAULTS, ...input };
  const result = input.progress?.result ?? emptySweepResult(input, new Date().toISOString());
  const ec2 = pacedSweeperEc2();
  let nextToken = input.progress?.nextToken;
  do {
    const page = await ec2.read.listSweepCandidates({ clusterName: opts.clusterName, pageSize: opts.pageSize, nextToken });
    await sweepPage(page.enis, opts, result, ec2.delete);
    nextToken = page.nextToken;
    report(result, nextToken !== undefined);
    const info = workflowInfo();
    if (nextToken !== undefined && (info.continueAsNewSuggested || info.historyLength > opts.maxHistoryLength)) {
      // Every handler is done here (the sweep has none): the next run goes on with the next page.
      await continueAsNew<typeof sweepLeakedEnis>({ ...input, progress: { nextToken, result } });
    }
  } while (nextToken !== undefined);
  result.finishedAt = new Date().toISOString();
  report(result, false);
  log.info('leaked-ENI sweep done', { cluster: result.clusterName, dryRun: result.dryRun, examined: result.examined, deleted: result.counts.deleted, failed: result.counts.failed });
  return result;
}

type Options = SweepInput & typeof DEFAULTS;
type Deleter = ReturnType<typeof pacedSweeperEc2>['delete'];

async function sweepPage(enis: SweepCandidate[], opts: Options, result: SweepResult, deleter: Deleter): Promise<void> {
  result.pages++;
  result.examined += enis.length;
  const listed = (list: unknown[]) => {
    if (list.length < opts.maxListed) return true;
    result.truncated = true;
    return false;
  };
  const verdicts = enis.map((eni) => ({ eni, verdict: classify(eni, Date.now(), opts.graceSeconds * 1000) }));
  // Owners are asked after EC2 was read, so a missing UID means an object that is gone (nodeeni-owners.ts).
  const uids = [...new Set(verdicts.filter(({ verdict }) => verdict.action !== 'skip').map(({ eni }) => eni.nodeEniUid).filter((u): u is string => !!u))];
  const live = uids.length > 0 ? await sweeperKube.liveNodeEnis({ uids }) : {};
  const doomed: Array<{ eni: SweepCandidate; why: SweepDeleteReason }> = [];
  for (const { eni, verdict } of verdicts) {
    let v = verdict;
    if (v.action === 'owner') {
      const owner = eni.nodeEniUid !== undefined ? live[eni.nodeEniUid] : undefined;
      v = owner !== undefined ? { action: 'skip', reason: 'Owned', detail: `NodeENI ${owner} exists` } : { action: 'delete', why: 'Orphaned' };
    }
    if (v.action === 'delete') {
      doomed.push({ eni, why: v.why });
      continue;
    }
    result.counts.skipped[v.reason] = (result.counts.skipped[v.reason] ?? 0) + 1;
    if (listed(result.skipped)) result.skipped.push({ eniId: eni.eniId, reason: v.reason, detail: v.detail });
  }
  // The delete queue's rate limit paces these; one that fails does not stop the others.
  await Promise.all(doomed.map(async ({ eni, why }) => {
    const owner = eni.nodeEniUid !== undefined ? live[eni.nodeEniUid] : undefined;
    const swept: SweptEni = { eniId: eni.eniId, why, nodeEniName: eni.nodeEniName, nodeEniUid: eni.nodeEniUid, node: eni.node, createdAt: eni.createdAt, leakedReason: eni.leaked };
    try {
      if (!opts.dryRun) {
        const { deleted } = await deleter.deleteEni({ eniId: eni.eniId });
        if (deleted === 'already') swept.alreadyGone = true;
      }
    } catch (err) {
      if (isCancellation(err) || !(err instanceof ActivityFailure)) throw err;
      const failed = { eniId: eni.eniId, reason: failureReason(err, 'DeleteFailed'), message: failureMessage(err) };
      result.counts.failed++;
      if (listed(result.failed)) result.failed.push(failed);
      if (owner !== undefined) await ownerEvent(owner, eni, 'Warning', 'LeakedENISweepFailed', `the leaked-ENI sweeper could not delete ${eni.eniId}: ${failed.reason}: ${failed.message}`);
      return;
    }
    result.counts.deleted++;
    metrics().enisSwept(opts.dryRun ? 'dry_run' : 'delete');
    if (listed(result.deleted)) result.deleted.push(swept);
    // Only a leaked ENI can have a live owner: its NodeENI hears where the ENI force-finish left went.
    if (owner !== undefined && !opts.dryRun) await ownerEvent(owner, eni, 'Normal', 'LeakedENISwept', `the leaked-ENI sweeper deleted ${eni.eniId}, left behind by force-finish (${eni.leaked})`);
  }));
}

/** Best effort: the sweep's result is the record; an Event that cannot be written is only logged. */
async function ownerEvent(name: string, eni: SweepCandidate, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
  const { workflowId, runId } = workflowInfo();
  try {
    await kube.recordEvent({ name, uid: eni.nodeEniUid!, eventId: `${workflowId}/${runId}/${eni.eniId}/${reason}`, type, reason, message });
  } catch (err) {
    if (isCancellation(err)) throw err;
    log.warn('could not record the sweep on its NodeENI', { nodeEni: name, eniId: eni.eniId, error: failureMessage(err) });
  }
}

/** The sweep's progress and totals where an operator looks: the UI's current details and the memo (also in list results). */
function report(result: SweepResult, more: boolean): void {
  const skipped = Object.entries(result.counts.skipped).map(([r, n]) => `${n} ${r}`).join(', ') || 'none';
  const verb = result.dryRun ? 'would delete' : 'deleted';
  setCurrentDetails([
    `**Leaked-ENI sweep of cluster ${result.clusterName}**${result.dryRun ? ' (dry run)' : ''}: ${more ? `page ${result.pages} done, more to come` : 'done'}`,
    `- examined ${result.examined}; ${verb} ${result.counts.deleted}; failed ${result.counts.failed}; skipped: ${skipped}`,
    ...result.failed.slice(0, 20).map((f) => `- failed ${f.eniId}: ${f.reason}: ${f.message}`),
  ].join('\n'));
  upsertMemo({ sweptENIs: result.counts.deleted, failedENIs: result.counts.failed, examinedENIs: result.examined, dryRun: result.dryRun });
}

// `nodeeni sweep [--dry-run]`: one leaked-ENI sweep now, with the settings of
// the Schedule the control worker keeps (cluster, grace period, task queue),
// so an operator's sweep and the scheduled ones cannot disagree on what is
// whose. Waits for the result and renders it.
import { ScheduleNotFoundError, type Client } from '@temporalio/client';
import { manualSweepWorkflowId } from '../common/names.js';
import type { SweepInput, SweepOptions, SweepResult } from '../common/workflow-api.js';
import type { sweepLeakedEnis } from '../workflows/sweeper.js';
import { table } from './table.js';

export interface SweepRequest {
  scheduleId: string;
  dryRun: boolean;
  /** Used when the Schedule does not exist (the sweeper never started, or another namespace), and over its settings. */
  clusterName?: string;
  graceSeconds?: number;
  taskQueue?: string;
}

export interface SweepRun {
  workflowId: string;
  /** Wall time from start to result. */
  seconds: number;
  result: SweepResult;
}

/** The Schedule's workflow input and task queue, when it exists. */
async function scheduledSettings(client: Client, scheduleId: string): Promise<{ input: SweepOptions; taskQueue: string } | undefined> {
  try {
    const { action } = await client.schedule.getHandle(scheduleId).describe();
    return { input: action.args?.[0] as SweepOptions, taskQueue: action.taskQueue };
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return undefined;
    throw err;
  }
}

export async function sweepNow(client: Client, req: SweepRequest): Promise<SweepRun> {
  const scheduled = await scheduledSettings(client, req.scheduleId);
  const clusterName = req.clusterName ?? scheduled?.input.clusterName;
  const taskQueue = req.taskQueue ?? scheduled?.taskQueue;
  if (!clusterName || !taskQueue) {
    throw new Error(`no sweeper schedule "${req.scheduleId}" to take the settings from (is the control worker running, with this SWEEP_SCHEDULE_ID?); or pass --cluster and --task-queue`);
  }
  const input: SweepInput = {
    ...scheduled?.input,
    clusterName,
    graceSeconds: req.graceSeconds ?? scheduled?.input.graceSeconds ?? 1800,
    dryRun: req.dryRun,
  };
  const started = Date.now();
  const handle = await client.workflow.start<typeof sweepLeakedEnis>('sweepLeakedEnis', {
    taskQueue,
    workflowId: manualSweepWorkflowId(req.scheduleId, new Date(started)),
    args: [input],
    staticSummary: `Leaked-ENI sweep of cluster ${clusterName}${req.dryRun ? ' (dry run)' : ''}, started by nodeeni sweep`,
  });
  const result = await handle.result();
  return { workflowId: handle.workflowId, seconds: (Date.now() - started) / 1000, result };
}

export function sweepTable(run: SweepRun): string {
  const r = run.result;
  const verb = r.dryRun ? 'would delete' : 'deleted';
  const rows = [
    ...r.deleted.map((e) => [e.eniId, r.dryRun ? 'would delete' : e.alreadyGone ? 'gone already' : 'deleted', e.why, e.nodeEniName ?? '', e.why === 'Leaked' ? `leaked: ${e.leakedReason}` : `created ${e.createdAt}`]),
    ...r.failed.map((e) => [e.eniId, 'failed', e.reason, '', e.message]),
    ...r.skipped.map((e) => [e.eniId, 'skipped', e.reason, '', e.detail]),
  ];
  const skipped = Object.entries(r.counts.skipped).map(([reason, n]) => `${n} ${reason}`).join(', ') || 'none';
  return [
    rows.length > 0 ? table(['ENI', 'RESULT', 'REASON', 'NODEENI', 'DETAIL'], rows) : 'No ENIs of this cluster in EC2.',
    '',
    `${r.dryRun ? 'Dry run: nothing was deleted. ' : ''}Cluster ${r.clusterName}, grace period ${r.graceSeconds} s: examined ${r.examined}, ${verb} ${r.counts.deleted}, failed ${r.counts.failed}, skipped ${skipped}${r.truncated ? ' (lists truncated; counts complete)' : ''}.`,
    `Workflow ${run.workflowId}, ${run.seconds.toFixed(1)} s.`,
  ].join('\n');
}

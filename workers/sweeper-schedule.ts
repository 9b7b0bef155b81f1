// The leaked-ENI sweeper's Temporal Schedule, kept by the control worker: at
// every start it creates the Schedule or, when it exists, sets it to this
// worker's configuration (the configuration is the environment; a pause made
// in the UI lasts until the next start). Every replica doing so at once is
// fine: the Schedule ID is unique, the loser of the create updates.
import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client, type ScheduleOptionsStartWorkflowAction, type ScheduleUpdateOptions } from '@temporalio/client';
import type { SweepOptions } from '../common/workflow-api.js';
import type { sweepLeakedEnis } from '../workflows/sweeper.js';

export interface SweeperScheduleSettings {
  scheduleId: string;
  /** The control task queue, where the workflow runs. */
  taskQueue: string;
  /** false: the Schedule exists but is paused (manual sweeps still read its settings). */
  enabled: boolean;
  intervalSeconds: number;
  sweep: SweepOptions;
}

type SweepAction = ScheduleOptionsStartWorkflowAction<typeof sweepLeakedEnis>;

/** What the Schedule is set to, by create and by update alike. */
export function sweeperScheduleDefinition(s: SweeperScheduleSettings): ScheduleUpdateOptions<SweepAction> {
  const what = `Leaked-ENI sweep of cluster ${s.sweep.clusterName}${s.sweep.dryRun ? ' (dry run)' : ''}, grace period ${s.sweep.graceSeconds} s`;
  return {
    spec: { intervals: [{ every: `${s.intervalSeconds}s` }] },
    action: {
      type: 'startWorkflow',
      workflowType: 'sweepLeakedEnis',
      taskQueue: s.taskQueue,
      workflowId: s.scheduleId,
      args: [s.sweep],
      staticSummary: what,
      // A sweep that cannot finish within an interval ends before the next one starts.
      workflowExecutionTimeout: `${s.intervalSeconds}s`,
    },
    // One sweep at a time; a sweep missed while Temporal was down is not made up (the next one comes).
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' },
    state: {
      paused: !s.enabled,
      note: s.enabled ? `${what}, every ${s.intervalSeconds} s` : 'paused by the control worker: SWEEP_ENABLED=false',
    },
  };
}

/** Creates the Schedule, or brings an existing one to these settings. */
export async function ensureSweeperSchedule(client: Client, s: SweeperScheduleSettings): Promise<'created' | 'updated'> {
  const definition = sweeperScheduleDefinition(s);
  try {
    await client.schedule.create<typeof sweepLeakedEnis>({ scheduleId: s.scheduleId, ...definition });
    return 'created';
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
  await client.schedule.getHandle(s.scheduleId).update<typeof sweepLeakedEnis>((previous) => ({ ...definition, typedSearchAttributes: previous.typedSearchAttributes }));
  return 'updated';
}

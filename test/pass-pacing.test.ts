// The entity paces passes woken by its children's reports: a report that comes while the
// last pass is recent waits until as long after it as that pass took, so reports arriving
// one after another make fewer passes instead of passes back to back (PASS_PACING_PATCH).
// Real backends; EC2's listing is slowed so a pass takes seconds, as at a thousand nodes.
import proto from '@temporalio/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entityWorkflowId } from '../common/names.js';
import { childFinishedSignal } from '../common/workflow-api.js';
import { createTestCluster, eventually, type TestCluster } from './support/cluster.js';
import { isReady } from './support/inspect.js';

type HistoryEvent = proto.temporal.api.history.v1.IHistoryEvent;

let c: TestCluster;
beforeAll(async () => {
  // Three attachments: reports pace the passes from the first child on (the default waits for 10).
  c = await createTestCluster({ entityOptions: { pacePassesFromChildren: 1 } });
});
afterAll(async () => {
  await c?.fault.clear();
  await c?.dispose();
});

const ms = (e: HistoryEvent) => Number(e.eventTime!.seconds) * 1000 + Math.floor((e.eventTime!.nanos ?? 0) / 1e6);
const activity = (e: HistoryEvent, kind: 'scheduled' | 'completed', name: string, scheduled: Map<string, string>) => {
  if (kind === 'scheduled') return e.activityTaskScheduledEventAttributes?.activityType?.name === name;
  const ref = e.activityTaskCompletedEventAttributes?.scheduledEventId;
  return ref != null && scheduled.get(String(ref)) === name;
};
const summaryOf = (e: HistoryEvent) => {
  const data = e.userMetadata?.summary?.data;
  return data ? String(JSON.parse(Buffer.from(data).toString())) : '';
};

interface Gap {
  passMs: number;
  gapMs: number;
  /** What came since the earlier pass began: signal names and timer summaries. */
  between: string[];
}

/** For each pass after the first in a run: how long the one before took, the pause after it, and what came in between. */
function passGaps(events: HistoryEvent[]): Gap[] {
  const scheduled = new Map<string, string>();
  const timers = new Map<string, string>();
  const gaps: Gap[] = [];
  let start: number | undefined;
  let end: number | undefined;
  let between: string[] = [];
  for (const e of events) {
    const a = e.activityTaskScheduledEventAttributes;
    if (a) scheduled.set(String(e.eventId), a.activityType?.name ?? '');
    if (e.timerStartedEventAttributes) timers.set(String(e.eventId), summaryOf(e));
    if (activity(e, 'scheduled', 'observeNodeEni', scheduled)) {
      if (start !== undefined && end !== undefined) gaps.push({ passMs: end - start, gapMs: ms(e) - end, between });
      start = ms(e);
      end = undefined;
      between = [];
    } else if (activity(e, 'completed', 'writeStatus', scheduled)) {
      end = ms(e);
    } else if (start !== undefined) {
      // Since the last pass began: a report that came during it is applied by the next one.
      const signal = e.workflowExecutionSignaledEventAttributes?.signalName;
      if (signal) between.push(`signal ${signal}`);
      const fired = e.timerFiredEventAttributes?.startedEventId;
      if (fired != null) between.push(`timer ${timers.get(String(fired)) ?? ''}`);
      if (e.timerCanceledEventAttributes) between.push(`timer canceled ${timers.get(String(e.timerCanceledEventAttributes.startedEventId)) ?? ''}`);
    }
  }
  return gaps;
}

describe('pass pacing', () => {
  it("passes woken by children's reports come no closer than the last pass took", async () => {
    // Every listing takes 1.5 s: a pass takes that long, and reports arrive while one runs.
    await c.fault.addRules({ action: 'DescribeNetworkInterfaces', account: c.account, latencyMs: 1500 });
    const obj = await c.createNodeEni('paced', { nodeSelector: { 'nodeeni-test': c.runId }, subnetNames: ['storage-a', 'storage-b'], securityGroupNames: ['storage-sg'] });
    await eventually('Ready on all three nodes', async () => isReady(await c.getNodeEni('paced'), 3), 120_000);
    await c.deleteNodeEni('paced');
    await eventually('deleted', async () => (await c.getNodeEni('paced')) === undefined, 120_000);
    await c.fault.clear();

    const workflowId = entityWorkflowId(obj.metadata.name, obj.metadata.uid);
    const gaps: Gap[] = [];
    for await (const wf of c.client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) {
      gaps.push(...passGaps((await c.client.workflow.getHandle(workflowId, wf.runId).fetchHistory()).events ?? []));
    }
    // Passes that only reports woke (the idle timer they cancel aside): each waited out the last pass's duration (up to 5 s; 250 ms for event timing).
    const onlyReports = gaps.filter((g) => g.between.length > 0 && g.between.every((b) => b === `signal ${childFinishedSignal.name}` || b.startsWith('timer canceled') || b.endsWith('coalescing reports')));
    expect(onlyReports.length, JSON.stringify(gaps)).toBeGreaterThan(0);
    for (const g of onlyReports) expect(g.gapMs, JSON.stringify(g)).toBeGreaterThanOrEqual(Math.min(g.passMs, 5000) - 250);
    // And at least once a report came while the last pass was recent, and waited.
    expect(gaps.some((g) => g.between.some((b) => b.endsWith('coalescing reports'))), JSON.stringify(gaps)).toBe(true);
  });
});

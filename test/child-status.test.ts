// describeChildren, the entity's level-triggered check of its children, on the
// real Temporal server: every way a child can end is read back in the order
// asked, and a large window is described side by side, never more than
// DESCRIBES_IN_FLIGHT at once. startChildren, retried as after a worker died
// mid-start: a child that completed is not run again, a running one is adopted,
// one that failed starts again.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, Connection, type WorkflowClientInterceptor } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createChildStatusActivities, DESCRIBES_IN_FLIGHT, type ChildStatus } from '../activities/temporal/child-status.js';
import { createChildStarter } from '../activities/temporal/child-starter.js';
import type { ChildStart } from '../common/workflow-api.js';
import { getBackends } from './support/backends.js';
import { startFixtureWorker, type FixtureWorker } from './support/fixture-worker.js';
import { eventually } from './support/cluster.js';

const taskQueue = `child-status-${randomUUID()}`;
let connection: Connection;
let client: Client;
let fixtures: FixtureWorker;
let inFlight = 0;
let mostInFlight = 0;

beforeAll(async () => {
  const { temporalAddress, temporalNamespace } = getBackends();
  connection = await Connection.connect({ address: temporalAddress });
  // Counts describes in flight: the activity's only way to the server is this client.
  const counting: WorkflowClientInterceptor = {
    async describe(input, next) {
      mostInFlight = Math.max(mostInFlight, ++inFlight);
      try {
        return await next(input);
      } finally {
        inFlight--;
      }
    },
  };
  client = new Client({ connection, namespace: temporalNamespace, interceptors: { workflow: [counting] } });
  fixtures = await startFixtureWorker(taskQueue, path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/child-status/workflows.ts'));
}, 120_000);

afterAll(async () => {
  await fixtures?.stop();
  await connection?.close();
});

const describeChildren = (children: { workflowId: string; op: 'provision' | 'teardown' }[]): Promise<ChildStatus[]> =>
  new MockActivityEnvironment({}, { client }).run(createChildStatusActivities().describeChildren, { children }) as Promise<ChildStatus[]>;

describe('describeChildren', () => {
  it('reads a window of 60 children, each as it ended, in the order asked, at most DESCRIBES_IN_FLIGHT at a time', async () => {
    const id = (what: string, i: number) => `${taskQueue}/${what}-${i}`;
    const started: { workflowId: string; op: 'provision' | 'teardown'; expected: (s: ChildStatus) => void }[] = [];
    for (let i = 0; i < 60; i++) {
      const kind = i % 6;
      if (kind === 0) {
        const h = await client.workflow.start('endsWell', { taskQueue, workflowId: id('ok', i), args: [`eni-${i}`] });
        await h.result();
        started.push({ workflowId: h.workflowId, op: 'provision', expected: (s) => expect(s).toEqual({ workflowId: h.workflowId, running: false, outcome: { workflowId: h.workflowId, op: 'provision', ok: true, result: { eniId: `eni-${i}` } } }) });
      } else if (kind === 1) {
        const h = await client.workflow.start('fails', { taskQueue, workflowId: id('failed', i), args: ['SubnetNotFound'] });
        await h.result().catch(() => undefined);
        started.push({ workflowId: h.workflowId, op: 'teardown', expected: (s) => expect(s).toEqual({ workflowId: h.workflowId, running: false, outcome: { workflowId: h.workflowId, op: 'teardown', ok: false, reason: 'SubnetNotFound', message: 'gave up: SubnetNotFound' } }) });
      } else if (kind === 2) {
        const h = await client.workflow.start('runs', { taskQueue, workflowId: id('terminated', i) });
        await h.terminate('an operator');
        started.push({ workflowId: h.workflowId, op: 'provision', expected: (s) => expect(s).toMatchObject({ running: false, outcome: { ok: false, reason: 'TERMINATED', message: 'the provision workflow ended terminated' } }) });
      } else if (kind === 3) {
        const workflowId = id('never-started', i);
        started.push({ workflowId, op: 'provision', expected: (s) => expect(s).toMatchObject({ workflowId, running: false, outcome: { ok: false, reason: 'ChildNotFound' } }) });
      } else {
        const h = await client.workflow.start('runs', { taskQueue, workflowId: id('running', i) });
        started.push({ workflowId: h.workflowId, op: 'provision', expected: (s) => expect(s).toEqual({ workflowId: h.workflowId, running: true }) });
      }
    }

    mostInFlight = 0;
    const statuses = await describeChildren(started.map(({ workflowId, op }) => ({ workflowId, op })));
    expect(statuses.map((s) => s.workflowId)).toEqual(started.map((s) => s.workflowId));
    started.forEach((s, i) => s.expected(statuses[i]!));
    expect(mostInFlight, 'describes side by side').toBeGreaterThan(1);
    expect(mostInFlight).toBeLessThanOrEqual(DESCRIBES_IN_FLIGHT);

    for (const s of started.filter((x) => x.workflowId.includes('/running-'))) await client.workflow.getHandle(s.workflowId).terminate('test over');
  }, 120_000);

  it('answers an empty window without a call', async () => {
    mostInFlight = 0;
    expect(await describeChildren([])).toEqual([]);
    expect(mostInFlight).toBe(0);
  });
});

describe('startChildren', () => {
  // As in the control worker: the client shares the worker's connection (eager workflow start needs it).
  const startChildren = (starts: ChildStart[]) =>
    new MockActivityEnvironment({}, { client: new Client({ connection: fixtures.connection, namespace: getBackends().temporalNamespace }) })
      .run(createChildStarter().startChildren, { taskQueue, starts }) as Promise<void>;
  // The fixture workflows stand in for provisionAttachment and teardownAttachment.
  const start = (workflowType: string, workflowId: string, input: unknown) =>
    ({ workflowType, workflowId, input, summary: workflowId, nodeEniName: 'probe', nodeName: 'node-0' }) as unknown as ChildStart;
  const runsOf = async (workflowId: string) => {
    const out: string[] = [];
    for await (const wf of client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) out.push(wf.status.name);
    return out.sort();
  };

  it('a retried window runs a completed child no second time, adopts the running one, starts the failed one again', async () => {
    const window = [
      start('endsWell', `${taskQueue}/start/completed`, 'eni-1'),
      start('fails', `${taskQueue}/start/failed`, 'TeardownFailed'),
      start('runs', `${taskQueue}/start/running`, undefined),
    ];
    await startChildren(window);
    await client.workflow.getHandle(window[0]!.workflowId).result();
    await client.workflow.getHandle(window[1]!.workflowId).result().catch(() => undefined);

    // The retry a worker's death causes: the same window again.
    await startChildren(window);
    // Visibility lags the starts a little.
    await eventually('every run visible', async () => (await runsOf(window[1]!.workflowId)).length === 2 && (await runsOf(window[0]!.workflowId)).length >= 1, 20_000);
    expect(await runsOf(window[0]!.workflowId)).toEqual(['COMPLETED']);
    expect(await runsOf(window[2]!.workflowId)).toEqual(['RUNNING']);
    expect((await runsOf(window[1]!.workflowId)).filter((st) => st === 'FAILED').length).toBeGreaterThanOrEqual(1);
    await client.workflow.getHandle(window[2]!.workflowId).terminate('test over');
  }, 60_000);
});

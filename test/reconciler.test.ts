// The Reconciler's end of a run on the real Temporal server: a handler that waits on a later pass
// (as the entity's forceFinish waits for the reports of the children a pass told to stop) is answered
// when the history is over its bound, instead of the run waiting for it forever with no pass running;
// the run then continues-as-new, and its history replays.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, Connection, WorkflowUpdateStage } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import { HANDLERS_WAIT_ON_PASSES_PATCH } from '../workflows/reconciler.js';
import { passesQuery, passesUpdate, pokeSignal } from './fixtures/reconciler/workflows.js';
import { eventually } from './support/cluster.js';
import { getBackends } from './support/backends.js';
import { startFixtureWorker, type FixtureWorker } from './support/fixture-worker.js';

const taskQueue = `reconciler-${randomUUID()}`;
const workflowsPath = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/reconciler/workflows.ts');
let connection: Connection;
let client: Client;
let fixtures: FixtureWorker;

beforeAll(async () => {
  const { temporalAddress, temporalNamespace } = getBackends();
  connection = await Connection.connect({ address: temporalAddress });
  client = new Client({ connection, namespace: temporalNamespace });
  fixtures = await startFixtureWorker(taskQueue, workflowsPath);
}, 120_000);

afterAll(async () => {
  await fixtures?.stop();
  await connection?.close();
});

/** Rejects after `ms`: a wait that would otherwise last forever fails the test with a reason. */
function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  return Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms))]);
}

describe('Reconciler: the end of a run', () => {
  it('a handler waiting on a later pass is answered when the history is full; then the run continues-as-new', async () => {
    const handle = await client.workflow.start('reconcilerProbe', { taskQueue, workflowId: `${taskQueue}/probe`, args: [] });
    await eventually('first pass', async () => (await handle.query(passesQuery)) === 1, 20_000);
    const firstRun = (await handle.describe()).runId;

    // Accepted, then one pass runs (the update marks the loop dirty): the history is now over the bound
    // and the update still waits for a second pass.
    const update = await handle.startUpdate(passesUpdate, { args: [2], waitForStage: WorkflowUpdateStage.ACCEPTED });
    await eventually('the pass the update asked for', async () => (await handle.query(passesQuery)) === 2, 20_000);
    // A message marks the loop dirty, as a child's report does: the pass it runs answers the update.
    await handle.signal(pokeSignal);
    expect(await within(20_000, 'the update', update.result())).toBe(3);

    const next = await eventually('continued-as-new', async () => {
      const d = await handle.describe();
      return d.runId !== firstRun && d;
    }, 20_000);
    expect(next.status.name).toBe('RUNNING');
    // The state went over: the new run's first pass is the fourth.
    await eventually('the new run passed once', async () => (await handle.query(passesQuery)) === 4, 20_000);

    const history = await client.workflow.getHandle(handle.workflowId, firstRun).fetchHistory();
    const events = history.events ?? [];
    const closed = events.at(-1);
    expect(closed?.workflowExecutionContinuedAsNewEventAttributes).toBeTruthy();
    // The patch is recorded only where a handler was still running at the end of a pass.
    const patches = events
      .map((e) => e.markerRecordedEventAttributes?.details?.['patch-data']?.payloads?.[0])
      .filter((p) => p !== undefined && p !== null)
      .map((p) => (defaultPayloadConverter.fromPayload(p) as { id: string }).id);
    expect(patches).toEqual([HANDLERS_WAIT_ON_PASSES_PATCH]);
    await Worker.runReplayHistory({ workflowsPath, replayName: 'reconcilerProbe' }, history);
    await handle.terminate('test over');
  });
});

// History hygiene: the entity continues-as-new before its history grows large
// and carries its state over (nothing is provisioned again), and every
// workflow history the system produced replays deterministically.
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entityWorkflowId } from '../common/names.js';
import { reconcileSignal } from '../common/workflow-api.js';
import { createTestCluster, eventually, workflowBundle, type TestCluster } from './support/cluster.js';
import { enisOf, isReady } from './support/inspect.js';
import { dataConverter } from '../workers/payload-codec.js';

let c: TestCluster;
beforeAll(async () => {
  c = await createTestCluster({ entityOptions: { maxHistoryLength: 60 } });
});
afterAll(async () => {
  await c?.dispose();
});

describe('entity history', () => {
  it('continues-as-new with its state, without provisioning again', async () => {
    const obj = await c.createNodeEni('can', { nodeSelector: { 'nodeeni-test': c.runId }, subnetNames: ['storage-a', 'storage-b'], securityGroupNames: ['storage-sg'] });
    await eventually('Ready on all three nodes', async () => isReady(await c.getNodeEni('can'), 3), 90_000);
    const before = await c.fault.counts(c.account);
    const handle = c.client.workflow.getHandle(entityWorkflowId(obj.metadata.name, obj.metadata.uid));
    const firstRun = (await handle.describe()).runId;
    for (let i = 0; i < 12; i++) {
      await c.client.workflow.getHandle(handle.workflowId).signal(reconcileSignal);
      await new Promise((r) => setTimeout(r, 150));
    }
    const latest = await eventually('a new run', async () => {
      const d = await c.client.workflow.getHandle(handle.workflowId).describe();
      return d.runId !== firstRun && d.status.name === 'RUNNING' && d;
    });
    expect(latest.historyLength).toBeLessThan(120);
    // The new run knows what is configured: no create or attach happened since.
    await eventually('settled', async () => isReady(await c.getNodeEni('can'), 3));
    const after = await c.fault.counts(c.account);
    expect(after.CreateNetworkInterface ?? 0).toBe(before.CreateNetworkInterface ?? 0);
    expect(after.AttachNetworkInterface ?? 0).toBe(before.AttachNetworkInterface ?? 0);
    expect(await enisOf(c.ec2, obj.metadata.uid)).toHaveLength(3);

    await c.deleteNodeEni('can');
    await eventually('deleted', async () => (await c.getNodeEni('can')) === undefined, 90_000);
  });

  it('replays every workflow history of this test deterministically', async () => {
    const histories = c.client.workflow.list({ query: `NodeENI = '${c.runId}-can'` }).intoHistories();
    let replayed = 0;
    for await (const r of Worker.runReplayHistories({ workflowBundle: await workflowBundle(), dataConverter }, histories)) {
      expect(r.error, `${r.workflowId}: ${String(r.error)}`).toBeUndefined();
      replayed++;
    }
    // Two entity runs at least, three provisions, three teardowns.
    expect(replayed).toBeGreaterThanOrEqual(8);
  });
});

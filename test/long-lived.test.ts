// Long-lived workflows with bounded histories, on the real backends: the
// entity continues-as-new while a child it started keeps running, and the
// child's outcome reaches the newer run; a node's device-plugin workflow ends
// once the node is gone and nothing is published there.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devicePluginWorkflowId, entityWorkflowId } from '../common/names.js';
import { reconcileSignal, stateQuery } from '../common/workflow-api.js';
import { createTestCluster, eventually, type TestCluster } from './support/cluster.js';
import { enisOf, isReady } from './support/inspect.js';

const MAX_HISTORY = 60;
let c: TestCluster;
beforeAll(async () => {
  c = await createTestCluster({
    entityOptions: { maxHistoryLength: MAX_HISTORY },
    devicePlugins: [undefined, { namespace: 'kube-system', labels: { app: 'sriovdp' } }],
  });
});
afterAll(async () => {
  await c?.fault.clear();
  await c?.dispose();
});

const onNode = (i: number) => ({ 'nodeeni-test': c.runId, 'kubernetes.io/hostname': c.nodes[i]!.name });

describe('bounded histories', () => {
  it('the entity continues-as-new while its teardown child runs; the child reports to the newer run', async () => {
    const obj = await c.createNodeEni('can', { nodeSelector: onNode(0), subnetNames: ['multus-a'], securityGroupNames: ['multus-sg'] });
    await eventually('Ready', async () => isReady(await c.getNodeEni('can'), 1), 60_000);
    const handle = c.client.workflow.getHandle(entityWorkflowId(obj.metadata.name, obj.metadata.uid));

    await c.fault.addRules({ action: 'DeleteNetworkInterface', account: c.account, code: 'InternalError', message: 'injected: EC2 keeps failing' });
    await c.deleteNodeEni('can');
    const child = await eventually('teardown child running', async () => (await handle.query(stateQuery)).inFlight.find((f) => f.op === 'teardown'), 30_000);
    // The entity starts its children through an activity (no parent link): a run that started after
    // the child cannot be the one that started it.
    const childStarted = (await c.client.workflow.getHandle(child.workflowId).describe()).startTime.getTime();
    // Every pass adds history; the entity must roll over while the child is still at work.
    const rolled = await eventually('continued-as-new with the child still running', async () => {
      await handle.signal(reconcileSignal);
      const d = await handle.describe();
      return d.startTime.getTime() > childStarted && d;
    }, 60_000);
    expect((await c.client.workflow.getHandle(child.workflowId).describe()).status.name).toBe('RUNNING');
    expect((await handle.query(stateQuery)).inFlight.map((f) => f.workflowId)).toContain(child.workflowId);
    expect(rolled.historyLength).toBeLessThanOrEqual(MAX_HISTORY + 40);

    await c.fault.clear();
    await eventually('object gone', async () => (await c.getNodeEni('can')) === undefined, 60_000);
    expect(await enisOf(c.ec2, obj.metadata.uid)).toEqual([]);
    // The entity ends just after it removed the finalizer (it still records the CleanupComplete Event).
    const done = await eventually('entity completed', async () => {
      const d = await c.client.workflow.getHandle(entityWorkflowId(obj.metadata.name, obj.metadata.uid)).describe();
      return d.status.name !== 'RUNNING' && d;
    }, 30_000);
    expect(done.status.name).toBe('COMPLETED');
    expect(done.startTime.getTime()).toBeGreaterThan(childStarted);
    const childRun = await c.client.workflow.getHandle(child.workflowId).describe();
    expect(childRun.status.name).toBe('COMPLETED');
    // The child was started by an earlier run; a later one, which held it in flight, learned how it ended and finished.
  });

  it("a node's device-plugin workflow ends once nothing is published there and the node is gone", async () => {
    const node = c.nodes[1]!;
    await c.createNodeEni('dp', { nodeSelector: onNode(1), subnetNames: ['multus-a'], securityGroupNames: ['multus-sg'], dpdkResourceName: 'intel.com/sriov_gone' });
    await eventually('Ready and published', async () => {
      const o = await c.getNodeEni('dp');
      return isReady(o, 1) && o?.status?.attachments?.[0]?.dpdkResourceName === 'intel.com/sriov_gone';
    }, 90_000);
    await c.deleteNodeEni('dp');
    await eventually('deleted', async () => (await c.getNodeEni('dp')) === undefined, 90_000);
    const dp = c.client.workflow.getHandle(devicePluginWorkflowId(node.name));
    expect((await dp.describe()).status.name).toBe('RUNNING');
    await c.core.deleteNode({ name: node.name });
    await eventually('device-plugin workflow completed', async () => (await dp.describe()).status.name === 'COMPLETED', 30_000);
  });
});

// Idempotency: the control worker process is killed (SIGKILL) after the ENI
// was created and while the attach is in flight. A new worker process finishes
// the job: exactly one ENI exists and it is attached.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManagedProcess } from '../sandbox/backends/tools.js';
import { controlWorkerProcess } from './support/processes.js';
import { MOTO_DEFAULT_ACCOUNT } from '../sandbox/ec2/client.js';
import { createTestCluster, eventually, type TestCluster } from './support/cluster.js';
import { enisOf, isReady } from './support/inspect.js';

let c: TestCluster;
const workers: ManagedProcess[] = [];

async function startControlWorkerProcess(): Promise<ManagedProcess> {
  const p = await controlWorkerProcess(c);
  workers.push(p);
  return p;
}

beforeAll(async () => {
  c = await createTestCluster({ account: MOTO_DEFAULT_ACCOUNT, controlWorker: false });
});
afterAll(async () => {
  await Promise.allSettled(workers.map((w) => w.stop()));
  await c?.fault.clear();
  await c?.dispose();
});

describe('crash between create and attach', () => {
  it('a restarted control worker adopts the created ENI instead of creating another', async () => {
    // Hold the attach in the proxy long enough to kill the worker while it waits.
    await c.fault.addRules({ action: 'AttachNetworkInterface', account: MOTO_DEFAULT_ACCOUNT, latencyMs: 120_000, code: 'RequestLimitExceeded', count: 1 });
    const first = await startControlWorkerProcess();
    const node = c.nodes[0]!;
    const obj = await c.createNodeEni('crash', { nodeSelector: { 'nodeeni-test': c.runId, 'kubernetes.io/hostname': node.name }, subnetNames: ['multus-a'], securityGroupNames: ['multus-sg'] });
    await eventually('ENI created and attach in flight', async () => {
      const counts = await c.fault.counts(MOTO_DEFAULT_ACCOUNT);
      return (counts.CreateNetworkInterface ?? 0) >= 1 && (counts.AttachNetworkInterface ?? 0) >= 1;
    }, 90_000);
    const killedAt = Date.now();
    first.child.kill('SIGKILL');
    await first.stop();
    const between = await enisOf(c.ec2, obj.metadata.uid);
    expect(between).toHaveLength(1);
    expect(between[0]!.Attachment).toBeUndefined();
    await c.fault.clear();

    await startControlWorkerProcess();
    await eventually('Ready after restart', async () => isReady(await c.getNodeEni('crash'), 1), 120_000);
    console.log(`recovered ${Date.now() - killedAt} ms after the kill`);
    const after = await enisOf(c.ec2, obj.metadata.uid);
    expect(after.map((e) => e.NetworkInterfaceId)).toEqual([between[0]!.NetworkInterfaceId]);
    expect(after[0]!.Attachment?.InstanceId).toBe(c.world.instances[0]!.id);
    expect(after[0]!.Attachment?.Status).toBe('attached');

    await c.deleteNodeEni('crash');
    await eventually('deleted', async () => (await c.getNodeEni('crash')) === undefined, 60_000);
  });
});

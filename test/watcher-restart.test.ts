// A watcher restart while NodeENIs and nodes change: it converges from what it
// lists at start-up, and starts no second workflow for an entity.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestCluster, eventually, type TestCluster } from './support/cluster.js';
import { enisOf, isReady } from './support/inspect.js';

let c: TestCluster;
beforeAll(async () => {
  c = await createTestCluster();
  await c.labelNode(c.nodes[0]!.name, { role: 'a' });
  await c.labelNode(c.nodes[2]!.name, { role: 'a' });
});
afterAll(async () => {
  await c?.dispose();
});

async function entityRuns(name: string): Promise<string[]> {
  const ids: string[] = [];
  for await (const wf of c.client.workflow.list({ query: `WorkflowType = 'nodeEniEntity' AND NodeENI = '${name}'` })) ids.push(`${wf.workflowId}:${wf.status.name}`);
  return ids;
}

describe('watcher restart', () => {
  it('converges on changes made while it was down, without duplicate workflows', async () => {
    const spec = { subnetNames: ['multus-a', 'multus-b'], securityGroupNames: ['multus-sg'] };
    const a = await c.createNodeEni('a', { nodeSelector: { 'nodeeni-test': c.runId, role: 'a' }, ...spec });
    await eventually('a Ready on nodes 0 and 2', async () => isReady(await c.getNodeEni('a'), 2), 90_000);

    await c.stopWatcher();
    // While nobody watches: node 2 leaves a's selector, node 1 joins it, and a new NodeENI appears.
    await c.labelNode(c.nodes[2]!.name, { role: 'b' });
    await c.labelNode(c.nodes[1]!.name, { role: 'a' });
    const b = await c.createNodeEni('b', { nodeSelector: { 'nodeeni-test': c.runId, role: 'b' }, ...spec });
    await c.startWatcher();
    // A second restart right away must not start anything twice either.
    await c.stopWatcher();
    await c.startWatcher();

    await eventually('a on nodes 0 and 1, b on node 2', async () => {
      const [oa, ob] = [await c.getNodeEni('a'), await c.getNodeEni('b')];
      return isReady(oa, 2) && isReady(ob, 1) &&
        oa!.status!.attachments!.map((x) => x.nodeID).sort().join() === [c.nodes[0]!.name, c.nodes[1]!.name].sort().join() &&
        ob!.status!.attachments![0]!.nodeID === c.nodes[2]!.name;
    }, 120_000);
    expect((await enisOf(c.ec2, a.metadata.uid)).map((e) => e.Attachment?.InstanceId).sort()).toEqual([c.world.instances[0]!.id, c.world.instances[1]!.id].sort());
    expect((await enisOf(c.ec2, b.metadata.uid)).map((e) => e.Attachment?.InstanceId)).toEqual([c.world.instances[2]!.id]);
    expect(await entityRuns(a.metadata.name)).toEqual([expect.stringMatching(/:RUNNING$/)]);
    expect(await entityRuns(b.metadata.name)).toEqual([expect.stringMatching(/:RUNNING$/)]);

    await c.deleteNodeEni('a');
    await c.deleteNodeEni('b');
    await eventually('both deleted', async () => (await c.getNodeEni('a')) === undefined && (await c.getNodeEni('b')) === undefined, 90_000);
  });
});

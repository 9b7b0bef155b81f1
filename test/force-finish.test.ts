// Force-finish: an operator ends a teardown stuck on a persistent EC2 error,
// from our CLI's client code and from the `temporal` CLI, also when the
// teardown it must stop has already ended without reporting, and when the ENI
// it would leave is already gone (then nothing is said to be left behind).
import { execFile } from 'node:child_process';
import { DeleteNetworkInterfaceCommand } from '@aws-sdk/client-ec2';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { entityWorkflowId, TAG } from '../common/names.js';
import { forceFinish, entityView } from '../cli/operator-client.js';
import { TOOL } from '../sandbox/backends/tools.js';
import { Worker } from '@temporalio/worker';

import { FORCE_ENDED_PATCH, FORCE_KEPT_PATCH } from '../workflows/nodeeni-entity.js';
import { DEFAULT_ENTITY_OPTIONS } from '../common/workflow-api.js';
import { dataConverter } from '../workers/payload-codec.js';
import { createTestCluster, eventually, workflowBundle, type TestCluster } from './support/cluster.js';
import { conditionOf, enisOf, eventsFor, isReady, patchesIn, tagOf } from './support/inspect.js';

const run = promisify(execFile);
let c: TestCluster;
beforeAll(async () => {
  c = await createTestCluster();
});
// A test that fails midway must not leave its faults to the next.
afterEach(async () => {
  await c?.fault.clear();
});
afterAll(async () => {
  await c?.fault.clear();
  await c?.dispose();
});

async function readyNodeEni(name: string, node: string) {
  const obj = await c.createNodeEni(name, { nodeSelector: { 'nodeeni-test': c.runId, 'kubernetes.io/hostname': node }, subnetNames: ['multus-a', 'multus-b'], securityGroupNames: ['multus-sg'] });
  await eventually(`${name} Ready`, async () => isReady(await c.getNodeEni(name), 1), 90_000);
  const [eni] = await enisOf(c.ec2, obj.metadata.uid);
  return { obj, eniId: eni!.NetworkInterfaceId! };
}

async function stuckDeleting(name: string) {
  await c.deleteNodeEni(name);
  return eventually('teardown stuck on DeleteNetworkInterface', async () => {
    const o = await c.getNodeEni(name);
    const counts = await c.fault.counts(c.account);
    return !!o?.metadata.deletionTimestamp && (counts.DeleteNetworkInterface ?? 0) >= 2 && o;
  }, 60_000);
}

describe('force-finish', () => {
  it('ends a stuck teardown from our CLI: finalizer removed, leftover tagged, recorded in an Event', async () => {
    const { obj, eniId } = await readyNodeEni('stuck', c.nodes[0]!.name);
    await c.fault.addRules({ action: 'DeleteNetworkInterface', account: c.account, code: 'InternalError', message: 'injected: EC2 keeps failing' });
    const stuck = await stuckDeleting('stuck');
    expect(stuck.metadata.finalizers?.length).toBeGreaterThan(0);
    // Nothing to force on another node: the validator rejects the request.
    await expect(forceFinish(c.client, stuck.metadata.name, { reason: 'wrong node', node: 'no-such-node' })).rejects.toThrow(/nothing to force-finish/);

    const res = await forceFinish(c.client, stuck.metadata.name, { reason: 'ticket OPS-1: EC2 delete keeps failing', node: c.nodes[0]!.name });
    expect(res.leftBehind).toEqual([eniId]);
    await eventually('object gone', async () => (await c.getNodeEni('stuck')) === undefined);
    await c.fault.clear();

    const left = await enisOf(c.ec2, obj.metadata.uid);
    expect(left.map((e) => e.NetworkInterfaceId)).toEqual([eniId]);
    expect(tagOf(left[0]!, TAG.leaked)).toBe('ticket OPS-1: EC2 delete keeps failing');
    const events = await eventsFor(c.core, obj.metadata.uid);
    expect(events.find((e) => e.reason === 'ForceFinished')?.message).toContain(eniId);
  });

  it('works from `temporal workflow update execute`, and status lists what was left', async () => {
    const { obj, eniId } = await readyNodeEni('stuck2', c.nodes[2]!.name);
    await c.fault.addRules({ action: 'DetachNetworkInterface', account: c.account, code: 'UnauthorizedOperation', message: 'injected: no permission' });
    await c.deleteNodeEni('stuck2');
    const failing = await eventually('teardown failure in status', async () => {
      const o = await c.getNodeEni('stuck2');
      return conditionOf(o, 'Degraded')?.reason === 'TeardownFailed' && o;
    }, 60_000);
    expect(failing.status!.attachments!.find((a) => a.eniID === eniId)?.message).toContain('UnauthorizedOperation');
    const view = await entityView(c.client, failing.metadata.name);
    expect(Object.keys(view.state.failures)).toEqual([`eni:${eniId}`]);

    const { stdout } = await run(TOOL.temporal, [
      'workflow', 'update', 'execute',
      '--address', c.backends.temporalAddress,
      '--workflow-id', entityWorkflowId(obj.metadata.name, obj.metadata.uid),
      '--name', 'forceFinish',
      '--input', JSON.stringify({ reason: 'decommissioned by hand' }),
    ]);
    expect(stdout).toContain(eniId);
    await eventually('object gone', async () => (await c.getNodeEni('stuck2')) === undefined);
    await c.fault.clear();
    expect((await enisOf(c.ec2, obj.metadata.uid)).map((e) => tagOf(e, TAG.leaked))).toEqual(['decommissioned by hand']);
  });

  it('answers when the teardown it must stop has already ended without a word (terminated by hand): its ENI is left', async () => {
    const { obj, eniId } = await readyNodeEni('ended', c.nodes[1]!.name);
    await c.fault.addRules({ action: 'DeleteNetworkInterface', account: c.account, match: { NetworkInterfaceId: eniId }, code: 'InternalError', message: 'injected: EC2 keeps failing' });
    await c.deleteNodeEni('ended');
    const child = await eventually('teardown child running', async () => (await entityView(c.client, obj.metadata.name)).inFlight.find((f) => f.op === 'teardown'), 30_000);
    // Ended without reporting: the entity still holds it in flight until its children check (30 s).
    await c.client.workflow.getHandle(child.workflowId).terminate('an operator cleaning up by hand');
    // Before nodeeni-entity-force-kept, telling the ended child to stop failed the pass and the request was lost: no answer, ever.
    const res = await Promise.race([
      forceFinish(c.client, obj.metadata.name, { reason: 'ticket OPS-3: teardown terminated by hand' }),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('forceFinish: no answer within 25 s')), 25_000)),
    ]);
    expect(res.leftBehind).toEqual([eniId]);
    const answeredAt = Date.now();
    await eventually('object gone', async () => (await c.getNodeEni('ended')) === undefined, 60_000);
    // The ended child is not in flight once the force-finish found it ended (FORCE_ENDED_PATCH): before, the
    // finalizer waited for the next children check, up to childCheckSeconds (30 s) after the answer.
    expect(Date.now() - answeredAt, 'ms from the answer to the object gone').toBeLessThan(DEFAULT_ENTITY_OPTIONS.childCheckSeconds * 1000 / 3);
    await c.fault.clear();
    expect((await enisOf(c.ec2, obj.metadata.uid)).map((e) => [e.NetworkInterfaceId, tagOf(e, TAG.leaked)])).toEqual([[eniId, 'ticket OPS-3: teardown terminated by hand']]);
    const events = await eventsFor(c.core, obj.metadata.uid);
    expect(events.find((e) => e.reason === 'ForceFinished')?.message).toContain(eniId);
    expect(events.filter((e) => e.reason === 'ForceFinished').reduce((n, e) => n + (e.count ?? 1), 0), 'told once').toBe(1);

    // The entity's history, with the patch recorded where it applied the request, replays.
    const history = await c.client.workflow.getHandle(entityWorkflowId(obj.metadata.name, obj.metadata.uid)).fetchHistory();
    expect(patchesIn(history)).toEqual(expect.arrayContaining([FORCE_KEPT_PATCH, FORCE_ENDED_PATCH]));
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle(), dataConverter }, history, entityWorkflowId(obj.metadata.name, obj.metadata.uid));
  });

  it('leaves nothing behind when EC2 deleted the ENI but every answer to the delete was lost', async () => {
    const { obj, eniId } = await readyNodeEni('lost-answer', c.nodes[0]!.name);
    // The delete takes effect; the teardown only ever hears InternalError, so it retries an ENI that is gone.
    await c.fault.addRules({ action: 'DeleteNetworkInterface', account: c.account, match: { NetworkInterfaceId: eniId }, code: 'InternalError', afterEffect: true, message: 'injected: answer lost' });
    await stuckDeleting('lost-answer');
    expect(await enisOf(c.ec2, obj.metadata.uid)).toEqual([]);

    const res = await forceFinish(c.client, obj.metadata.name, { reason: 'ticket OPS-4: delete keeps failing' });
    expect(res.leftBehind).toEqual([]);
    await eventually('object gone', async () => (await c.getNodeEni('lost-answer')) === undefined, 60_000);
    await c.fault.clear();
    const result = await c.client.workflow.getHandle(entityWorkflowId(obj.metadata.name, obj.metadata.uid)).result();
    expect(result).toEqual({ leftBehind: [] });
    const forced = (await eventsFor(c.core, obj.metadata.uid)).find((e) => e.reason === 'ForceFinished');
    expect([forced?.type, forced?.message]).toEqual(['Normal', expect.stringContaining(`${eniId} force-finished: ticket OPS-4: delete keeps failing; the ENI was already deleted`)]);
  });

  it('answers at once when the provisioning it must stop ended without a word (terminated by hand), and the provisioning is retried', async () => {
    await c.fault.addRules({ action: 'CreateNetworkInterface', account: c.account, code: 'InternalError', message: 'injected: EC2 keeps failing' });
    const obj = await c.createNodeEni('prov-ended', { nodeSelector: { 'nodeeni-test': c.runId, 'kubernetes.io/hostname': c.nodes[1]!.name }, subnetNames: ['multus-a', 'multus-b'], securityGroupNames: ['multus-sg'] });
    const child = await eventually('provisioning child running', async () => (await entityView(c.client, obj.metadata.name)).inFlight.find((f) => f.op === 'provision'), 30_000);
    await eventually('provisioning stuck on CreateNetworkInterface', async () => (await c.fault.rules()).some((r) => r.action === 'CreateNetworkInterface' && r.applied >= 1), 30_000);
    await c.client.workflow.getHandle(child.workflowId).terminate('an operator cleaning up by hand');

    // The pass that applies the request finds the child ended and the next, at once, asks how (FORCE_ENDED_PATCH):
    // before, the update waited for the children check, up to childCheckSeconds (30 s).
    const asked = Date.now();
    const res = await forceFinish(c.client, obj.metadata.name, { reason: 'ticket OPS-6: provisioning terminated by hand' });
    expect(Date.now() - asked, 'ms to the answer').toBeLessThan(DEFAULT_ENTITY_OPTIONS.childCheckSeconds * 1000 / 3);
    expect(res.leftBehind).toEqual([]);
    await c.fault.clear();
    // The ended provisioning counts as failed: retried after its back-off, and the NodeENI converges.
    const ready = await eventually('Ready after the retry', async () => {
      const o = await c.getNodeEni('prov-ended');
      return isReady(o, 1) && o;
    }, 60_000);
    expect(await enisOf(c.ec2, obj.metadata.uid)).toHaveLength(1);
    const entityId = entityWorkflowId(obj.metadata.name, obj.metadata.uid);
    const history = await c.client.workflow.getHandle(entityId).fetchHistory();
    expect(patchesIn(history)).toContain(FORCE_ENDED_PATCH);
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle(), dataConverter }, history, entityId);

    expect(ready.status!.readyCount).toBe(1);
    await c.deleteNodeEni('prov-ended');
    await eventually('object gone', async () => (await c.getNodeEni('prov-ended')) === undefined, 60_000);
  });

  it('leaves nothing behind when the teardown it must stop ended without a word and its ENI is gone', async () => {
    const { obj, eniId } = await readyNodeEni('ended-gone', c.nodes[2]!.name);
    await c.fault.addRules({ action: 'DeleteNetworkInterface', account: c.account, match: { NetworkInterfaceId: eniId }, code: 'InternalError', message: 'injected: EC2 keeps failing' });
    await c.deleteNodeEni('ended-gone');
    const child = await eventually('teardown child running', async () => (await entityView(c.client, obj.metadata.name)).inFlight.find((f) => f.op === 'teardown'), 30_000);
    expect(child.eniId).toBe(eniId);
    await eventually('teardown stuck on DeleteNetworkInterface', async () => (await c.fault.rules()).some((r) => r.match?.NetworkInterfaceId === eniId && r.applied >= 1), 30_000);
    // Ended without reporting, and the ENI deleted by hand, both behind the entity's back.
    await c.client.workflow.getHandle(child.workflowId).terminate('an operator cleaning up by hand');
    await c.fault.clear();
    await c.ec2.send(new DeleteNetworkInterfaceCommand({ NetworkInterfaceId: eniId }));

    const res = await forceFinish(c.client, obj.metadata.name, { reason: 'ticket OPS-5: cleaned up by hand' });
    expect(res.leftBehind).toEqual([]);
    await eventually('object gone', async () => (await c.getNodeEni('ended-gone')) === undefined, 60_000);
    const result = await c.client.workflow.getHandle(entityWorkflowId(obj.metadata.name, obj.metadata.uid)).result();
    expect(result).toEqual({ leftBehind: [] });
    const forced = (await eventsFor(c.core, obj.metadata.uid)).find((e) => e.reason === 'ForceFinished');
    expect([forced?.type, forced?.message]).toEqual(['Normal', expect.stringContaining('the ENI was already deleted, nothing is left behind')]);
  });
});

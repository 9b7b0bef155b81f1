// The entity under ordinary production trouble, on the real backends: the
// same node relabelled out and back in, a compensation followed by a retry,
// passes failing for a while (an IAM outage), the failure of a node that left
// forgotten, a provisioning that hangs, an
// attach whose answer was lost, and a continue-as-new while a child runs. The workflow never fails, and its state
// survives every one of them.
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entityWorkflowId } from '../common/names.js';
import { reconcileSignal, stateQuery } from '../common/workflow-api.js';
import { forceFinish } from '../cli/operator-client.js';
import { PRUNE_FAILURES_PATCH } from '../workflows/nodeeni-entity.js';
import { UNDO_STOPS_AT_FAILURE_PATCH } from '../workflows/provision-attachment.js';
import { dataConverter } from '../workers/payload-codec.js';
import { createTestCluster, eventually, workflowBundle, type TestCluster } from './support/cluster.js';
import { conditionOf, enisOf, eventsFor, isReady, patchesIn } from './support/inspect.js';

let c: TestCluster;
beforeAll(async () => {
  c = await createTestCluster({ entityOptions: { provisionDeadlineSeconds: 20 } });
});
afterAll(async () => {
  await c?.fault.clear();
  await c?.dispose();
});

const spec = (node: string) => ({
  nodeSelector: { 'nodeeni-test': c.runId, 'kubernetes.io/hostname': node, ng: 'in' },
  subnetNames: ['multus-a', 'multus-b'],
  securityGroupNames: ['multus-sg'],
});

async function entityStatus(obj: { metadata: { name: string; uid: string } }) {
  return (await c.client.workflow.getHandle(entityWorkflowId(obj.metadata.name, obj.metadata.uid)).describe()).status.name;
}

async function liveEnis(uid: string) {
  return (await enisOf(c.ec2, uid)).map((e) => ({ id: e.NetworkInterfaceId!, status: e.Attachment?.Status }));
}

describe('per-attempt idempotency', () => {
  it('a node relabelled out and back in gets exactly one new ENI and is Ready again', async () => {
    const node = c.nodes[0]!.name;
    await c.labelNode(node, { ng: 'in' });
    const obj = await c.createNodeEni('relabel', spec(node));
    await eventually('Ready', async () => isReady(await c.getNodeEni('relabel'), 1), 60_000);
    const [first] = await liveEnis(obj.metadata.uid);

    for (let cycle = 1; cycle <= 2; cycle++) {
      const started = Date.now();
      await c.labelNode(node, { ng: null });
      await eventually('ENI deleted', async () => (await liveEnis(obj.metadata.uid)).length === 0, 60_000);
      const out = Date.now() - started;
      await c.labelNode(node, { ng: 'in' });
      await eventually('Ready again', async () => isReady(await c.getNodeEni('relabel'), 1), 60_000);
      const enis = await liveEnis(obj.metadata.uid);
      expect(enis).toHaveLength(1);
      expect(enis[0]!.id).not.toBe(first!.id);
      expect(enis[0]!.status).toBe('attached');
      console.log(`[relabel] cycle ${cycle}: out → ENI deleted ${out} ms, out → in → Ready ${Date.now() - started} ms`);
    }
    expect(conditionOf(await c.getNodeEni('relabel'), 'Degraded')?.status).toBe('False');
    expect(await entityStatus(obj)).toBe('RUNNING');
  });

  it('a compensated provisioning is retried after back-off and succeeds with a new ENI', async () => {
    const node = c.nodes[2]!.name;
    await c.labelNode(node, { ng: 'in' });
    await c.fault.addRules({ action: 'AttachNetworkInterface', account: c.account, code: 'InvalidParameterValue', message: 'injected: attach refused once', count: 1 });
    const obj = await c.createNodeEni('retry', spec(node));
    await eventually('Ready after the retry', async () => isReady(await c.getNodeEni('retry'), 1), 60_000);
    const reasons = (await eventsFor(c.core, obj.metadata.uid)).map((e) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(['ProvisioningFailed', 'ENICreated', 'ENIAttached']));
    expect(reasons.filter((r) => r === 'ENICreated')).toHaveLength(2);
    expect(await liveEnis(obj.metadata.uid)).toHaveLength(1);
  });
});

describe('a failed pass is a condition, an Event and a retry', () => {
  it('survives an IAM outage on DescribeInstances with its state, and recovers by itself', async () => {
    const node = c.nodes[1]!.name;
    await c.labelNode(node, { ng: 'in' });
    const obj = await c.createNodeEni('outage', spec(node));
    await eventually('Ready', async () => isReady(await c.getNodeEni('outage'), 1), 60_000);
    const [eni] = await liveEnis(obj.metadata.uid);
    const handle = c.client.workflow.getHandle(entityWorkflowId(obj.metadata.name, obj.metadata.uid));

    await c.fault.addRules({ action: 'DescribeInstances', account: c.account, code: 'UnauthorizedOperation', httpStatus: 403, message: 'injected: not authorized' });
    await handle.signal(reconcileSignal);
    const degraded = await eventually('Degraded ReconcileFailed', async () => {
      const o = await c.getNodeEni('outage');
      const d = conditionOf(o, 'Degraded');
      return d?.reason === 'ReconcileFailed' && d;
    }, 30_000);
    expect(degraded.message).toContain('UnauthorizedOperation');
    // Several failed passes, one Warning Event for them.
    await eventually('retried', async () => ((await c.fault.counts(c.account)).DescribeInstances ?? 0) >= 4, 30_000);
    const warnings = (await eventsFor(c.core, obj.metadata.uid)).filter((e) => e.reason === 'ReconcileFailed');
    expect(warnings).toHaveLength(1);
    expect(await entityStatus(obj)).toBe('RUNNING');

    await c.fault.clear();
    await eventually('recovered', async () => {
      const o = await c.getNodeEni('outage');
      return isReady(o, 1) && conditionOf(o, 'Degraded')?.status === 'False';
    }, 60_000);
    // The state survived: the same ENI, nothing provisioned again.
    expect((await liveEnis(obj.metadata.uid)).map((e) => e.id)).toEqual([eni!.id]);
    const view = await handle.query(stateQuery);
    expect(Object.values(view.state.configured).map((a) => a.eniId)).toEqual([eni!.id]);
    expect((await eventsFor(c.core, obj.metadata.uid)).map((e) => e.reason)).toContain('ReconcileRecovered');
  });

  it('forgets the failure of a node relabelled out: nothing will retry it', async () => {
    const node = c.nodes[1]!.name;
    await c.labelNode(node, { prune: 'in' });
    await c.fault.addRules({ action: 'CreateNetworkInterface', account: c.account, code: 'InvalidParameterValue', message: 'injected: create refused' });
    const obj = await c.createNodeEni('forgotten', { nodeSelector: { 'nodeeni-test': c.runId, 'kubernetes.io/hostname': node, prune: 'in' }, subnetNames: ['multus-a'], securityGroupNames: ['multus-sg'] });
    const handle = c.client.workflow.getHandle(entityWorkflowId(obj.metadata.name, obj.metadata.uid));
    const failing = await eventually('the provisioning failed, backing off', async () => {
      const keys = Object.keys((await handle.query(stateQuery)).state.failures);
      return keys.length > 0 && keys;
    }, 60_000);
    expect(failing).toEqual([expect.stringContaining(`/${node}/`)]);

    await c.labelNode(node, { prune: null });
    await eventually('the failure forgotten', async () => Object.keys((await handle.query(stateQuery)).state.failures).length === 0, 30_000);
    const o = await c.getNodeEni('forgotten');
    expect(conditionOf(o, 'Ready')?.reason).toBe('NoMatchingNodes');
    expect(conditionOf(o, 'Progressing')?.message).not.toContain('backing off');
    await c.fault.clear();

    // Its history, with the patch recorded where the failure was forgotten, replays.
    const history = await handle.fetchHistory();
    expect(patchesIn(history)).toContain(PRUNE_FAILURES_PATCH);
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle(), dataConverter }, history, handle.workflowId);
  });
});

describe('bounded children', () => {
  it('force-finish ends a hanging provisioning; it is retried once EC2 recovers', async () => {
    const node = c.nodes[0]!.name;
    await c.labelNode(node, { ng: 'in' });
    await c.fault.addRules({ action: 'AttachNetworkInterface', account: c.account, code: 'InternalError', message: 'injected: EC2 keeps failing' });
    const obj = await c.createNodeEni('hang', spec(node));
    await eventually('attach retried', async () => ((await c.fault.counts(c.account)).AttachNetworkInterface ?? 0) >= 2, 30_000);
    await forceFinish(c.client, obj.metadata.name, { reason: 'ticket OPS-7: attach hangs' });
    await eventually('provisioning ended as ForceFinished', async () =>
      (await eventsFor(c.core, obj.metadata.uid)).some((e) => e.reason === 'ProvisioningFailed' && e.message?.includes('ForceFinished') && e.message.includes('undone: delete')), 30_000);
    await c.fault.clear();
    await eventually('Ready after the back-off', async () => isReady(await c.getNodeEni('hang'), 1), 60_000);
    expect(await liveEnis(obj.metadata.uid)).toHaveLength(1);
    await c.deleteNodeEni('hang');
    await eventually('gone', async () => (await c.getNodeEni('hang')) === undefined, 60_000);
  });

  it('a provisioning past its deadline is undone and retried', async () => {
    const node = c.nodes[2]!.name;
    await c.labelNode(node, { ng: 'in' });
    await c.fault.addRules({ action: 'AttachNetworkInterface', account: c.account, code: 'InternalError', message: 'injected: EC2 keeps failing' });
    const obj = await c.createNodeEni('deadline', spec(node));
    await eventually('deadline exceeded, undone', async () =>
      (await eventsFor(c.core, obj.metadata.uid)).some((e) => e.reason === 'ProvisioningFailed' && e.message?.includes('ProvisionDeadlineExceeded') && e.message.includes('undone: delete')), 60_000);
    await c.fault.clear();
    await eventually('Ready after the back-off', async () => isReady(await c.getNodeEni('deadline'), 1), 60_000);
    expect(await liveEnis(obj.metadata.uid)).toHaveLength(1);
  });
});

describe('an answer lost on the way back', () => {
  it('an ENI whose attach took effect, with its answer lost, is detached before it is deleted when a later step fails', async () => {
    const node = c.nodes[0]!.name;
    // EC2 attaches; the answer never arrives. The retry finds the ENI attached to this instance already.
    await c.fault.addRules({ action: 'AttachNetworkInterface', account: c.account, afterEffect: true, dropConnection: true, count: 1 });
    // A later step fails for good: the interface is not at the PCI address the spec names.
    const obj = await c.createNodeEni('lost-answer', {
      nodeSelector: { 'nodeeni-test': c.runId, 'kubernetes.io/hostname': node },
      subnetNames: ['multus-a', 'multus-b'],
      securityGroupNames: ['multus-sg'],
      dpdkResourceName: 'sriov_kernel',
      dpdkPCIAddress: '0000:00:1f.7',
    });
    // Recorded once the undo has run: a delete without the detach is refused (InUse) until its schedule runs out.
    const failed = await eventually('provisioning failed and undone', async () =>
      (await eventsFor(c.core, obj.metadata.uid)).find((e) => e.reason === 'ProvisioningFailed' && e.message?.includes('PciAddressMismatch')), 60_000);
    expect((await c.fault.rules())[0]).toMatchObject({ afterEffect: true, applied: 1 });
    const [, eniId] = /undone: .*delete (eni-[0-9a-f]+) \(detached first if attached\)/.exec(failed.message ?? '') ?? [];
    expect(eniId, failed.message).toBeDefined();
    expect((await enisOf(c.ec2, obj.metadata.uid)).map((e) => e.NetworkInterfaceId)).not.toContain(eniId);
    await c.deleteNodeEni('lost-answer');
    await eventually('gone', async () => (await c.getNodeEni('lost-answer')) === undefined, 60_000);
    expect(await liveEnis(obj.metadata.uid)).toEqual([]);
  });
});

describe('an undo step refused', () => {
  it('stops the undo there: no delete EC2 must refuse, the child reports at once, and the next pass adopts the ENI', async () => {
    const node = c.nodes[1]!.name;
    // Permission to change DeleteOnTermination and to detach withdrawn for a while (an IAM change rolled
    // back): the provisioning fails for good after its attach, and the undo's detach is refused too.
    const denied = { account: c.account, code: 'UnauthorizedOperation', httpStatus: 403, message: 'injected: not authorized', activeForMs: 8_000 };
    await c.fault.addRules([{ action: 'ModifyNetworkInterfaceAttribute', ...denied }, { action: 'DetachNetworkInterface', ...denied }]);
    const deletesBefore = (await c.fault.counts(c.account)).DeleteNetworkInterface ?? 0;
    const obj = await c.createNodeEni('undo-refused', {
      nodeSelector: { 'nodeeni-test': c.runId, 'kubernetes.io/hostname': node },
      subnetNames: ['multus-a', 'multus-b'],
      securityGroupNames: ['multus-sg'],
      deleteOnTermination: true,
    });
    // Before, the delete after the refused detach was retried (InvalidNetworkInterface.InUse) for 15 minutes
    // and nothing was reported.
    const failed = await eventually('provisioning failed, its undo stopped at the detach', async () =>
      (await eventsFor(c.core, obj.metadata.uid)).find((e) => e.reason === 'ProvisioningFailed'), 20_000);
    const [, eniId] = /: UnauthorizedOperation: .*; could not detach (eni-[0-9a-f]+): .+; not tried: delete \1; what is left is for the next pass$/.exec(failed.message ?? '') ?? [];
    expect(eniId, failed.message).toBeDefined();
    expect((await c.fault.counts(c.account)).DeleteNetworkInterface ?? 0).toBe(deletesBefore);

    await eventually('Ready with the ENI left behind', async () => isReady(await c.getNodeEni('undo-refused'), 1), 60_000);
    expect(await liveEnis(obj.metadata.uid)).toEqual([{ id: eniId, status: 'attached' }]);
    expect((await eventsFor(c.core, obj.metadata.uid)).filter((e) => e.reason === 'ENICreated')).toHaveLength(1);

    // The first child's history holds the patch, and replays. (Retries while the permission was still
    // withdrawn failed too, with nothing of theirs to undo.)
    const failedRuns: { workflowId: string; start: number }[] = [];
    for await (const wf of c.client.workflow.list({ query: `NodeENI = '${obj.metadata.name}' AND WorkflowType = 'provisionAttachment' AND ExecutionStatus = 'Failed'` })) failedRuns.push({ workflowId: wf.workflowId, start: wf.startTime.getTime() });
    const first = failedRuns.sort((a, b) => a.start - b.start)[0]!.workflowId;
    const history = await c.client.workflow.getHandle(first).fetchHistory();
    expect(patchesIn(history)).toContain(UNDO_STOPS_AT_FAILURE_PATCH);
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle(), dataConverter }, history, first);

    await c.deleteNodeEni('undo-refused');
    await eventually('gone', async () => (await c.getNodeEni('undo-refused')) === undefined, 60_000);
    expect(await liveEnis(obj.metadata.uid)).toEqual([]);
  });
});

describe('a node agent away during provisioning', () => {
  let k: TestCluster;
  beforeAll(async () => {
    // A back-off far beyond the test: only the agent's start can bring the retry forward.
    k = await createTestCluster({ instances: 1, entityOptions: { failureBackoffSeconds: 600 } });
  });
  afterAll(async () => {
    await k?.dispose();
  });

  it('the failure backs off; the agent starting again retries it at once, with the same ENI', async () => {
    await k.stopAgent(0);
    const obj = await k.createNodeEni('away', { nodeSelector: { 'nodeeni-test': k.runId }, subnetNames: ['multus-a', 'multus-b'], securityGroupNames: ['multus-sg'] });
    const degraded = await eventually('NodeAgentUnavailable, backing off', async () => {
      const d = conditionOf(await k.getNodeEni('away'), 'Degraded');
      return d?.reason === 'NodeAgentUnavailable' && d;
    }, 60_000);
    expect(degraded.message).toMatch(/failed 1×, next try at/);
    const [eni] = await enisOf(k.ec2, obj.metadata.uid);
    expect(eni?.Attachment?.Status).toBe('attached');

    const startedAt = Date.now();
    await k.startAgent(0);
    await eventually('Ready', async () => isReady(await k.getNodeEni('away'), 1), 30_000);
    console.log(`[agent away] Ready ${Date.now() - startedAt} ms after the agent started (back-off 600 s)`);
    expect((await enisOf(k.ec2, obj.metadata.uid)).map((e) => e.NetworkInterfaceId)).toEqual([eni!.NetworkInterfaceId]);
    await k.deleteNodeEni('away');
    await eventually('gone', async () => (await k.getNodeEni('away')) === undefined, 60_000);
  });
});

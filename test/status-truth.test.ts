// What an operator sees while a step keeps failing: the NodeENI status and its
// Events say which step, why (the EC2 code), how often and when it is tried
// next; the Temporal UI's view of the workflows (current details, memo) says
// the same; and nothing is said twice that happened once.
import { defaultPayloadConverter } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entityWorkflowId } from '../common/names.js';
import type { NodeENIObject } from '../common/types.js';
import { forceFinishSignal } from '../common/workflow-api.js';
import { createTestCluster, eventually, type TestCluster } from './support/cluster.js';
import { conditionOf, enisOf, eventsFor, isReady } from './support/inspect.js';

let c: TestCluster;
beforeAll(async () => {
  c = await createTestCluster({ instances: 2, entityOptions: { childCheckSeconds: 1 } });
});
afterAll(async () => {
  await c?.dispose();
});

const onNode = (i: number) => ({ nodeSelector: { 'nodeeni-test': c.runId, 'kubernetes.io/hostname': c.nodes[i]!.name } });
const spec = { subnetNames: ['multus-a', 'multus-b'], securityGroupNames: ['multus-sg'] };

async function readyOn(name: string, node: number): Promise<NodeENIObject> {
  await c.createNodeEni(name, { ...onNode(node), ...spec });
  return eventually(`${name} Ready`, async () => {
    const o = await c.getNodeEni(name);
    return isReady(o, 1) && o;
  }, 60_000);
}

const eventCount = async (uid: string, reason: string) => (await eventsFor(c.core, uid)).filter((e) => e.reason === reason).reduce((n, e) => n + (e.count ?? 1), 0);

describe('a teardown step that keeps failing', () => {
  it('is in the status and the conditions with its code, attempts and next try, and in one Event', async () => {
    const ready = await readyOn('retrying', 0);
    const entityId = entityWorkflowId(ready.metadata.name, ready.metadata.uid);
    expect(ready.status!.workflowID).toBe(entityId);
    const eniId = (await enisOf(c.ec2, ready.metadata.uid))[0]!.NetworkInterfaceId!;

    await c.fault.addRules({ action: 'DeleteNetworkInterface', account: c.account, code: 'InternalError', message: 'injected: EC2 having a bad day', activeForMs: 8_000 });
    await c.deleteNodeEni('retrying');
    const seen = await eventually('Degraded TeardownRetrying', async () => {
      const o = await c.getNodeEni('retrying');
      const d = conditionOf(o, 'Degraded');
      return d?.status === 'True' && d.reason === 'TeardownRetrying' && /attempt [3-9]/.test(d.message) && o;
    }, 30_000);
    const degraded = conditionOf(seen, 'Degraded')!;
    expect(degraded.message).toContain(eniId);
    expect(degraded.message).toContain('deleteEni keeps failing');
    expect(degraded.message).toContain('InternalError');
    expect(degraded.message).toMatch(/next try at \d{4}-\d\d-\d\dT/);
    const row = seen.status!.attachments!.find((a) => a.eniID === eniId)!;
    expect(row.message).toMatch(/^retrying: deleteEni keeps failing \(attempt \d+\): InternalError/);
    expect(conditionOf(seen, 'Progressing')!.message).toBe('running: 0 provisioning, 1 teardown');

    // The Temporal UI: the entity's current details name the failing step and how to give up.
    // (What the UI reads: the built-in metadata query.)
    const meta = await c.client.workflow.getHandle(entityId).query<{ currentDetails?: string }>('__temporal_workflow_metadata');
    expect(meta.currentDetails).toContain('**Failing**');
    expect(meta.currentDetails).toContain(`teardown of ${eniId}`);
    expect(meta.currentDetails).toContain(`nodeeni force-finish ${ready.metadata.name}`);

    await eventually('gone after the outage', async () => (await c.getNodeEni('retrying')) === undefined, 60_000);
    // One Warning for the one distinct failure, however many retries; ENIDetached once.
    expect(await eventCount(ready.metadata.uid, 'TeardownRetrying')).toBe(1);
    expect(await eventCount(ready.metadata.uid, 'ENIDetached')).toBe(1);
  });

  it('a teardown failing for good is retried after back-off without saying "detached" again', async () => {
    const ready = await readyOn('failing', 1);
    await c.fault.addRules({ action: 'DeleteNetworkInterface', account: c.account, code: 'UnauthorizedOperation', message: 'injected: IAM outage', activeForMs: 8_000 });
    await c.deleteNodeEni('failing');
    const seen = await eventually('Degraded TeardownFailed with attempts and next try', async () => {
      const o = await c.getNodeEni('failing');
      const d = conditionOf(o, 'Degraded');
      return d?.reason === 'TeardownFailed' && o;
    }, 30_000);
    expect(conditionOf(seen, 'Degraded')!.message).toMatch(/UnauthorizedOperation.*failed \d+×, next try at .*force-finish/);
    await eventually('gone after the outage', async () => (await c.getNodeEni('failing')) === undefined, 60_000);
    expect(await eventCount(ready.metadata.uid, 'ENIDetached')).toBe(1);
  });
});

describe('force-finish sent as a signal that cannot apply', () => {
  it('leaves an Event saying why nothing happened', async () => {
    const ready = await readyOn('idle', 0);
    await c.client.workflow.getHandle(entityWorkflowId(ready.metadata.name, ready.metadata.uid)).signal(forceFinishSignal, { reason: 'just trying' });
    const ev = await eventually('ForceFinishIgnored Event', async () => (await eventsFor(c.core, ready.metadata.uid)).find((e) => e.reason === 'ForceFinishIgnored'), 20_000);
    expect(ev.type).toBe('Warning');
    expect(ev.message).toContain('nothing to force-finish');
    await c.deleteNodeEni('idle');
    await eventually('gone', async () => (await c.getNodeEni('idle')) === undefined, 60_000);
  });
});

describe('several children found retrying at one check', () => {
  it('get their Warnings recorded together, in one workflow task', async () => {
    // Both creates refused for a while: the two children (started by one pass) are retrying when the
    // entity first asks about them, childCheckSeconds (1 s here) after they started.
    await c.fault.addRules({ action: 'CreateNetworkInterface', account: c.account, code: 'InternalError', message: 'injected: EC2 refuses creates', activeForMs: 6_000 });
    const obj = await c.createNodeEni('both', { nodeSelector: { 'nodeeni-test': c.runId }, ...spec });
    await eventually('Ready on both nodes after the outage', async () => isReady(await c.getNodeEni('both'), 2), 60_000);
    expect(await eventCount(obj.metadata.uid, 'ProvisionRetrying')).toBe(2);

    const history = await c.client.workflow.getHandle(entityWorkflowId(obj.metadata.name, obj.metadata.uid)).fetchHistory();
    const warnings = (history.events ?? []).filter((e) => {
      const a = e.activityTaskScheduledEventAttributes;
      if (a?.activityType?.name !== 'recordEvent') return false;
      return defaultPayloadConverter.fromPayload<{ reason: string }>(a.input!.payloads![0]!).reason === 'ProvisionRetrying';
    });
    expect(warnings).toHaveLength(2);
    expect(new Set(warnings.map((e) => String(e.activityTaskScheduledEventAttributes!.workflowTaskCompletedEventId))).size).toBe(1);

    await c.deleteNodeEni('both');
    await eventually('gone', async () => (await c.getNodeEni('both')) === undefined, 60_000);
  });
});

// History hygiene: the entity continues-as-new before its history grows large
// and carries its state over (nothing is provisioned again), and every
// workflow history the system produced replays deterministically.
import { Worker } from '@temporalio/worker';
import proto from '@temporalio/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entityWorkflowId } from '../common/names.js';
import { defaultPayloadConverter } from '@temporalio/common';
import { childFinishedSignal, DEFAULT_ENTITY_OPTIONS, ENTITY_PRIORITY, nodeAgentStartedSignal, reconcileSignal } from '../common/workflow-api.js';
import { createTestCluster, eventually, workflowBundle, type TestCluster } from './support/cluster.js';
import { enisOf, eventsFor, isReady } from './support/inspect.js';
import { dataConverter } from '../workers/payload-codec.js';

let c: TestCluster;
beforeAll(async () => {
  // One node a drift pass and a resync an hour away: a round over three nodes takes three passes,
  // and only a signal starts one.
  c = await createTestCluster({ entityOptions: { maxHistoryLength: 60, driftNodesPerPass: 1, resyncSeconds: 3600 } });
});
afterAll(async () => {
  await c?.dispose();
});

/** The histories of the children (provision and teardown) that a visibility query finds. */
async function childHistories(filter: string) {
  const out: { workflowId: string; type: string; events: proto.temporal.api.history.v1.IHistoryEvent[] }[] = [];
  for await (const wf of c.client.workflow.list({ query: `${filter} AND WorkflowType IN ('provisionAttachment', 'teardownAttachment')` })) {
    const history = await c.client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
    out.push({ workflowId: wf.workflowId, type: wf.type, events: history.events ?? [] });
  }
  return out;
}

describe('entity history', () => {
  it('continues-as-new with its state, without provisioning again', async () => {
    const obj = await c.createNodeEni('can', { nodeSelector: { 'nodeeni-test': c.runId }, subnetNames: ['storage-a', 'storage-b'], securityGroupNames: ['storage-sg'] });
    await eventually('Ready on all three nodes', async () => isReady(await c.getNodeEni('can'), 3), 90_000);
    const before = await c.fault.counts(c.account);
    const handle = c.client.workflow.getHandle(entityWorkflowId(obj.metadata.name, obj.metadata.uid));
    const first = await handle.describe();
    const firstRun = first.runId;
    // Started by the watcher ahead of its children's tasks (ENTITY_PRIORITY).
    expect(first.raw.workflowExecutionInfo?.priority?.priorityKey).toBe(ENTITY_PRIORITY.priorityKey);
    for (let i = 0; i < 12; i++) {
      await c.client.workflow.getHandle(handle.workflowId).signal(reconcileSignal);
      await new Promise((r) => setTimeout(r, 150));
    }
    const latest = await eventually('a new run', async () => {
      const d = await c.client.workflow.getHandle(handle.workflowId).describe();
      return d.runId !== firstRun && d.status.name === 'RUNNING' && d;
    });
    expect(latest.historyLength).toBeLessThan(120);
    // Continue-as-new keeps the priority (the command has no field for it: the server carries it over).
    expect(latest.raw.workflowExecutionInfo?.priority?.priorityKey).toBe(ENTITY_PRIORITY.priorityKey);
    // The new run knows what is configured: no create or attach happened since.
    await eventually('settled', async () => isReady(await c.getNodeEni('can'), 3));
    const after = await c.fault.counts(c.account);
    expect(after.CreateNetworkInterface ?? 0).toBe(before.CreateNetworkInterface ?? 0);
    expect(after.AttachNetworkInterface ?? 0).toBe(before.AttachNetworkInterface ?? 0);
    expect(await enisOf(c.ec2, obj.metadata.uid)).toHaveLength(3);

    await c.deleteNodeEni('can');
    await eventually('deleted', async () => (await c.getNodeEni('can')) === undefined, 90_000);
  });

  it('asks the nodes about drift one pass at a time, in one round that a new run neither drops nor starts again, and a signal adds to', async () => {
    const obj = await c.createNodeEni('rounds', { nodeSelector: { 'nodeeni-test': c.runId }, subnetNames: ['storage-a', 'storage-b'], securityGroupNames: ['storage-sg'] });
    await eventually('Ready on all three nodes', async () => isReady(await c.getNodeEni('rounds'), 3), 90_000);
    const workflowId = entityWorkflowId(obj.metadata.name, obj.metadata.uid);
    // Settled, nothing runs: the next verify is the round this signal starts.
    await new Promise((r) => setTimeout(r, 2000));
    const since = Date.now();
    await c.client.workflow.getHandle(workflowId).signal(reconcileSignal);

    const verifies = async (since: number) => {
      const out: Array<{ run: string; pass: string; node: string; at: number }> = [];
      const runs: string[] = [];
      for await (const wf of c.client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) {
        const history = await c.client.workflow.getHandle(workflowId, wf.runId).fetchHistory();
        if (wf.startTime.getTime() >= since) runs.push(wf.runId);
        for (const e of history.events ?? []) {
          const a = e.activityTaskScheduledEventAttributes;
          const at = Number(e.eventTime?.seconds ?? 0) * 1000 + (e.eventTime?.nanos ?? 0) / 1e6;
          if (e.eventType === proto.temporal.api.enums.v1.EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED && a?.activityType?.name === 'verifyInterfaces' && at >= since) {
            out.push({ run: wf.runId, pass: `${wf.runId}/${String(a.workflowTaskCompletedEventId)}`, node: a.taskQueue?.name ?? '', at });
          }
        }
      }
      return { out: out.sort((x, y) => x.at - y.at), runs };
    };
    const round = await eventually('the round asked all three nodes', async () => {
      const v = await verifies(since);
      return v.out.length >= 3 && v;
    }, 30_000);
    // One node a pass.
    expect(new Set(round.out.map((v) => v.pass)).size).toBe(round.out.length);
    // The history limit (60 events) made the entity continue as new on the way; the round went on, and the new run did not begin another.
    await new Promise((r) => setTimeout(r, 8000));
    const later = await verifies(since);
    expect(later.runs.length, 'a new run since the signal').toBeGreaterThanOrEqual(1);
    expect(later.out).toHaveLength(3);

    // A signal while a round runs adds what is not queued to its end instead of starting over: with
    // changes signalled faster than a round takes, the nodes sorted last would never be asked.
    const again = Date.now();
    await c.client.workflow.getHandle(workflowId).signal(reconcileSignal);
    await eventually('the new round asked a first node', async () => (await verifies(again)).out.length >= 1, 30_000);
    await c.client.workflow.getHandle(workflowId).signal(reconcileSignal);
    const next = await eventually('three more asked', async () => {
      const v = await verifies(again);
      return v.out.length >= 3 && v;
    }, 30_000);
    expect(new Set(next.out.slice(0, 3).map((v) => v.node)).size, next.out.map((v) => v.node).join(', ')).toBe(3);

    await c.deleteNodeEni('rounds');
    await eventually('deleted', async () => (await c.getNodeEni('rounds')) === undefined, 90_000);
  });

  it('a new run begins with what the last one read of EC2 instead of reading every instance again', async () => {
    const obj = await c.createNodeEni('carry', { nodeSelector: { 'nodeeni-test': c.runId }, subnetNames: ['storage-a', 'storage-b'], securityGroupNames: ['storage-sg'] });
    const ready = await eventually('Ready on all three nodes', async () => {
      const o = await c.getNodeEni('carry');
      return isReady(o, 3) && o;
    }, 90_000);
    const handle = c.client.workflow.getHandle(entityWorkflowId(obj.metadata.name, obj.metadata.uid));
    await new Promise((r) => setTimeout(r, 2000));
    const firstRun = (await handle.describe()).runId;
    const before = await c.fault.counts(c.account);
    // Agent restarts change nothing outside (no full read is due, the resync is an hour away) but fill
    // the history: each is a pass that asks that node about its interfaces.
    const node = ready.status!.attachments![0]!.nodeID;
    let latest = await handle.describe();
    for (let i = 0; i < 40 && latest.runId === firstRun; i++) {
      await handle.signal(nodeAgentStartedSignal, { nodeName: node });
      await new Promise((r) => setTimeout(r, 250));
      latest = await handle.describe();
    }
    expect(latest.runId, 'continued as new').not.toBe(firstRun);
    // Let the new run make a few passes, then compare: it listed ENIs but read no instance, type, subnet or group.
    for (let i = 0; i < 3; i++) {
      await c.client.workflow.getHandle(handle.workflowId).signal(nodeAgentStartedSignal, { nodeName: node });
      await new Promise((r) => setTimeout(r, 500));
    }
    const after = await c.fault.counts(c.account);
    expect(after.DescribeNetworkInterfaces ?? 0).toBeGreaterThan(before.DescribeNetworkInterfaces ?? 0);
    for (const action of ['DescribeInstances', 'DescribeInstanceTypes', 'DescribeSubnets', 'DescribeSecurityGroups']) {
      expect(after[action] ?? 0, action).toBe(before[action] ?? 0);
    }
    expect(await enisOf(c.ec2, obj.metadata.uid)).toHaveLength(3);
    // A change from outside still makes the next pass read it all.
    await c.client.workflow.getHandle(handle.workflowId).signal(reconcileSignal);
    await eventually('a full read after the signal', async () => ((await c.fault.counts(c.account)).DescribeInstances ?? 0) > (before.DescribeInstances ?? 0), 30_000);

    await c.deleteNodeEni('carry');
    await eventually('deleted', async () => (await c.getNodeEni('carry')) === undefined, 90_000);
  });

  it('a new NodeENI is signalled once, its first pass reads the instances, the spec\'s references and the Go controller\'s ENIs side by side, no child is asked about as it starts, and reports carry their ENI or are re-read by id', async () => {
    const obj = await c.createNodeEni('first', { nodeSelector: { 'nodeeni-test': c.runId }, subnetNames: ['storage-a', 'storage-b'], securityGroupNames: ['storage-sg'] });
    await eventually('Ready on all three nodes', async () => isReady(await c.getNodeEni('first'), 3), 90_000);
    const workflowId = entityWorkflowId(obj.metadata.name, obj.metadata.uid);
    const runs: { runId: string; startTime: Date }[] = [];
    for await (const wf of c.client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) runs.push({ runId: wf.runId, startTime: wf.startTime });
    const first = runs.sort((a, b) => a.startTime.getTime() - b.startTime.getTime())[0]!;
    const events = (await c.client.workflow.getHandle(workflowId, first.runId).fetchHistory()).events ?? [];
    const at = (e: (typeof events)[number]) => Number(e.eventTime!.seconds) * 1000 + Math.floor((e.eventTime!.nanos ?? 0) / 1e6);
    // Children are started by an activity (STARTS_BY_ACTIVITY_PATCH); histories from before start child workflows.
    const firstChild = events.findIndex((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'startChildren');
    expect(firstChild).toBeGreaterThan(0);
    // Started by an activity: no child-workflow events in the entity's history.
    expect(events.filter((e) => e.startChildWorkflowExecutionInitiatedEventAttributes || e.childWorkflowExecutionStartedEventAttributes)).toEqual([]);

    // The watcher adds its finalizer and lets the update event poke: one signal, one pass before the first child.
    const signals = events.slice(0, firstChild).filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === reconcileSignal.name);
    expect(signals).toHaveLength(1);

    const scheduled = (type: string) => events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === type);
    // The first pass reads the instances, the spec's references and looks for the Go controller's ENIs
    // side by side (EARLY_REFERENCES_PATCH): none waits for another.
    const [look] = scheduled('findGoControllerEnis');
    const [references] = scheduled('lookUpSpecReferences');
    const [instances] = scheduled('describeInstancesForPass');
    expect(look && references && instances, 'all three scheduled').toBeTruthy();
    expect(scheduled('resolveSpec')).toEqual([]);
    const byTask = (e: (typeof events)[number]) => e.activityTaskScheduledEventAttributes!.workflowTaskCompletedEventId;
    expect([byTask(look!), byTask(references!)]).toEqual([byTask(instances!), byTask(instances!)]);

    // Children are first asked about childCheckSeconds after they started, not by the pass right after.
    const childCheckMs = DEFAULT_ENTITY_OPTIONS.childCheckSeconds * 1000; // this file's cluster keeps the default
    for (const asked of scheduled('describeChildren')) expect(at(asked) - at(events[firstChild]!)).toBeGreaterThanOrEqual(childCheckMs);

    // Passes woken by reports re-read the reported ENIs by id (REPORTED_REREADS_PATCH); the rest come from the last listing.
    await c.deleteNodeEni('first');
    await eventually('deleted', async () => (await c.getNodeEni('first')) === undefined, 90_000);
    const everyRun: { startTime: Date; events: typeof events }[] = [];
    for await (const wf of c.client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) {
      everyRun.push({ startTime: wf.startTime, events: (await c.client.workflow.getHandle(workflowId, wf.runId).fetchHistory()).events ?? [] });
    }
    everyRun.sort((a, b) => a.startTime.getTime() - b.startTime.getTime());
    const lastRun = everyRun.at(-1)!.events;
    const listings = everyRun.flatMap(({ events: h }) => h.flatMap((e, i) => {
      const a = e.activityTaskScheduledEventAttributes;
      if (a?.activityType?.name !== 'listManagedEnis') return [];
      const input = defaultPayloadConverter.fromPayload<{ eniIds?: string[] }>(a.input!.payloads![0]!);
      // What the reports since this run's previous listing said they changed.
      const before = h.slice(0, i);
      const previous = before.map((x) => x.activityTaskScheduledEventAttributes?.activityType?.name).lastIndexOf('listManagedEnis');
      const reportedSince = before.slice(previous + 1).flatMap((x) => x.workflowExecutionSignaledEventAttributes?.signalName === childFinishedSignal.name
        ? [defaultPayloadConverter.fromPayload<{ ok: boolean; result?: { eniId: string } }>(x.workflowExecutionSignaledEventAttributes.input!.payloads![0]!)] : []);
      return [{ eniIds: input.eniIds, reportedSince }];
    }));
    const narrow = listings.filter((l) => l.eniIds);
    for (const l of narrow) {
      expect(l.eniIds!.length).toBeGreaterThan(0);
      for (const id of l.eniIds!) expect(l.reportedSince.map((o) => o.result?.eniId), `re-read ${id}: reported since the last listing`).toContain(id);
    }
    // Every provisioning report says how it left its ENI in EC2 (REPORTS_TRUSTED_PATCH; lifecycle.test.ts
    // shows the pass it wakes reading nothing: here runs of 60 events begin anew too often for that).
    const provisionReports = everyRun.flatMap(({ events: h }) => h.flatMap((e) => {
      const signal = e.workflowExecutionSignaledEventAttributes;
      if (signal?.signalName !== childFinishedSignal.name) return [];
      const outcome = defaultPayloadConverter.fromPayload<{ op: string; ok: boolean; eni?: { eniId: string } }>(signal.input!.payloads![0]!);
      return outcome.op === 'provision' && outcome.ok ? [outcome] : [];
    }));
    expect(provisionReports.length).toBeGreaterThan(0);
    for (const r of provisionReports) expect(r.eni, 'a provisioning report carries its ENI').toBeDefined();

    // The finalizer went after a full listing: the last listing of the last run asked for no ids.
    const lastRunListings = lastRun.flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'listManagedEnis'
      ? [defaultPayloadConverter.fromPayload<{ eniIds?: string[] }>(e.activityTaskScheduledEventAttributes.input!.payloads![0]!)] : []);
    expect(lastRun.some((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'removeFinalizer'), 'the last run removed the finalizer').toBe(true);
    expect(lastRunListings.length).toBeGreaterThan(0);
    expect(lastRunListings.at(-1)!.eniIds, 'the listing before the finalizer went').toBeUndefined();

    // The children recorded their Events in one local activity after their report (eventsAfterReport):
    // one marker, no activity task on the server, and no patch asked. Wait until all six have closed.
    const children = await eventually('six children closed', async () => {
      const found = await childHistories(`NodeENI = '${c.runId}-first' AND ExecutionStatus = 'Completed'`);
      return found.length === 6 && found;
    });
    expect(children.map((h) => h.type).sort()).toEqual([...Array(3).fill('provisionAttachment'), ...Array(3).fill('teardownAttachment')]);
    for (const h of children) {
      const scheduledNames = h.events.flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
      expect(scheduledNames, h.workflowId).not.toContain('recordEvent');
      const localActivities = h.events.flatMap((e, i) => (e.markerRecordedEventAttributes?.markerName === 'core_local_activity' ? [i] : []));
      // Provision: ENICreated, ENIAttached, InterfaceConfigured; teardown: ENIDetached, ENIDeleted: all in one.
      expect(localActivities.length, h.workflowId).toBe(1);
      const report = h.events.findIndex((e) => e.signalExternalWorkflowExecutionInitiatedEventAttributes);
      expect(report, `${h.workflowId}: the report`).toBeGreaterThan(0);
      expect(localActivities[0], `${h.workflowId}: the Events after the report`).toBeGreaterThan(report);
      expect(h.events.filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch'), h.workflowId).toEqual([]);
    }
    const reasons = new Set((await eventsFor(c.core, obj.metadata.uid)).map((e) => e.reason));
    for (const reason of ['ENICreated', 'ENIAttached', 'InterfaceConfigured', 'ENIDetached', 'ENIDeleted']) expect(reasons, reason).toContain(reason);
  });

  it('replays every workflow history of this test deterministically', async () => {
    const histories = c.client.workflow.list({ query: `NodeENI = '${c.runId}-can' OR NodeENI = '${c.runId}-rounds' OR NodeENI = '${c.runId}-carry' OR NodeENI = '${c.runId}-first'` }).intoHistories();
    let replayed = 0;
    for await (const r of Worker.runReplayHistories({ workflowBundle: await workflowBundle(), dataConverter }, histories)) {
      expect(r.error, `${r.workflowId}: ${String(r.error)}`).toBeUndefined();
      replayed++;
    }
    // Two entity runs at least, three provisions, three teardowns.
    expect(replayed).toBeGreaterThanOrEqual(8);
  });
});

// The leaked-ENI sweeper on the real backends: ENIs of every kind made
// directly in EC2 (moto behind the fault proxy, which pages
// DescribeNetworkInterfaces as EC2 does for this file), a live NodeENI in the
// real API server, the sweep run by the control worker as its ServiceAccount.
// Deleted: ours, this cluster's, available, older than the grace period,
// with no live NodeENI, or tagged leaked. Never touched: ENIs without our
// tags, of another cluster, in use (leaked or not), too young, without a
// created-at tag, or owned by a live NodeENI. Then the Schedule the control
// worker process keeps: created at start, updated (never duplicated) by a
// second one, and a run it starts sweeps.
import { randomUUID } from 'node:crypto';
import {
  AttachNetworkInterfaceCommand,
  CreateNetworkInterfaceCommand,
  DescribeNetworkInterfacesCommand,
  type Tag,
} from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MANAGED_BY_VALUE, TAG } from '../common/names.js';
import type { NodeENIObject } from '../common/types.js';
import type { SweepInput, SweepResult } from '../common/workflow-api.js';
import type { ManagedProcess } from '../sandbox/backends/tools.js';
import { MOTO_DEFAULT_ACCOUNT } from '../sandbox/ec2/client.js';
import type { sweepLeakedEnis } from '../workflows/sweeper.js';
import { createTestCluster, eventually, type TestCluster } from './support/cluster.js';
import { eventsFor } from './support/inspect.js';
import { controlWorkerProcess } from './support/processes.js';

let c: TestCluster;
let alive: NodeENIObject;
const processes: ManagedProcess[] = [];
const SCHEDULE_ID = `nodeeni-sweeper-test-${randomUUID().slice(0, 8)}`;
const HOUR = 3600_000;
const OLD = new Date(Date.now() - 2 * HOUR).toISOString();

beforeAll(async () => {
  // The default account, so the control worker process (as shipped: no account header) sees this file's EC2 world.
  // No watcher: the live NodeENI has no entity, so nothing but the sweeper acts on its ENIs.
  c = await createTestCluster({ account: MOTO_DEFAULT_ACCOUNT, watcher: false });
  await c.fault.setFidelity({ paginate: true });
  alive = await c.createNodeEni('alive', { nodeSelector: { 'nodeeni-test': c.runId, 'no-such-node': 'x' }, subnetNames: ['multus-a'], securityGroupNames: ['multus-sg'] });
});
afterAll(async () => {
  await c?.client.schedule.getHandle(SCHEDULE_ID).delete().catch(() => undefined);
  await Promise.allSettled(processes.map((p) => p.stop()));
  await c?.fault.setFidelity({ paginate: false });
  await c?.fault.clear();
  await c?.dispose();
});

/** Our tags for an ENI of this cluster whose NodeENI is gone, created two hours ago; `over` replaces (undefined: drops) tags. */
function ours(over: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {
    [TAG.managedBy]: MANAGED_BY_VALUE,
    [TAG.cluster]: c.runId,
    [TAG.nodeEniName]: 'deleted-long-ago',
    [TAG.nodeEniUid]: randomUUID(),
    [TAG.node]: c.nodes[0]!.name,
    [TAG.createdAt]: OLD,
    ...over,
  };
}

const ownedBy = (o: NodeENIObject) => ({ [TAG.nodeEniUid]: o.metadata.uid, [TAG.nodeEniName]: o.metadata.name });

async function makeEni(tags: Record<string, string | undefined>): Promise<string> {
  const subnet = c.world.subnets.find((s) => s.name === 'multus-a')!;
  const sg = c.world.securityGroups.find((g) => g.name === 'multus-sg')!;
  const Tags: Tag[] = Object.entries(tags).filter(([, v]) => v !== undefined).map(([Key, Value]) => ({ Key, Value }));
  const res = await c.ec2.send(new CreateNetworkInterfaceCommand({ SubnetId: subnet.id, Groups: [sg.id], TagSpecifications: [{ ResourceType: 'network-interface', Tags }] }));
  return res.NetworkInterface!.NetworkInterfaceId!;
}

async function attach(eniId: string, instance: number): Promise<void> {
  await c.ec2.send(new AttachNetworkInterfaceCommand({ NetworkInterfaceId: eniId, InstanceId: c.world.instances[instance]!.id, DeviceIndex: 2 }));
}

async function existing(ids: string[]): Promise<string[]> {
  const res = await c.ec2.send(new DescribeNetworkInterfacesCommand({ Filters: [{ Name: 'network-interface-id', Values: ids }] }));
  return (res.NetworkInterfaces ?? []).map((n) => n.NetworkInterfaceId!).sort();
}

async function sweep(over: Partial<SweepInput> = {}) {
  const input: SweepInput = { clusterName: c.runId, graceSeconds: 1800, dryRun: false, ...over };
  const started = Date.now();
  const handle = await c.client.workflow.start<typeof sweepLeakedEnis>('sweepLeakedEnis', { taskQueue: c.taskQueue, workflowId: `sweep-${c.runId}-${randomUUID().slice(0, 8)}`, args: [input] });
  const result = await handle.result();
  return { handle, result, seconds: (Date.now() - started) / 1000 };
}

const ids = (list: Array<{ eniId: string }>) => list.map((e) => e.eniId).sort();
const skippedAs = (r: SweepResult) => Object.fromEntries(r.skipped.map((s) => [s.eniId, s.reason]));

/** The ENIs of the first scenario, by what they are. */
const eni: Record<string, string> = {};

describe('the leaked-ENI sweeper', () => {
  it('dry run: reports what it would delete and why it leaves the rest, deletes nothing; pages and continues-as-new', async () => {
    eni.orphaned = await makeEni(ours());
    eni.leaked = await makeEni(ours({ ...ownedBy(alive), [TAG.leaked]: 'ticket OPS-7: force-finished' }));
    eni.foreign = await makeEni({ Name: 'another-tool' });
    eni.otherCluster = await makeEni(ours({ [TAG.cluster]: `${c.runId}-other` }));
    eni.inUse = await makeEni(ours());
    eni.inUseLeaked = await makeEni(ours({ [TAG.leaked]: 'left, then reused by hand' }));
    eni.young = await makeEni(ours({ [TAG.createdAt]: new Date(Date.now() - 60_000).toISOString() }));
    eni.noCreatedAt = await makeEni(ours({ [TAG.createdAt]: undefined }));
    eni.owned = await makeEni(ours(ownedBy(alive)));
    await attach(eni.inUse!, 0);
    await attach(eni.inUseLeaked!, 1);
    await eventually('both attached', async () => {
      const res = await c.ec2.send(new DescribeNetworkInterfacesCommand({ NetworkInterfaceIds: [eni.inUse!, eni.inUseLeaked!] }));
      return (res.NetworkInterfaces ?? []).every((n) => n.Status === 'in-use');
    });

    // Pages of 5 (EC2's smallest) and a continue-as-new after every page: 7 ENIs of this cluster, 2 pages, 2 runs.
    const { handle, result } = await sweep({ dryRun: true, pageSize: 5, maxHistoryLength: 1 });
    console.log(`[sweeper] dry run: ${JSON.stringify(result.counts)}`);
    expect(result.dryRun).toBe(true);
    expect(result.examined).toBe(7);
    expect(result.pages).toBe(2);
    expect((await c.client.workflow.getHandle(handle.workflowId, handle.firstExecutionRunId).describe()).status.name).toBe('CONTINUED_AS_NEW');
    expect(ids(result.deleted)).toEqual([eni.orphaned, eni.leaked].sort());
    expect(Object.fromEntries(result.deleted.map((d) => [d.eniId, d.why]))).toEqual({ [eni.orphaned!]: 'Orphaned', [eni.leaked!]: 'Leaked' });
    expect(skippedAs(result)).toEqual({ [eni.inUse!]: 'InUse', [eni.inUseLeaked!]: 'InUse', [eni.young!]: 'TooYoung', [eni.noCreatedAt!]: 'NoCreatedAt', [eni.owned!]: 'Owned' });
    expect(result.counts).toEqual({ deleted: 2, failed: 0, skipped: { InUse: 2, TooYoung: 1, NoCreatedAt: 1, Owned: 1 } });
    expect(result.failed).toEqual([]);
    expect(await existing(Object.values(eni))).toEqual(Object.values(eni).sort());
    expect((await c.fault.counts(MOTO_DEFAULT_ACCOUNT)).DeleteNetworkInterface ?? 0).toBe(0);
  });

  it('deletes the orphaned and the leaked ENI, the same set the dry run reported, on the paced queues; the live owner hears of it', async () => {
    const { handle, result, seconds } = await sweep({ pageSize: 5 });
    console.log(`[sweeper] sweep of ${result.examined} ENIs in ${result.pages} pages: ${result.counts.deleted} deleted in ${seconds.toFixed(2)} s`);
    expect(ids(result.deleted)).toEqual([eni.orphaned, eni.leaked].sort());
    expect(result.deleted.every((d) => !d.alreadyGone)).toBe(true);
    expect(skippedAs(result)).toEqual({ [eni.inUse!]: 'InUse', [eni.inUseLeaked!]: 'InUse', [eni.young!]: 'TooYoung', [eni.noCreatedAt!]: 'NoCreatedAt', [eni.owned!]: 'Owned' });
    const untouched = Object.entries(eni).filter(([what]) => what !== 'orphaned' && what !== 'leaked').map(([, id]) => id);
    expect(await existing(Object.values(eni))).toEqual(untouched.sort());

    // Every EC2 call on its API's paced queue; the count in the memo (the UI and list results show it).
    const history = await handle.fetchHistory();
    const queues = new Map<string, Set<string>>();
    for (const e of history.events ?? []) {
      const a = e.activityTaskScheduledEventAttributes;
      if (a) queues.set(a.activityType!.name!, new Set([...(queues.get(a.activityType!.name!) ?? []), a.taskQueue!.name!]));
    }
    expect(Object.fromEntries([...queues].map(([k, v]) => [k, [...v]]))).toEqual({
      listSweepCandidates: [`${c.taskQueue}-ec2-read`],
      liveNodeEnis: [c.taskQueue],
      deleteEni: [`${c.taskQueue}-ec2-delete`],
      recordEvent: [c.taskQueue],
    });
    const memo = (await handle.describe()).memo as Record<string, unknown>;
    expect(memo).toMatchObject({ sweptENIs: 2, failedENIs: 0, dryRun: false });
    const events = await eventsFor(c.core, alive.metadata.uid);
    expect(events.find((e) => e.reason === 'LeakedENISwept')?.message).toContain(eni.leaked);
  });

  it('a delete that fails is reported and the others go on; one already gone counts as deleted', async () => {
    const refused = await makeEni(ours());
    const gone = await makeEni(ours());
    const plain = await makeEni(ours());
    await c.fault.addRules([
      { action: 'DeleteNetworkInterface', account: MOTO_DEFAULT_ACCOUNT, match: { NetworkInterfaceId: refused }, code: 'UnauthorizedOperation', message: 'injected: not allowed' },
      { action: 'DeleteNetworkInterface', account: MOTO_DEFAULT_ACCOUNT, match: { NetworkInterfaceId: gone }, code: 'InvalidNetworkInterfaceID.NotFound', message: 'injected: gone' },
    ]);
    const { result } = await sweep();
    await c.fault.clear();
    expect(result.failed).toEqual([{ eniId: refused, reason: 'UnauthorizedOperation', message: expect.stringContaining('injected: not allowed') }]);
    expect(ids(result.deleted)).toEqual([gone, plain].sort());
    expect(result.deleted.find((d) => d.eniId === gone)?.alreadyGone).toBe(true);
    expect(await existing([refused, plain])).toEqual([refused]);
    expect(result.counts.failed).toBe(1);
  });

  it('sweeps 100 orphaned ENIs at the delete queue\'s pace (measured)', async () => {
    const made: string[] = [];
    for (let i = 0; i < 100; i += 10) made.push(...await Promise.all(Array.from({ length: 10 }, () => makeEni(ours()))));
    const { result, seconds } = await sweep({ pageSize: 40 });
    const deleted = ids(result.deleted).filter((id) => made.includes(id));
    console.log(`[sweeper] ${deleted.length} orphaned ENIs (of ${result.examined} examined, ${result.pages} pages) deleted in ${seconds.toFixed(1)} s: ${(deleted.length / seconds).toFixed(1)}/s; the delete queue allows 5/s`);
    expect(deleted).toEqual([...made].sort());
    // Also the two from the test above: the refused one (allowed now) and the one the proxy said was gone without deleting it.
    expect(result.counts.deleted).toBe(102);
    expect(await existing(made)).toEqual([]);
    expect(seconds).toBeGreaterThan(100 / 5 - 5);
  }, 180_000);

  it('the control worker keeps the Schedule: created at start, set to the newest settings by the next start, never two; a run it starts sweeps', async () => {
    const env = (over: Record<string, string>) => ({ CLUSTER_NAME: c.runId, SWEEP_SCHEDULE_ID: SCHEDULE_ID, SWEEP_GRACE_SECONDS: '1800', ...over });
    processes.push(await controlWorkerProcess(c, { env: env({ SWEEP_INTERVAL_SECONDS: '3600' }) }));
    const schedule = c.client.schedule.getHandle(SCHEDULE_ID);
    const first = await eventually('the schedule', () => schedule.describe(), 120_000);
    expect(first.spec.intervals?.map((i) => i.every)).toEqual([3600_000]);
    expect(first.action).toMatchObject({ workflowType: 'sweepLeakedEnis', taskQueue: c.taskQueue, args: [{ clusterName: c.runId, graceSeconds: 1800, dryRun: false }] });
    expect(first.state.paused).toBe(false);

    // A run of the Schedule, now: a new orphan is swept by the workflow the Schedule starts.
    const orphan = await makeEni(ours());
    await schedule.trigger();
    const run = await eventually('the triggered run', async () => (await schedule.describe()).info.recentActions.at(-1)?.action.workflow, 60_000);
    const result = (await c.client.workflow.getHandle(run.workflowId, run.firstExecutionRunId).result()) as SweepResult;
    expect(ids(result.deleted)).toEqual([orphan]);
    expect(await existing([orphan])).toEqual([]);

    // A second control worker (a second replica, or the next release) with other settings, the first one still running.
    processes.push(await controlWorkerProcess(c, { env: env({ SWEEP_INTERVAL_SECONDS: '900', SWEEP_DRY_RUN: 'true', SWEEP_ENABLED: 'false' }) }));
    const second = await eventually('the schedule updated', async () => {
      const d = await schedule.describe();
      return d.state.paused && d;
    }, 120_000);
    expect(second.spec.intervals?.map((i) => i.every)).toEqual([900_000]);
    expect(second.action.args).toEqual([{ clusterName: c.runId, graceSeconds: 1800, dryRun: true }]);
    expect(second.state.note).toContain('SWEEP_ENABLED=false');
    await eventually('exactly one schedule with the ID', async () => {
      let n = 0;
      for await (const s of c.client.schedule.list()) if (s.scheduleId === SCHEDULE_ID) n++;
      return n === 1;
    }, 30_000);
    for (const p of processes) expect(p.child.exitCode, p.tail()).toBeNull();
  }, 300_000);
});

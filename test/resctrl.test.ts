// Per-pod resctrl groups (seed 004) end to end: pods on the real API server,
// the per-node workflow on the real Temporal server, node activities on a
// simulated host with the kernel's resctrl and cgroup v2 behaviour.
import { defaultPayloadConverter } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resctrlWorkflowId } from '../common/names.js';
import type { SimHost } from '../host/sim/sim-host.js';
import { resctrlStateQuery, type ResctrlEvent, type ResctrlOptions } from '../common/workflow-api.js';
import { freePort } from '../sandbox/backends/tools.js';
import { installRuntime } from '../workers/bootstrap.js';
import { createTestCluster, eventually, type TestCluster } from './support/cluster.js';
import { deletePod, ensureNamespace, runPod, startContainer, type TestPod } from './support/pods.js';

const options: ResctrlOptions = { groupPrefix: 'pod_', cleanupOnStart: true, mode: 'monitor', resyncSeconds: 2, nodeAgentStartTimeoutMs: 8000, maxHistoryLength: 5000 };
let c: TestCluster;
let host: SimHost;
let ns: string;
let nodeName: string;

let metricsUrl = '';
beforeAll(async () => {
  // This process's workers export Prometheus metrics; the resctrl gauges are read back below.
  const port = await freePort();
  installRuntime({ logLevel: 'WARN', metricsBindAddress: `127.0.0.1:${port}` });
  metricsUrl = `http://127.0.0.1:${port}/metrics`;
  // Few RMIDs so capacity is reachable: RMID 0 is the root's, leaving 5 groups.
  c = await createTestCluster({ resctrl: { options, host: { resctrl: { numRmids: 6 }, cgroupDriver: 'systemd' } } });
  host = c.nodes[0]!.host;
  nodeName = c.nodes[0]!.name;
  ns = `${c.runId}-pods`;
  await ensureNamespace(c.core, ns);
});
afterAll(async () => {
  await c?.dispose();
});

const view = () => c.client.workflow.getHandle(resctrlWorkflowId(nodeName)).query(resctrlStateQuery);
/** How many times the workflow scheduled ensurePodGroup per pod UID, from its history. */
async function ensureAttempts(): Promise<Map<string, number>> {
  const history = await c.client.workflow.getHandle(resctrlWorkflowId(nodeName)).fetchHistory();
  const byUid = new Map<string, number>();
  for (const e of history.events ?? []) {
    const a = e.activityTaskScheduledEventAttributes;
    if (a?.activityType?.name !== 'ensurePodGroup') continue;
    const [input] = a.input?.payloads?.map((p) => defaultPayloadConverter.fromPayload<{ podUid: string }>(p)) ?? [];
    if (input) byUid.set(input.podUid, (byUid.get(input.podUid) ?? 0) + 1);
  }
  return byUid;
}
const eventsOf = async (uid: string): Promise<ResctrlEvent[]> => (await view()).events.filter((e) => e.podUid === uid);
const groupTasks = async (uid: string) => (await host.readFile(`/sys/fs/resctrl/mon_groups/pod_${uid}/tasks`)).trim().split('\n').filter(Boolean).map(Number);
const threadsOf = (p: TestPod) => p.containers.flatMap((x) => host.snapshot().processes?.filter((pr) => x.pids.includes(pr.pid)).flatMap((pr) => pr.tids) ?? []);

describe('resctrl', () => {
  it('cleans up only prefixed groups at start, without traversal and without events', async () => {
    await host.mkdir('/sys/fs/resctrl/mon_groups/pod_stale1');
    await host.mkdir('/sys/fs/resctrl/mon_groups/other_keep');
    await host.mkdir('/sys/fs/resctrl/cls');
    await host.mkdir('/sys/fs/resctrl/cls/mon_groups/pod_inner');
    const p = await runPod(c.core, host, { namespace: ns, name: 'first', node: nodeName, containers: [{ name: 'app', threads: 2 }] });
    await eventually('first pod reconciled', async () => (await eventsOf(p.uid)).some((e) => e.type === 'AddOrUpdate' && e.reconciledContainers === 1), 60_000);
    const groups = await host.readdir('/sys/fs/resctrl/mon_groups');
    expect(groups).not.toContain('pod_stale1');
    expect(groups).toContain('other_keep');
    expect(await host.readdir('/sys/fs/resctrl/cls/mon_groups')).toContain('pod_inner');
    // Cleanup-only activity emits nothing: every event is about the one live pod.
    expect((await view()).events.every((e) => e.podUid === p.uid)).toBe(true);
    await host.rmdir('/sys/fs/resctrl/cls');
    await host.rmdir('/sys/fs/resctrl/mon_groups/other_keep');
    await deletePod(c.core, host, p);
    await eventually('removed', async () => (await eventsOf(p.uid)).some((e) => e.type === 'Removed'));
    host.drainLimbo(); // the freed RMIDs' cache lines age out
  });

  it('initial sync: one event with the group, then one when the counts change; every thread assigned', async () => {
    const p = await runPod(c.core, host, { namespace: ns, name: 'sync', node: nodeName, qos: 'Burstable', containers: [{ name: 'a', threads: 3 }, { name: 'b', threads: 2 }] });
    await eventually('reconciled 2/2', async () => (await eventsOf(p.uid)).some((e) => e.type === 'AddOrUpdate' && e.reconciledContainers === 2), 60_000);
    const path = `/sys/fs/resctrl/mon_groups/pod_${p.uid}`;
    expect(await eventsOf(p.uid)).toEqual([
      { type: 'AddOrUpdate', podUid: p.uid, groupState: `Exists(${path})`, totalContainers: 0, reconciledContainers: 0 },
      { type: 'AddOrUpdate', podUid: p.uid, groupState: `Exists(${path})`, totalContainers: 2, reconciledContainers: 2 },
    ]);
    expect((await groupTasks(p.uid)).sort()).toEqual(threadsOf(p).sort());

    // A late container: one event for the new counts.
    await startContainer(c.core, host, p, { name: 'late', threads: 1 });
    await eventually('3/3', async () => (await eventsOf(p.uid)).some((e) => e.type === 'AddOrUpdate' && e.reconciledContainers === 3));
    // A process exec'd into a container later: picked up by the periodic pass, no event (counts unchanged).
    const exec = host.spawn({ cgroup: p.containers[0]!.cgroup, threads: 2 });
    await eventually('exec threads in the group', async () => { const tasks = await groupTasks(p.uid); return exec.tids.every((t) => tasks.includes(t)); }, 20_000);
    expect((await eventsOf(p.uid)).length).toBe(3);

    // Counters and the group's monitoring data as Prometheus metrics ("Unavailable" is tolerated).
    host.setMonData(path, { llc_occupancy: 123456, mbm_total_bytes: 1000, mbm_local_bytes: 'Unavailable' });
    const metrics = await eventually('pod metrics exported', async () => {
      const text = await (await fetch(metricsUrl)).text();
      return text.includes(`pod_uid="${p.uid}"`) && /resctrl_pod_llc_occupancy_bytes\{[^}]*\} 123456/.test(text) && text;
    }, 30_000);
    expect(metrics).toMatch(new RegExp(`resctrl_pod_total_containers\\{[^}]*pod_uid="${p.uid}"[^}]*\\} 3`));
    expect(metrics).toMatch(new RegExp(`resctrl_pod_reconciled_containers\\{[^}]*pod_uid="${p.uid}"[^}]*\\} 3`));

    // Kubernetes Events on the pod carry the same sequence.
    const k8sEvents = await c.core.listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.uid=${p.uid}` });
    expect(k8sEvents.items.map((e) => e.reason)).toEqual(['ResctrlGroupUpdated', 'ResctrlGroupUpdated', 'ResctrlGroupUpdated']);

    await deletePod(c.core, host, p);
    await eventually('Removed', async () => (await eventsOf(p.uid)).at(-1)?.type === 'Removed');
    expect(await host.exists(path)).toBe(false);
  });

  it('a thread exiting between the cgroup listing and its write (ESRCH) does not fail the container', async () => {
    const readFile = host.readFile.bind(host);
    let victim: number | undefined;
    let armed = true;
    // The race, made deterministic: right after the first listing of a 3-thread container, its last thread exits.
    host.readFile = async (path: string) => {
      const text = await readFile(path);
      const tids = text.trim().split('\n').filter(Boolean).map(Number);
      if (armed && path.endsWith('/cgroup.threads') && path.includes('kubepods') && tids.length === 3) {
        armed = false;
        victim = tids[2];
        host.exitThread(victim!);
      }
      return text;
    };
    try {
      const p = await runPod(c.core, host, { namespace: ns, name: 'esrch', node: nodeName, containers: [{ name: 'x', threads: 3 }] });
      await eventually('reconciled 1/1', async () => (await eventsOf(p.uid)).some((e) => e.type === 'AddOrUpdate' && e.reconciledContainers === 1));
      expect((await eventsOf(p.uid)).map((e) => e.type === 'AddOrUpdate' && `${e.totalContainers}/${e.reconciledContainers}`)).toEqual(['0/0', '1/1']);
      expect(victim).toBeDefined();
      expect((await groupTasks(p.uid)).sort()).toEqual(threadsOf(p).filter((t) => t !== victim).sort());
      await deletePod(c.core, host, p);
      await eventually('removed', async () => (await eventsOf(p.uid)).some((e) => e.type === 'Removed'));
      host.drainLimbo();
    } finally {
      host.readFile = readFile;
    }
  });

  it('capacity: Failed without a retry loop, EBUSY while RMIDs are in limbo, Exists once capacity returns', async () => {
    host.drainLimbo(); // RMIDs freed by earlier tests
    const pods: TestPod[] = [];
    for (const name of ['cap-a', 'cap-b', 'cap-c', 'cap-d', 'cap-e', 'cap-f', 'cap-g']) {
      pods.push(await runPod(c.core, host, { namespace: ns, name, node: nodeName, containers: [{ name: 'x' }] }));
    }
    // RMIDs 1..5 go to five pods; the other two fail for capacity.
    const [failed, second] = await eventually('two pods Failed, announced', async () => {
      const v = await view();
      // retry_all_once walks failed pods in the workflow's order.
      const f = Object.values(v.state.pods).filter((p) => p.group.kind === 'Failed').map((p) => pods.find((x) => x.uid === p.uid)!);
      return f.length === 2 && pods.every((p) => v.state.pods[p.uid]?.announced) && f.every((x) => v.events.some((e) => e.podUid === x.uid)) && (f as [TestPod, TestPod]);
    }, 60_000);
    expect((await eventsOf(failed.uid))[0]).toMatchObject({ groupState: 'Failed', totalContainers: 0 });
    const holder = pods.find((p) => p !== failed && p !== second)!;
    await deletePod(c.core, host, holder);
    await eventually('holder removed', async () => (await eventsOf(holder.uid)).some((e) => e.type === 'Removed'));
    // Its RMID is in limbo: retries get EBUSY and stay Failed, with no new events.
    await new Promise((r) => setTimeout(r, 5000));
    expect((await view()).state.pods[failed.uid]!.group).toMatchObject({ kind: 'Failed', reason: expect.stringMatching(/CapacityLimbo/) });
    // Each pass retried the first failed pod and stopped at its capacity error: the second was not tried again.
    const attempts = await ensureAttempts();
    expect(attempts.get(failed.uid)).toBeGreaterThanOrEqual(2);
    expect(attempts.get(second.uid)).toBe(1);
    const before = (await eventsOf(failed.uid)).length;
    host.drainLimbo();
    const after = await eventually('Exists after the limbo drained, announced', async () => {
      const events = await eventsOf(failed.uid);
      return events.length > before && events;
    }, 30_000);
    expect(after.slice(before)[0]).toMatchObject({ type: 'AddOrUpdate', groupState: expect.stringMatching(/^Exists/) });
    for (const p of pods) if (p !== holder) await deletePod(c.core, host, p);
    await eventually('all removed', async () => Object.keys((await view()).state.pods).length === 0);
    host.drainLimbo();
  });

  it('recreates a group the container runtime deleted, and converges after a node agent restart', async () => {
    const p = await runPod(c.core, host, { namespace: ns, name: 'runtime', node: nodeName, containers: [{ name: 'x', threads: 2 }] });
    await eventually('reconciled', async () => (await eventsOf(p.uid)).some((e) => e.type === 'AddOrUpdate' && e.reconciledContainers === 1));
    host.runtimeDeletesUnknownGroups([]);
    await c.stopAgent(0);
    await new Promise((r) => setTimeout(r, 3000));
    await c.startAgent(0);
    await eventually('group back with every thread', async () => (await host.exists(`/sys/fs/resctrl/mon_groups/pod_${p.uid}`)) && (await groupTasks(p.uid)).length === threadsOf(p).length, 30_000);
    await deletePod(c.core, host, p);
    await eventually('removed', async () => (await eventsOf(p.uid)).some((e) => e.type === 'Removed'));
  });

  it('a node agent away longer than Schedule-To-Start: the workflow reports, keeps running, recovers, and does not clean up again', async () => {
    const p = await runPod(c.core, host, { namespace: ns, name: 'away', node: nodeName, containers: [{ name: 'x', threads: 2 }] });
    await eventually('reconciled', async () => (await eventsOf(p.uid)).some((e) => e.type === 'AddOrUpdate' && e.reconciledContainers === 1));
    // A prefixed group made by someone else: cleanup at start would remove it, a later pass must not.
    await host.mkdir('/sys/fs/resctrl/mon_groups/pod_leftover');
    await c.stopAgent(0);
    const failure = await eventually('pass failed and reported', async () => (await view()).failure, 40_000);
    expect(failure.reason).toBe('NodeAgentUnavailable');
    const warned = await eventually('Warning Event on the node', async () => {
      const list = await c.core.listNamespacedEvent({ namespace: 'default', fieldSelector: `involvedObject.name=${nodeName},reason=ResctrlReconcileFailed` });
      return list.items[0];
    });
    expect(warned.type).toBe('Warning');
    expect((await c.client.workflow.getHandle(resctrlWorkflowId(nodeName)).describe()).status.name).toBe('RUNNING');

    await c.startAgent(0);
    const late = await runPod(c.core, host, { namespace: ns, name: 'late', node: nodeName, containers: [{ name: 'y', threads: 1 }] });
    await eventually('recovered: a new pod reconciled', async () => (await eventsOf(late.uid)).some((e) => e.type === 'AddOrUpdate' && e.reconciledContainers === 1), 60_000);
    // The pod's event goes out mid-pass; the failure clears when that pass ends.
    await eventually('the failure cleared', async () => (await view()).failure === undefined, 30_000);
    expect(await host.readdir('/sys/fs/resctrl/mon_groups')).toContain('pod_leftover');
    expect((await groupTasks(p.uid)).length).toBe(threadsOf(p).length);
    await host.rmdir('/sys/fs/resctrl/mon_groups/pod_leftover');
    for (const x of [p, late]) await deletePod(c.core, host, x);
    await eventually('removed', async () => (await eventsOf(late.uid)).some((e) => e.type === 'Removed'));
  });

  it('idle, the history stays still: the node watches, and an exec\'d thread wakes the workflow, which assigns it', async () => {
    host.drainLimbo(); // RMIDs freed by earlier tests
    const p = await runPod(c.core, host, { namespace: ns, name: 'idle', node: nodeName, containers: [{ name: 'x', threads: 1 }] });
    await eventually('reconciled', async () => (await eventsOf(p.uid)).some((e) => e.type === 'AddOrUpdate' && e.reconciledContainers === 1));
    const handle = c.client.workflow.getHandle(resctrlWorkflowId(nodeName));
    // Quiet: one watch on the node, and no watch a pod change made obsolete still winding down (those end within a poll).
    const watching = async () => {
      const d = await handle.describe();
      const pending = d.raw.pendingActivities ?? [];
      return pending.length === 1 && pending[0]!.activityType?.name === 'watchResctrl' && pending[0]!.state !== temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED && d.historyLength;
    };
    // And still: a workflow task that scheduled the watch, or a late pod signal, can still be landing when the watch
    // first shows; the idle window starts once two looks 2 s apart see the same history.
    const before = await eventually('watching on the node, history still', async () => {
      const first = await watching();
      if (!first) return undefined;
      await new Promise((r) => setTimeout(r, 2000));
      return (await watching()) === first ? first : undefined;
    }, 30_000);
    // Four resync periods (2 s): v2 wrote a timer and a pass (a listing, a reconcile and a read per pod) for each.
    await new Promise((r) => setTimeout(r, 8000));
    const after = (await handle.describe()).historyLength;
    console.log(`[resctrl] idle 8 s with one pod: history ${before} → ${after} events`);
    expect(after).toBe(before);

    // An exec'd process: the runtime starts it in the container's cgroup but outside the pod's group (a thread
    // the container makes inherits the group); nothing in Kubernetes changes.
    const tid = host.spawn({ cgroup: p.containers[0]!.cgroup, threads: 1 }).tids[0]!;
    const t0 = Date.now();
    await eventually('the new thread is in the group', async () => (await groupTasks(p.uid)).includes(tid), 20_000);
    console.log(`[resctrl] exec'd thread assigned ${Date.now() - t0} ms after it appeared (poll every 2 s)`);
    const history = await handle.fetchHistory();
    const woke = (history.events ?? []).flatMap((e) => e.activityTaskCompletedEventAttributes?.result?.payloads ?? []).map((x) => defaultPayloadConverter.fromPayload<{ change?: string }>(x)).filter((r) => typeof r?.change === 'string');
    expect(woke.at(-1)?.change).toMatch(/idle: 1 threads of container .* outside its group/);

    await deletePod(c.core, host, p);
    await eventually('removed', async () => (await eventsOf(p.uid)).some((e) => e.type === 'Removed'));
  });

  it('ends by itself once its node is gone', async () => {
    const other = c.nodes[1]!;
    const p = await runPod(c.core, other.host, { namespace: ns, name: 'gone', node: other.name, containers: [{ name: 'z', threads: 1 }] });
    const handle = c.client.workflow.getHandle(resctrlWorkflowId(other.name));
    await eventually('reconciled on node 1', async () => (await handle.query(resctrlStateQuery)).state.pods[p.uid]?.containers !== undefined && Object.values((await handle.query(resctrlStateQuery)).state.pods[p.uid]!.containers).includes('Reconciled'), 60_000);
    await deletePod(c.core, other.host, p);
    await c.core.deleteNode({ name: other.name });
    await eventually('completed', async () => (await handle.describe()).status.name === 'COMPLETED', 60_000);
  });
});

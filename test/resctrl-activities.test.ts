// The node's resctrl activities on the kernel model: races and refusals the
// workflow must not loop on, capacity as an answer, hostile input refused.
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import type { Host } from '../host/host.js';
import { SimHost } from '../host/sim/sim-host.js';
import { createResctrlActivities, type EnsurePodGroupResult, type ReconcileContainerResult } from '../activities/node/resctrl-activities.js';

const UID = '0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9';
const CID = 'ab'.repeat(32);
const env = new MockActivityEnvironment();

function setup(opts: ConstructorParameters<typeof SimHost>[0] = {}) {
  const host = new SimHost({ primary: { macAddress: '02:00:00:00:00:01' }, resctrl: {}, ...opts });
  const cgroup = host.addContainer({ podUid: UID, qos: 'BestEffort', containerId: CID });
  const proc = host.spawn({ cgroup, threads: 3 });
  return { host, cgroup, proc, acts: createResctrlActivities({ host, nodeName: 'n1' }) };
}

async function createdGroup(acts: ReturnType<typeof createResctrlActivities>): Promise<{ path: string }> {
  const res = (await env.run(acts.ensurePodGroup, { podUid: UID, prefix: 'pod_', mode: 'monitor' as const })) as EnsurePodGroupResult;
  if (!res.ok) throw new Error(`group not created: ${res.message}`);
  return res;
}

describe('resctrl activities', () => {
  it('assigns every thread of a container, one write each', async () => {
    const { host, proc, acts } = setup();
    const g = await env.run(acts.ensurePodGroup, { podUid: UID, prefix: 'pod_', mode: 'monitor' as const });
    expect(g).toEqual({ ok: true, path: `/sys/fs/resctrl/mon_groups/pod_${UID}` });
    const res = await env.run(acts.reconcileContainer, { podUid: UID, qosClass: 'BestEffort' as const, containerId: CID, groupPath: (g as { path: string }).path });
    expect(res).toMatchObject({ complete: true, threads: 3, assigned: 3, rejected: [] });
    expect((await host.readFile(`/sys/fs/resctrl/mon_groups/pod_${UID}/tasks`)).trim().split('\n').map(Number).sort()).toEqual([...proc.tids].sort());
  });

  it('a thread that exits between reading cgroup.threads and its write (ESRCH) is not a failure', async () => {
    const { host, proc } = setup();
    // The race, made deterministic: the thread exits right after the listing was read.
    const racing: Host = Object.create(host) as Host;
    racing.readFile = async (p) => {
      const text = await host.readFile(p);
      if (p.endsWith('/cgroup.threads')) host.exitThread(proc.tids[2]!);
      return text;
    };
    const acts = createResctrlActivities({ host: racing, nodeName: 'n1' });
    const g = await createdGroup(acts);
    const res = await env.run(acts.reconcileContainer, { podUid: UID, qosClass: 'BestEffort' as const, containerId: CID, groupPath: g.path });
    expect(res).toMatchObject({ complete: true, threads: 3, assigned: 2, rejected: [] });
  });

  it('a task in another control group (EINVAL) is reported, the container stays partial', async () => {
    const { host, proc, acts } = setup();
    await host.mkdir('/sys/fs/resctrl/gold');
    await host.write('/sys/fs/resctrl/gold/tasks', `${proc.tids[0]}\n`);
    const g = await createdGroup(acts);
    const res = (await env.run(acts.reconcileContainer, { podUid: UID, qosClass: 'BestEffort' as const, containerId: CID, groupPath: g.path })) as ReconcileContainerResult;
    expect(res.complete).toBe(false);
    expect(res.rejected).toEqual([{ tid: proc.tids[0], reason: expect.stringMatching(/different control group/) }]);
  });

  it('capacity is an answer (ENOSPC, EBUSY in limbo), not an exception', async () => {
    const { acts } = setup({ resctrl: { numRmids: 2, limbo: 0 } });
    expect(await env.run(acts.ensurePodGroup, { podUid: UID, prefix: 'pod_', mode: 'monitor' as const })).toMatchObject({ ok: true });
    expect(await env.run(acts.ensurePodGroup, { podUid: 'other-pod', prefix: 'pod_', mode: 'monitor' as const })).toMatchObject({ ok: false, kind: 'Capacity' });
    await env.run(acts.removePodGroup, { groupPath: `/sys/fs/resctrl/mon_groups/pod_${UID}` });
    expect(await env.run(acts.ensurePodGroup, { podUid: 'other-pod', prefix: 'pod_', mode: 'monitor' as const })).toMatchObject({ ok: false, kind: 'CapacityLimbo' });
  });

  it('a group the runtime deleted is reported as gone; hostile input never reaches a path', async () => {
    const { host, acts } = setup();
    const g = await createdGroup(acts);
    host.runtimeDeletesUnknownGroups([]);
    expect(await env.run(acts.reconcileContainer, { podUid: UID, qosClass: 'BestEffort' as const, containerId: CID, groupPath: g.path })).toMatchObject({ groupGone: true });
    const before = JSON.stringify(host.snapshot());
    for (const podUid of ['../../etc', 'a/b', '..']) {
      const err = await env.run(acts.ensurePodGroup, { podUid, prefix: '../x', mode: 'monitor' as const }).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(ApplicationFailure);
      expect((err as ApplicationFailure).nonRetryable).toBe(true);
    }
    expect(JSON.stringify(host.snapshot())).toBe(before);
  });

  it('cleanup spares the groups of pods running on the node now, removes other prefixed ones', async () => {
    const { host, acts } = setup();
    await createdGroup(acts);
    await host.mkdir('/sys/fs/resctrl/mon_groups/pod_stale');
    expect(await env.run(acts.cleanupResctrl, { prefix: 'pod_', keepPodUids: [UID] })).toEqual({ mounted: true, removed: 1, failures: 0, kept: 1 });
    expect((await host.readdir('/sys/fs/resctrl/mon_groups')).filter((n) => n.startsWith('pod_'))).toEqual([`pod_${UID}`]);
  });

  it('reports resctrl as not mounted instead of failing', async () => {
    const { acts } = setup({ resctrl: { mounted: false } });
    expect(await env.run(acts.ensurePodGroup, { podUid: UID, prefix: 'pod_', mode: 'monitor' as const })).toMatchObject({ ok: false, kind: 'Unsupported' });
    expect(await env.run(acts.cleanupResctrl, { prefix: 'pod_' })).toEqual({ mounted: false, removed: 0, failures: 0, kept: 0 });
  });
});

// cgroup v2 in the simulated kernel (node-host-interfaces.md §5.1): the
// kubelet's pod and container cgroups for both drivers and every QoS class,
// cgroup.procs (TGIDs) against cgroup.threads (every TID, possibly twice),
// exec'd processes, container removal; then host/cgroup.ts's path lookup
// (expected paths, bounded walk) and thread listing, a full container →
// resctrl pass on SimHost, and the lookup on a real tmpdir tree.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { containerCgroupPath, containerProcesses, containerThreads, expectedContainerCgroupPaths, parseContainerId, type QosClass } from '../host/cgroup.js';
import type { Host } from '../host/host.js';
import { RealHost } from '../host/real-host.js';
import { assignTasks, ensureGroup, podGroupPath, readTasks, ResctrlError } from '../host/resctrl.js';
import { SimHost } from '../host/sim/sim-host.js';

const CG = '/sys/fs/cgroup';
const POD = '7a1c9e2b-3d4f-4a5b-8c6d-9e0f1a2b3c4d';
const POD_ = POD.replaceAll('-', '_');
const ID = '4f2a9c81d7e3b6a05c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b';

async function errOf(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (e: unknown) => e,
  );
}

async function expectErrno(p: Promise<unknown>, code: string): Promise<void> {
  const err = await errOf(p);
  expect((err as { code?: string }).code, String(err)).toBe(code);
}

async function ids(host: Host, file: string): Promise<number[]> {
  return (await host.readFile(file)).split('\n').filter(Boolean).map(Number);
}

const SYSTEMD: Record<QosClass, string> = {
  Guaranteed: `${CG}/kubepods.slice/kubepods-pod${POD_}.slice/cri-containerd-${ID}.scope`,
  Burstable: `${CG}/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${POD_}.slice/cri-containerd-${ID}.scope`,
  BestEffort: `${CG}/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${POD_}.slice/cri-containerd-${ID}.scope`,
};
const CGROUPFS: Record<QosClass, string> = {
  Guaranteed: `${CG}/kubepods/pod${POD}/${ID}`,
  Burstable: `${CG}/kubepods/burstable/pod${POD}/${ID}`,
  BestEffort: `${CG}/kubepods/besteffort/pod${POD}/${ID}`,
};

describe('SimHost cgroup v2: kubepods for both drivers', () => {
  it('systemd: slices with the UID escaped, <runtime>-<id>.scope, no QoS level for Guaranteed', async () => {
    for (const qos of ['Guaranteed', 'Burstable', 'BestEffort'] as const) {
      const host = new SimHost({ cgroupDriver: 'systemd' });
      expect(host.addContainer({ podUid: POD, qos, containerId: ID })).toBe(SYSTEMD[qos]);
      expect(await host.exists(`${SYSTEMD[qos]}/cgroup.threads`)).toBe(true);
    }
    const host = new SimHost();
    expect(host.addContainer({ podUid: POD, qos: 'Burstable', containerId: ID, runtime: 'crio' })).toBe(SYSTEMD.Burstable.replace('cri-containerd-', 'crio-'));
    expect(await host.readdir(CG)).toEqual(['cgroup.controllers', 'cgroup.procs', 'cgroup.subtree_control', 'cgroup.threads', 'init.scope', 'kubepods.slice', 'system.slice', 'user.slice']);
    expect(await host.readdir(`${CG}/kubepods.slice`)).toEqual([
      'cgroup.controllers',
      'cgroup.events',
      'cgroup.procs',
      'cgroup.subtree_control',
      'cgroup.threads',
      'cgroup.type',
      'kubepods-besteffort.slice',
      'kubepods-burstable.slice',
    ]);
    expect(await host.readFile('/proc/mounts')).toContain(`cgroup2 ${CG} cgroup2 `);
  });

  it('cgroupfs: kubepods/<qos>/pod<uid>/<id>; CRI-O names the directory crio-<id>', async () => {
    for (const qos of ['Guaranteed', 'Burstable', 'BestEffort'] as const) {
      const host = new SimHost({ cgroupDriver: 'cgroupfs' });
      expect(host.addContainer({ podUid: POD, qos, containerId: ID })).toBe(CGROUPFS[qos]);
    }
    const host = new SimHost({ cgroupDriver: 'cgroupfs' });
    expect(host.addContainer({ podUid: POD, qos: 'BestEffort', containerId: ID, runtime: 'crio' })).toBe(`${CG}/kubepods/besteffort/pod${POD}/crio-${ID}`);
    expect((await host.readdir(`${CG}/kubepods`)).filter((n) => !n.startsWith('cgroup.'))).toEqual(['besteffort', 'burstable']);
  });

  it('cgroup.procs lists TGIDs, cgroup.threads every TID; /proc/<pid>/cgroup and task/ agree', async () => {
    const host = new SimHost();
    const cg = host.addContainer({ podUid: POD, qos: 'Burstable', containerId: ID });
    const a = host.spawn({ cgroup: cg, threads: 3, comm: 'app' });
    const b = host.spawn({ parent: a.pid, comm: 'worker' });
    expect(await ids(host, `${cg}/cgroup.procs`)).toEqual([a.pid, b.pid]);
    expect(await ids(host, `${cg}/cgroup.threads`)).toEqual([...a.tids, b.pid]);
    expect(await host.readFile(`/proc/${b.pid}/cgroup`)).toBe(`0::${cg.slice(CG.length)}\n`);
    expect(await host.readFile(`/proc/${a.pid}/task/${a.tids[2]}/comm`)).toBe('app\n');
    expect(await host.readFile(`${cg}/cgroup.events`)).toBe('populated 1\nfrozen 0\n');
    expect(await host.readFile(`${CG}/kubepods.slice/cgroup.events`)).toBe('populated 1\nfrozen 0\n');
    expect(await host.readFile(`${CG}/user.slice/cgroup.events`)).toBe('populated 0\nfrozen 0\n');
    // The parent slices list nothing of their own.
    expect(await ids(host, `${CG}/kubepods.slice/cgroup.procs`)).toEqual([]);

    host.setCgroupListDuplicates(true);
    expect(await ids(host, `${cg}/cgroup.procs`)).toEqual([a.pid, a.pid, b.pid, b.pid]);
    expect(await containerThreads(host, cg)).toEqual([...a.tids, b.pid]);
    expect(await containerProcesses(host, cg)).toEqual([a.pid, b.pid]);
  });

  it('mkdir/rmdir make and remove cgroups; rmdir is EBUSY while populated or with children; cgroup.procs moves a process', async () => {
    const host = new SimHost();
    await host.mkdir(`${CG}/test.slice`);
    await host.mkdir(`${CG}/test.slice/leaf`);
    await expectErrno(host.mkdir(`${CG}/test.slice/bad\nname`), 'EINVAL');
    await expectErrno(host.mkdir(`${CG}/test.slice/cgroup.procs`), 'EEXIST');
    await expectErrno(host.rmdir(`${CG}/test.slice`), 'EBUSY');
    const p = host.spawn({ cgroup: `${CG}/test.slice/leaf`, threads: 2 });
    await expectErrno(host.rmdir(`${CG}/test.slice/leaf`), 'EBUSY');
    await host.write(`${CG}/system.slice/cgroup.procs`, `${p.tids[1]}\n`);
    expect(await ids(host, `${CG}/system.slice/cgroup.threads`)).toEqual(p.tids);
    await expectErrno(host.write(`${CG}/test.slice/leaf/cgroup.threads`, `${p.tids[1]}`), 'EOPNOTSUPP');
    await expectErrno(host.write(`${CG}/test.slice/cgroup.procs`, `${p.pid}`), 'EBUSY');
    await expectErrno(host.write(`${CG}/system.slice/cgroup.procs`, '999999'), 'ESRCH');
    await expectErrno(host.write(`${CG}/system.slice/cgroup.procs`, 'x'), 'EINVAL');
    await host.rmdir(`${CG}/test.slice/leaf`);
    await host.rmdir(`${CG}/test.slice`);
    await expectErrno(host.rmdir(CG), 'EBUSY');
  });

  it('removeContainer: its processes exit, the cgroup goes, resctrl forgets the TIDs', async () => {
    const host = new SimHost({ resctrl: {} });
    const cg = host.addContainer({ podUid: POD, qos: 'BestEffort', containerId: ID });
    const p = host.spawn({ cgroup: cg, threads: 2 });
    const group = podGroupPath('/sys/fs/resctrl', 'pod_', POD);
    await ensureGroup(host, group);
    await assignTasks(host, group, p.tids);
    expect(host.removeContainer(ID)).toBe(cg);
    expect(await host.exists(cg)).toBe(false);
    expect(await host.exists(`/proc/${p.pid}`)).toBe(false);
    expect(await readTasks(host, group)).toEqual([]);
    expect(await containerThreads(host, cg)).toEqual([]);
    expect(await assignTasks(host, group, p.tids)).toEqual({ assigned: 0, alreadyMember: 0, gone: 2, rejected: [] });
    host.removePod(POD, 'BestEffort');
    expect(await host.exists(`${CG}/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${POD_}.slice`)).toBe(false);
    expect(() => host.removeContainer(ID)).toThrow(/no container/);
  });
});

describe('host/cgroup.ts', () => {
  it('expected paths cover both drivers and both runtimes, and validate every name', () => {
    expect(expectedContainerCgroupPaths({ podUid: POD, qos: 'Burstable', containerId: `containerd://${ID}` }).map((c) => c.path)).toEqual([
      SYSTEMD.Burstable,
      SYSTEMD.Burstable.replace('cri-containerd-', 'crio-'),
      CGROUPFS.Burstable,
      CGROUPFS.Burstable.replace(ID, `crio-${ID}`),
    ]);
    expect(expectedContainerCgroupPaths({ podUid: POD, qos: 'Guaranteed', containerId: ID, runtime: 'cri-containerd' })).toEqual([
      { driver: 'systemd', path: SYSTEMD.Guaranteed },
      { driver: 'cgroupfs', path: CGROUPFS.Guaranteed },
    ]);
    expect(parseContainerId(`cri-o://${ID.slice(0, 12)}`)).toBe(ID.slice(0, 12));
    for (const bad of ['', 'ABCDEF012345', `${ID}0`, '../../../etc', `${ID.slice(0, 20)}/..`, 'containerd://', 'abc']) {
      expect(() => parseContainerId(bad)).toThrow(ResctrlError);
    }
    for (const podUid of ['', '../x', 'a/b', 'a_b', 'x'.repeat(65), 'a.b']) {
      expect(() => expectedContainerCgroupPaths({ podUid, qos: 'Burstable', containerId: ID })).toThrow(ResctrlError);
    }
    expect(() => expectedContainerCgroupPaths({ podUid: POD, qos: 'Besteffort' as QosClass, containerId: ID })).toThrow(/QoS/);
    expect(() => expectedContainerCgroupPaths({ podUid: POD, qos: 'Burstable', containerId: ID, runtime: 'docker' as 'crio' })).toThrow(/runtime/);
  });

  it('containerCgroupPath finds the container for both drivers, every QoS class and CRI-O', async () => {
    for (const driver of ['systemd', 'cgroupfs'] as const) {
      for (const qos of ['Guaranteed', 'Burstable', 'BestEffort'] as const) {
        for (const runtime of ['cri-containerd', 'crio'] as const) {
          const host = new SimHost({ cgroupDriver: driver });
          const expected = host.addContainer({ podUid: POD, qos, containerId: ID, runtime });
          expect(await containerCgroupPath(host, { podUid: POD, qos, containerId: `containerd://${ID}` })).toBe(expected);
        }
      }
    }
    const host = new SimHost();
    expect(await containerCgroupPath(host, { podUid: POD, qos: 'Burstable', containerId: ID })).toBeUndefined();
  });

  it('falls back to a bounded walk: a KIND-style root, a wrong QoS class; the pod UID must match', async () => {
    const host = new SimHost();
    const kind = [`${CG}/kubelet.slice`, `${CG}/kubelet.slice/kubelet-kubepods.slice`, `${CG}/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice`];
    const pod = `${kind[2]}/kubelet-kubepods-besteffort-pod${POD_}.slice`;
    for (const p of [...kind, pod, `${pod}/cri-containerd-${ID}.scope`]) await host.mkdir(p);
    expect(await containerCgroupPath(host, { podUid: POD, qos: 'BestEffort', containerId: ID })).toBe(`${pod}/cri-containerd-${ID}.scope`);
    // Too small a budget or depth finds nothing.
    expect(await containerCgroupPath(host, { podUid: POD, qos: 'BestEffort', containerId: ID }, { maxEntries: 10 })).toBeUndefined();
    expect(await containerCgroupPath(host, { podUid: POD, qos: 'BestEffort', containerId: ID }, { maxDepth: 3 })).toBeUndefined();
    // Another pod's container with this ID is not ours.
    expect(await containerCgroupPath(host, { podUid: '11111111-2222-3333-4444-555555555555', qos: 'BestEffort', containerId: ID })).toBeUndefined();

    const wrongQos = new SimHost();
    const real = wrongQos.addContainer({ podUid: POD, qos: 'Guaranteed', containerId: ID });
    expect(await containerCgroupPath(wrongQos, { podUid: POD, qos: 'Burstable', containerId: ID })).toBe(real);
  });

  it('containerThreads validates the path and reads only under /sys/fs/cgroup', async () => {
    const host = new SimHost();
    for (const bad of ['/etc', `${CG}`, `${CG}/../etc`, `${CG}/a//b`, 'relative', `${CG}/x/`]) {
      await expect(containerThreads(host, bad)).rejects.toBeInstanceOf(ResctrlError);
    }
    expect(await containerThreads(host, `${CG}/init.scope`)).toEqual([1]);
  });

  it('a container pass on SimHost: every thread moves; an exec\'d process joins later and a rescan moves it', async () => {
    const host = new SimHost({ resctrl: {} });
    const cg = host.addContainer({ podUid: POD, qos: 'Burstable', containerId: ID });
    const app = host.spawn({ cgroup: cg, threads: 4 });
    const group = podGroupPath('/sys/fs/resctrl', 'pod_', POD);
    await ensureGroup(host, group);

    const found = await containerCgroupPath(host, { podUid: POD, qos: 'Burstable', containerId: ID });
    const first = await assignTasks(host, group, await containerThreads(host, found!));
    expect(first).toEqual({ assigned: 4, alreadyMember: 0, gone: 0, rejected: [] });
    // cgroup.procs alone would have moved the main thread only.
    expect(await readTasks(host, group)).toEqual(app.tids);

    // A forked child and a new thread inherit the group; `kubectl exec` starts from the shim, in the root group.
    const child = host.spawn({ parent: app.tids[2]! });
    host.addThread(app.pid);
    const execd = host.spawn({ cgroup: cg, threads: 2, comm: 'sh' });
    expect(await containerProcesses(host, cg)).toEqual([app.pid, child.pid, execd.pid]);
    expect(await host.readFile(`/proc/${execd.pid}/cpu_resctrl_groups`)).toBe('res:/\nmon:\n');

    const again = await assignTasks(host, group, await containerThreads(host, cg));
    expect(again).toEqual({ assigned: 2, alreadyMember: 6, gone: 0, rejected: [] });
    expect((await readTasks(host, group)).sort()).toEqual((await containerThreads(host, cg)).sort());
    expect(await host.readFile(`/proc/${execd.pid}/cpu_resctrl_groups`)).toBe(`res:/\nmon:pod_${POD}\n`);
  });
});

describe('host/cgroup.ts on a real tmpdir tree (RealHost)', () => {
  let base: string;
  let root: string;

  beforeEach(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'cgroup-host-'));
    root = path.join(base, 'root');
  });
  afterEach(async () => {
    await rm(base, { recursive: true, force: true });
  });

  it('finds a cgroupfs container directory and reads cgroup.threads with duplicates removed', async () => {
    const dir = path.join(root, CGROUPFS.BestEffort);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'cgroup.procs'), '41\n');
    await writeFile(path.join(dir, 'cgroup.threads'), '41\n42\n41\n43\n42\n');
    await writeFile(path.join(dir, 'memory.max'), 'max\n');
    const host = new RealHost(root);
    expect(await containerCgroupPath(host, { podUid: POD, qos: 'BestEffort', containerId: ID })).toBe(CGROUPFS.BestEffort);
    // The walk finds it as well when the QoS class is off.
    expect(await containerCgroupPath(host, { podUid: POD, qos: 'Guaranteed', containerId: ID })).toBe(CGROUPFS.BestEffort);
    expect(await containerThreads(host, CGROUPFS.BestEffort)).toEqual([41, 42, 43]);
    await writeFile(path.join(dir, 'cgroup.threads'), '41\nnot-a-tid\n');
    await expect(containerThreads(host, CGROUPFS.BestEffort)).rejects.toMatchObject({ kind: 'Io' });
    await rm(dir, { recursive: true });
    expect(await containerThreads(host, CGROUPFS.BestEffort)).toEqual([]);
  });
});

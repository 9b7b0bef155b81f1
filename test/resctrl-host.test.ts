// resctrl in the simulated kernel (node-host-interfaces.md §2): mkdir rules
// and capacity errnos (ENOSPC, limbo EBUSY), the task map behind every
// tasks file (moves, not copies; ESRCH/EINVAL/ENOENT), rmdir moving tasks,
// schemata, mon_data, /proc/<pid>/cpu_resctrl_groups. Then host/resctrl.ts's
// procedures on it, and last on a tmpdir tree through RealHost: hostile pod
// UIDs and prefixes never reach a path outside the resctrl root.
import { lstat, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { errnoError, HostUsageError, type Host } from '../host/host.js';
import { RealHost } from '../host/real-host.js';
import {
  assignTasks,
  cleanupPrefix,
  ensureGroup,
  podGroupPath,
  readMonData,
  readTasks,
  removeGroup,
  resctrlCapabilities,
  resctrlMount,
  ResctrlError,
  sanitizePodUid,
  taskResctrlGroups,
  validateGroupPrefix,
  type ResctrlErrorKind,
} from '../host/resctrl.js';
import { SimHost, type SimHostOptions } from '../host/sim/sim-host.js';
import type { ResctrlOptions } from '../host/sim/resctrl.js';
import { treeFingerprint } from './support/host-testing.js';

const R = '/sys/fs/resctrl';
const POD = '0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0';
const CONTAINER = 'c0ffee0123456789abcdef0123456789abcdef0123456789abcdef0123456789';

function newHost(resctrl: ResctrlOptions = {}, extra: SimHostOptions = {}): SimHost {
  return new SimHost({ resctrl, ...extra });
}

async function errOf(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (e: unknown) => e,
  );
}

async function expectErrno(p: Promise<unknown>, code: string, syscall?: string): Promise<void> {
  const err = await errOf(p);
  expect(err, `expected ${code}`).toBeInstanceOf(Error);
  expect((err as { code?: string }).code, (err as Error).message).toBe(code);
  if (syscall) expect((err as { syscall?: string }).syscall).toBe(syscall);
}

async function resctrlErrorOf(p: Promise<unknown>, kind: ResctrlErrorKind): Promise<ResctrlError> {
  const err = await errOf(p);
  expect(err, `expected ResctrlError ${kind}`).toBeInstanceOf(ResctrlError);
  expect((err as ResctrlError).kind, (err as Error).message).toBe(kind);
  return err as ResctrlError;
}

async function tasks(host: Host, group: string): Promise<number[]> {
  return (await host.readFile(`${group}/tasks`)).split('\n').filter(Boolean).map(Number);
}

async function status(host: Host): Promise<string> {
  return host.readFile(`${R}/info/last_cmd_status`);
}

/** A Host that records mutating calls and can fail or interfere before each one. */
function recording(inner: Host, before?: (op: 'write' | 'mkdir' | 'rmdir', p: string, data?: string) => void): Host & { calls: string[] } {
  const calls: string[] = [];
  return {
    root: inner.root,
    calls,
    readFile: (p) => inner.readFile(p),
    write: async (p, data) => {
      before?.('write', p, data);
      calls.push(`write ${p} ${JSON.stringify(data)}`);
      return inner.write(p, data);
    },
    readdir: (p) => inner.readdir(p),
    readlink: (p) => inner.readlink(p),
    exists: (p) => inner.exists(p),
    mkdir: async (p) => {
      before?.('mkdir', p);
      calls.push(`mkdir ${p}`);
      return inner.mkdir(p);
    },
    rmdir: async (p) => {
      before?.('rmdir', p);
      calls.push(`rmdir ${p}`);
      return inner.rmdir(p);
    },
    writeFileAtomic: (p, d, m) => inner.writeFileAtomic(p, d, m),
  };
}

describe('SimHost resctrl: mount, layout, info', () => {
  it('mounted: a resctrl line in /proc/mounts and the root files per capability', async () => {
    const host = newHost({ l3Domains: 2 });
    const mounts = await host.readFile('/proc/mounts');
    expect(mounts.split('\n')).toContain('resctrl /sys/fs/resctrl resctrl rw,relatime 0 0');
    expect(mounts.split('\n').some((l) => l.startsWith('cgroup2 /sys/fs/cgroup cgroup2 '))).toBe(true);
    expect(await host.readdir(R)).toEqual(['cpus', 'cpus_list', 'info', 'mode', 'mon_data', 'mon_groups', 'schemata', 'size', 'tasks']);
    expect(await host.readdir(`${R}/info`)).toEqual(['L3', 'L3_MON', 'MB', 'last_cmd_status']);
    expect(await status(host)).toBe('ok\n');
    expect(await host.readFile(`${R}/info/L3/num_closids`)).toBe('16\n');
    expect(await host.readFile(`${R}/info/L3/cbm_mask`)).toBe('fffff\n');
    expect(await host.readFile(`${R}/info/L3_MON/num_rmids`)).toBe('192\n');
    expect(await host.readFile(`${R}/info/L3_MON/mon_features`)).toBe('llc_occupancy\nmbm_total_bytes\nmbm_local_bytes\n');
    expect(await host.readFile(`${R}/schemata`)).toBe('L3:0=fffff;1=fffff\nMB:0=100;1=100\n');
    expect(await host.readFile(`${R}/cpus`)).toBe('f\n');
    expect(await host.readFile(`${R}/cpus_list`)).toBe('0-3\n');
    expect(await host.readFile(`${R}/mode`)).toBe('shareable\n');
    expect(await host.readdir(`${R}/mon_data`)).toEqual(['mon_L3_00', 'mon_L3_01']);
    expect(await host.readdir(`${R}/mon_data/mon_L3_00`)).toEqual(['llc_occupancy', 'mbm_local_bytes', 'mbm_total_bytes']);
    expect(await host.readFile(`${R}/mon_data/mon_L3_00/llc_occupancy`)).toBe('0\n');
    // Every task starts in the root group; pid 1 is init.
    expect(await tasks(host, R)).toEqual([1]);
    expect(await host.readFile('/proc/1/cpu_resctrl_groups')).toBe('res:/\nmon:\n');
    await expectErrno(host.rmdir(R), 'EBUSY');
  });

  it('unmounted: an empty mount point (mkdir EPERM), no mounts line; no RDT: no directory, no proc file', async () => {
    const host = newHost({ mounted: false });
    expect(await host.readdir(R)).toEqual([]);
    expect(await host.readFile('/proc/mounts')).not.toContain('resctrl');
    await expectErrno(host.mkdir(`${R}/mon_groups`), 'EPERM');
    expect(await host.readFile('/proc/1/cpu_resctrl_groups')).toBe('res:\nmon:\n');
    expect(await resctrlMount(host)).toBeUndefined();
    host.mountResctrl();
    expect(await resctrlMount(host)).toBe(R);

    const bare = new SimHost();
    expect(await bare.exists(R)).toBe(false);
    expect(await bare.exists('/proc/1/cpu_resctrl_groups')).toBe(false);
    expect(await bare.readdir('/sys/fs')).toEqual(['cgroup']);
    expect(bare.snapshot().resctrl).toBeNull();
  });

  it('monitoring-only and allocation-only hosts show only their files', async () => {
    const mon = newHost({ allocation: false });
    expect(await mon.readdir(R)).toEqual(['cpus', 'cpus_list', 'info', 'mon_data', 'mon_groups', 'tasks']);
    expect(await mon.readdir(`${R}/info`)).toEqual(['L3_MON', 'last_cmd_status']);
    const alloc = newHost({ monitoring: false });
    expect(await alloc.readdir(R)).toEqual(['cpus', 'cpus_list', 'info', 'mode', 'schemata', 'size', 'tasks']);
    expect(await alloc.readdir(`${R}/info`)).toEqual(['L3', 'MB', 'last_cmd_status']);
    expect(() => newHost({ allocation: false, monitoring: false })).toThrow(/allocation or monitoring/);
  });
});

describe('SimHost resctrl: mkdir rules (§2.3)', () => {
  it('CTRL_MON only at the root, MON only directly in a mon_groups directory, EPERM elsewhere', async () => {
    const host = newHost();
    await host.mkdir(`${R}/c1`);
    expect(await host.readdir(`${R}/c1`)).toEqual(['cpus', 'cpus_list', 'mode', 'mon_data', 'mon_groups', 'schemata', 'size', 'tasks']);
    expect(await host.readFile(`${R}/c1/schemata`)).toBe('L3:0=fffff\nMB:0=100\n');
    expect(await host.readFile(`${R}/c1/cpus`)).toBe('0\n');
    expect(await host.readFile(`${R}/c1/cpus_list`)).toBe('\n');
    await host.mkdir(`${R}/mon_groups/m1`);
    await host.mkdir(`${R}/c1/mon_groups/m2`);
    expect(await host.readdir(`${R}/mon_groups/m1`)).toEqual(['cpus', 'cpus_list', 'mon_data', 'tasks']);
    expect(await host.readdir(`${R}/c1/mon_groups`)).toEqual(['m2']);

    for (const p of [`${R}/c1/nested`, `${R}/mon_groups/m1/x`, `${R}/c1/mon_groups/m2/x`, `${R}/info/x`, `${R}/info/L3/x`, `${R}/mon_data/x`, `${R}/c1/mon_data/x`, `${R}/mon_groups/mon_groups`]) {
      await expectErrno(host.mkdir(p), 'EPERM', 'mkdir');
    }
    await expectErrno(host.mkdir(`${R}/bad\nname`), 'EINVAL');
    await expectErrno(host.mkdir(`${R}/mon_groups/bad\n`), 'EINVAL');
    await expectErrno(host.mkdir(`${R}/c1`), 'EEXIST');
    await expectErrno(host.mkdir(`${R}/mon_groups/m1`), 'EEXIST');
    await expectErrno(host.mkdir(`${R}/info`), 'EEXIST');
    await expectErrno(host.mkdir(`${R}/${'x'.repeat(256)}`), 'ENAMETOOLONG');
    expect(host.snapshot().resctrl!.groups.map((g) => [g.path, g.kind, g.closid, g.rmid])).toEqual([
      [R, 'CTRL_MON', 0, 0],
      [`${R}/mon_groups/m1`, 'MON', 0, 2],
      [`${R}/c1`, 'CTRL_MON', 1, 1],
      [`${R}/c1/mon_groups/m2`, 'MON', 1, 3],
    ]);
  });

  it('monitoring-only host: mkdir at the root is EPERM, mon_groups/<name> works; allocation-only: no mon_groups', async () => {
    const mon = newHost({ allocation: false });
    await expectErrno(mon.mkdir(`${R}/c1`), 'EPERM', 'mkdir');
    await mon.mkdir(`${R}/mon_groups/m1`);
    expect(await mon.readdir(`${R}/mon_groups`)).toEqual(['m1']);

    const alloc = newHost({ monitoring: false });
    await alloc.mkdir(`${R}/c1`);
    expect(await alloc.readdir(`${R}/c1`)).toEqual(['cpus', 'cpus_list', 'mode', 'schemata', 'size', 'tasks']);
    await expectErrno(alloc.mkdir(`${R}/mon_groups/m1`), 'ENOENT');
    expect(alloc.snapshot().resctrl!.groups.find((g) => g.path === `${R}/c1`)).toMatchObject({ closid: 1, rmid: null });
  });

  it('ENOSPC "Out of CLOSIDs": CLOSID 0 is the root, at most num_closids-1 control groups', async () => {
    const host = newHost({ numClosids: 3 });
    await host.mkdir(`${R}/c1`);
    await host.mkdir(`${R}/c2`);
    await expectErrno(host.mkdir(`${R}/c3`), 'ENOSPC', 'mkdir');
    expect(await status(host)).toBe('Out of CLOSIDs\n');
    // A failed mkdir took nothing: the RMID is still free for a MON group.
    await host.mkdir(`${R}/mon_groups/m1`);
    expect(await status(host)).toBe('ok\n');
    await host.rmdir(`${R}/c1`);
    await host.mkdir(`${R}/c3`);
    expect(host.snapshot().resctrl!.groups.find((g) => g.path === `${R}/c3`)?.closid).toBe(1);
  });

  it('ENOSPC "Out of RMIDs"; EBUSY while freed RMIDs are in limbo, until drainLimbo()', async () => {
    const host = newHost({ numRmids: 4 });
    for (const m of ['m1', 'm2', 'm3']) await host.mkdir(`${R}/mon_groups/${m}`);
    await expectErrno(host.mkdir(`${R}/mon_groups/m4`), 'ENOSPC', 'mkdir');
    expect(await status(host)).toBe('Out of RMIDs\n');
    // A CTRL_MON group needs an RMID too; its CLOSID is given back.
    await expectErrno(host.mkdir(`${R}/c1`), 'ENOSPC');
    expect(host.snapshot().resctrl!.freeClosids).toContain(1);

    await host.rmdir(`${R}/mon_groups/m2`);
    expect(host.snapshot().resctrl!.limboRmids).toEqual([2]);
    await expectErrno(host.mkdir(`${R}/mon_groups/m4`), 'EBUSY', 'mkdir');
    expect(await status(host)).toBe('Out of RMIDs\n');
    expect(host.drainLimbo()).toEqual([2]);
    await host.mkdir(`${R}/mon_groups/m4`);
    expect(await status(host)).toBe('ok\n');
    expect(host.snapshot().resctrl!.groups.find((g) => g.path === `${R}/mon_groups/m4`)?.rmid).toBe(2);
  });

  it('the limbo option starts with dirty RMIDs; freedRmidsEnterLimbo=false frees at once', async () => {
    const host = newHost({ numRmids: 4, limbo: 1 });
    await host.mkdir(`${R}/mon_groups/a`);
    await host.mkdir(`${R}/mon_groups/b`);
    await expectErrno(host.mkdir(`${R}/mon_groups/c`), 'EBUSY');
    host.drainLimbo();
    await host.mkdir(`${R}/mon_groups/c`);
    await expectErrno(host.mkdir(`${R}/mon_groups/d`), 'ENOSPC');

    const eager = newHost({ numRmids: 2, freedRmidsEnterLimbo: false });
    await eager.mkdir(`${R}/mon_groups/a`);
    await eager.rmdir(`${R}/mon_groups/a`);
    await eager.mkdir(`${R}/mon_groups/b`);
  });
});

describe('SimHost resctrl: tasks (§2.4)', () => {
  it('a write moves the task: out of its old groups, CTRL_MON lists its MON groups\' tasks', async () => {
    const host = newHost();
    await host.mkdir(`${R}/c1`);
    await host.mkdir(`${R}/c1/mon_groups/m`);
    await host.mkdir(`${R}/mon_groups/rm`);
    const { pid } = host.spawn({ cgroup: '/sys/fs/cgroup/system.slice' });

    await host.write(`${R}/mon_groups/rm/tasks`, `${pid}\n`);
    expect(await tasks(host, `${R}/mon_groups/rm`)).toEqual([pid]);
    expect(await tasks(host, R)).toEqual([1, pid]);
    expect(await host.readFile(`/proc/${pid}/cpu_resctrl_groups`)).toBe('res:/\nmon:rm\n');

    await host.write(`${R}/c1/tasks`, String(pid));
    expect(await tasks(host, `${R}/mon_groups/rm`)).toEqual([]);
    expect(await tasks(host, R)).toEqual([1]);
    expect(await tasks(host, `${R}/c1`)).toEqual([pid]);
    expect(await host.readFile(`/proc/${pid}/cpu_resctrl_groups`)).toBe('res:c1\nmon:\n');

    await host.write(`${R}/c1/mon_groups/m/tasks`, `${pid}`);
    expect(await tasks(host, `${R}/c1/mon_groups/m`)).toEqual([pid]);
    expect(await tasks(host, `${R}/c1`)).toEqual([pid]);
    expect(await host.readFile(`/proc/${pid}/cpu_resctrl_groups`)).toBe('res:c1\nmon:m\n');

    // Writing the control group again takes it out of the MON group (its own RMID).
    await host.write(`${R}/c1/tasks`, `${pid}`);
    expect(await tasks(host, `${R}/c1/mon_groups/m`)).toEqual([]);
    // Already a member: success, nothing changes.
    await host.write(`${R}/c1/tasks`, `${pid}\n`);
    expect(await tasks(host, `${R}/c1`)).toEqual([pid]);
    expect(await status(host)).toBe('ok\n');
  });

  it('EINVAL for a MON group write of a task in another control group', async () => {
    const host = newHost();
    await host.mkdir(`${R}/c1`);
    await host.mkdir(`${R}/mon_groups/rm`);
    const { pid } = host.spawn({ cgroup: '/sys/fs/cgroup/system.slice' });
    await host.write(`${R}/c1/tasks`, `${pid}`);
    await expectErrno(host.write(`${R}/mon_groups/rm/tasks`, `${pid}\n`), 'EINVAL', 'write');
    expect(await status(host)).toBe(`Can't move task to different control group\nError while processing task ${pid}\n`);
    expect(await tasks(host, `${R}/c1`)).toEqual([pid]);
  });

  it('ESRCH for unknown and exited TIDs; EINVAL for tokens that do not parse; ENOENT for a deleted group', async () => {
    const host = newHost();
    await host.mkdir(`${R}/mon_groups/g`);
    const g = `${R}/mon_groups/g`;
    await expectErrno(host.write(`${g}/tasks`, '424242'), 'ESRCH', 'write');
    expect(await status(host)).toBe('No task 424242\nError while processing task 424242\n');
    const { pid } = host.spawn({ cgroup: '/sys/fs/cgroup/system.slice' });
    host.exit(pid);
    await expectErrno(host.write(`${g}/tasks`, `${pid}\n`), 'ESRCH');
    for (const bad of ['abc', '12x', '1.5', '99999999999']) {
      await expectErrno(host.write(`${g}/tasks`, bad), 'EINVAL');
      expect(await status(host)).toBe(`Task list parsing error pid ${bad}\n`);
    }
    await expectErrno(host.write(`${g}/tasks`, '-5'), 'EINVAL');
    expect(await status(host)).toBe('Invalid pid -5\n');
    // Only whitespace: nothing to do, success.
    await host.write(`${g}/tasks`, '\n');

    await host.rmdir(g);
    await expectErrno(host.write(`${g}/tasks`, '1'), 'ENOENT', 'open');
  });

  it('comma lists move each token and stop at the first failure; hex and octal parse like kstrtoint', async () => {
    const host = newHost();
    await host.mkdir(`${R}/c1`);
    const a = host.spawn({ cgroup: '/sys/fs/cgroup/system.slice' }).pid;
    const b = host.spawn({ cgroup: '/sys/fs/cgroup/system.slice' }).pid;
    const c = host.spawn({ cgroup: '/sys/fs/cgroup/system.slice' }).pid;
    await expectErrno(host.write(`${R}/c1/tasks`, `${a}, ${b},777777,${c}\n`), 'ESRCH');
    expect(await tasks(host, `${R}/c1`)).toEqual([a, b]);
    await host.write(`${R}/c1/tasks`, `0x${c.toString(16)}`);
    expect(await tasks(host, `${R}/c1`)).toEqual([a, b, c]);
    await host.write(`${R}/tasks`, `0${a.toString(8)}\n`);
    expect(await tasks(host, `${R}/c1`)).toEqual([b, c]);
  });

  it('only the named thread moves; threads created later inherit their creator\'s group', async () => {
    const host = newHost();
    await host.mkdir(`${R}/mon_groups/g`);
    const g = `${R}/mon_groups/g`;
    const proc = host.spawn({ cgroup: '/sys/fs/cgroup/system.slice', threads: 3 });
    const [main, t1, t2] = proc.tids as [number, number, number];
    await host.write(`${g}/tasks`, `${main}`);
    expect(await tasks(host, g)).toEqual([main]);
    expect(await tasks(host, R)).toEqual([1, main, t1, t2]);
    expect(await host.readFile(`/proc/${proc.pid}/task/${t1}/cpu_resctrl_groups`)).toBe('res:/\nmon:\n');

    const t3 = host.addThread(proc.pid);
    const t4 = host.addThread(proc.pid, t1);
    const child = host.spawn({ parent: main });
    const execd = host.spawn({ cgroup: '/sys/fs/cgroup/system.slice' });
    expect(await tasks(host, g)).toEqual([main, t3, child.pid]);
    expect(await host.readdir(`/proc/${proc.pid}/task`)).toEqual([main, t1, t2, t3, t4].map(String).sort());
    expect(child.tids).toEqual([child.pid]);
    expect(await tasks(host, R)).toContain(execd.pid);

    host.exitThread(t3);
    expect(await tasks(host, g)).toEqual([main, child.pid]);
    await expectErrno(host.write(`${g}/tasks`, `${t3}`), 'ESRCH');
    host.exit(proc.pid);
    expect(await tasks(host, g)).toEqual([child.pid]);
    expect(await host.exists(`/proc/${proc.pid}`)).toBe(false);
  });

  it('pid 0 is the writing task (SimHost.setCurrentTask)', async () => {
    const host = newHost();
    await host.mkdir(`${R}/c1`);
    const agent = host.spawn({ cgroup: '/sys/fs/cgroup/system.slice', comm: 'nodeeni' });
    await expect(host.write(`${R}/c1/tasks`, '0')).rejects.toThrow(/setCurrentTask/);
    host.setCurrentTask(agent.pid);
    await host.write(`${R}/c1/tasks`, '0');
    expect(await tasks(host, `${R}/c1`)).toEqual([agent.pid]);
  });
});

describe('SimHost resctrl: rmdir (§2.5), schemata, mon_data, runtime restarts', () => {
  it('rmdir of a MON group moves its tasks to the parent; of a CTRL_MON group to the root, with its MON groups', async () => {
    const host = newHost({ numRmids: 8 });
    await host.mkdir(`${R}/c1`);
    await host.mkdir(`${R}/c1/mon_groups/m`);
    const a = host.spawn({ cgroup: '/sys/fs/cgroup/system.slice' }).pid;
    const b = host.spawn({ cgroup: '/sys/fs/cgroup/system.slice' }).pid;
    await host.write(`${R}/c1/tasks`, `${a}`);
    await host.write(`${R}/c1/tasks`, `${b}`);
    await host.write(`${R}/c1/mon_groups/m/tasks`, `${b}`);

    await host.rmdir(`${R}/c1/mon_groups/m`);
    expect(await tasks(host, `${R}/c1`)).toEqual([a, b]);
    expect(await host.readFile(`/proc/${b}/cpu_resctrl_groups`)).toBe('res:c1\nmon:\n');

    await host.mkdir(`${R}/c1/mon_groups/m2`);
    await host.write(`${R}/c1/mon_groups/m2/tasks`, `${b}`);
    const before = host.snapshot().resctrl!;
    const ids = before.groups.filter((g) => g.path.startsWith(`${R}/c1`)).map((g) => g.rmid);
    await host.rmdir(`${R}/c1`);
    expect(await tasks(host, R)).toEqual([1, a, b]);
    expect(await host.exists(`${R}/c1`)).toBe(false);
    const after = host.snapshot().resctrl!;
    expect(after.groups.map((g) => g.path)).toEqual([R]);
    expect(after.freeClosids).toContain(1);
    expect(after.limboRmids).toEqual(expect.arrayContaining(ids as number[]));
  });

  it('rmdir of the root, info, mon_groups, mon_data and non-groups is refused', async () => {
    const host = newHost();
    await host.mkdir(`${R}/c1`);
    await expectErrno(host.rmdir(R), 'EBUSY');
    for (const p of [`${R}/info`, `${R}/mon_groups`, `${R}/mon_data`, `${R}/info/L3`, `${R}/c1/mon_groups`, `${R}/mon_data/mon_L3_00`]) {
      await expectErrno(host.rmdir(p), 'EPERM', 'rmdir');
    }
    await expectErrno(host.rmdir(`${R}/tasks`), 'ENOTDIR');
    await expectErrno(host.rmdir(`${R}/missing`), 'ENOENT');
  });

  it('schemata: partial writes merge, invalid masks and values are EINVAL with a status text', async () => {
    const host = newHost({ l3Domains: 2 });
    await host.mkdir(`${R}/c1`);
    const s = `${R}/c1/schemata`;
    await host.write(s, 'L3:1=ff\n');
    expect(await host.readFile(s)).toBe('L3:0=fffff;1=000ff\nMB:0=100;1=100\n');
    await host.write(s, 'L3:0=f0\nMB:1=45\n');
    expect(await host.readFile(s)).toBe('L3:0=000f0;1=000ff\nMB:0=100;1= 50\n');
    expect(await host.readFile(`${R}/c1/size`)).toBe('L3:0=6291456;1=12582912\nMB:0=100;1=50\n');
    const cases: Array<[string, string]> = [
      ['L3:0=f0f\n', 'The mask f0f has non-consecutive 1-bits\n'],
      ['L3:0=0\n', 'Mask out of range\n'],
      ['L3:0=1fffff\n', 'Mask out of range\n'],
      ['L3:0=xyz\n', 'Non-hex character in the mask xyz\n'],
      ['MB:0=5\n', 'MB value 5 out of range [10,100]\n'],
      ['L2:0=f\n', "Unknown or unsupported resource name 'L2'\n"],
      ['L3:0=f;0=f\n', 'Duplicate domain 0\n'],
      ['L3\n', "Missing ':'\n"],
    ];
    for (const [input, text] of cases) {
      await expectErrno(host.write(s, input), 'EINVAL', 'write');
      expect(await status(host)).toBe(text);
    }
    await expectErrno(host.write(s, 'L3:0=f'), 'EINVAL');
    // A failed write applies none of its lines.
    await expectErrno(host.write(s, 'L3:0=3\nMB:0=1\n'), 'EINVAL');
    expect(await host.readFile(s)).toBe('L3:0=000f0;1=000ff\nMB:0=100;1= 50\n');
  });

  it('mon_data is scripted per group and domain; a CTRL_MON group reads the sum with its MON groups', async () => {
    const host = newHost({ l3Domains: 2 });
    await host.mkdir(`${R}/c1`);
    await host.mkdir(`${R}/c1/mon_groups/m`);
    host.setMonData(`${R}/c1`, { llc_occupancy: 1000, mbm_total_bytes: 5 });
    host.setMonData(`${R}/c1/mon_groups/m`, { llc_occupancy: 24, mbm_local_bytes: 7 });
    host.setMonData(`${R}/c1/mon_groups/m`, { llc_occupancy: 100 }, 1);
    expect(await host.readFile(`${R}/c1/mon_data/mon_L3_00/llc_occupancy`)).toBe('1024\n');
    expect(await host.readFile(`${R}/c1/mon_data/mon_L3_00/mbm_local_bytes`)).toBe('7\n');
    expect(await host.readFile(`${R}/c1/mon_data/mon_L3_01/llc_occupancy`)).toBe('100\n');
    expect(await host.readFile(`${R}/c1/mon_groups/m/mon_data/mon_L3_00/llc_occupancy`)).toBe('24\n');
    host.setMonData(`${R}/c1/mon_groups/m`, 'Unavailable', 1);
    expect(await host.readFile(`${R}/c1/mon_data/mon_L3_01/llc_occupancy`)).toBe('Unavailable\n');
    host.setMonData(`${R}/c1/mon_groups/m`, { mbm_total_bytes: 'Unassigned' });
    expect(await host.readFile(`${R}/c1/mon_groups/m/mon_data/mon_L3_00/mbm_total_bytes`)).toBe('Unassigned\n');
    expect(() => host.setMonData(`${R}/nope`, { llc_occupancy: 1 })).toThrow(/no resctrl group/);
    expect(() => host.setMonData(R, { llc_occupancy: 1 }, 5)).toThrow(/no L3 domain/);
  });

  it('a runtime restarting with an RDT config deletes unknown control groups and empty MON groups', async () => {
    const host = newHost();
    for (const p of [`${R}/guaranteed`, `${R}/pod_x`, `${R}/mon_groups/pod_busy`, `${R}/mon_groups/pod_idle`, `${R}/guaranteed/mon_groups/g_idle`]) await host.mkdir(p);
    const { pid } = host.spawn({ cgroup: '/sys/fs/cgroup/system.slice' });
    await host.write(`${R}/mon_groups/pod_busy/tasks`, `${pid}`);
    expect(host.runtimeDeletesUnknownGroups(['guaranteed']).sort()).toEqual([`${R}/guaranteed/mon_groups/g_idle`, `${R}/mon_groups/pod_idle`, `${R}/pod_x`]);
    expect(await host.readdir(`${R}/mon_groups`)).toEqual(['pod_busy']);
    expect(await host.exists(`${R}/guaranteed`)).toBe(true);
  });

  it('snapshot() carries groups with tasks and IDs, limbo, cgroups and processes as plain JSON', async () => {
    const host = newHost({ numRmids: 4 });
    await host.mkdir(`${R}/mon_groups/a`);
    await host.mkdir(`${R}/mon_groups/b`);
    await host.rmdir(`${R}/mon_groups/b`);
    const { pid } = host.spawn({ cgroup: '/sys/fs/cgroup/system.slice' });
    await host.write(`${R}/mon_groups/a/tasks`, `${pid}`);
    const snap = host.snapshot();
    expect(JSON.parse(JSON.stringify(snap))).toEqual(snap);
    expect(snap.resctrl).toEqual({
      mounted: true,
      allocation: true,
      monitoring: true,
      numClosids: 16,
      numRmids: 4,
      lastCmdStatus: 'ok\n',
      groups: [
        { path: R, kind: 'CTRL_MON', closid: 0, rmid: 0, tasks: [1, pid] },
        { path: `${R}/mon_groups/a`, kind: 'MON', closid: 0, rmid: 1, tasks: [pid] },
      ],
      freeClosids: Array.from({ length: 15 }, (_, i) => i + 1),
      freeRmids: [3],
      limboRmids: [2],
    });
    expect(snap.processes).toEqual([
      { pid: 1, tids: [1], cgroup: '/sys/fs/cgroup/init.scope', comm: 'systemd' },
      { pid, tids: [pid], cgroup: '/sys/fs/cgroup/system.slice', comm: 'proc' },
    ]);
    expect(snap.cgroups.find((c) => c.path === '/sys/fs/cgroup/system.slice')).toEqual({ path: '/sys/fs/cgroup/system.slice', procs: [pid], threads: [pid] });
    host.unmountResctrl();
    expect(host.snapshot().resctrl).toMatchObject({ mounted: false, groups: [] });
    expect(await host.readdir(R)).toEqual([]);
  });
});

describe('host/resctrl.ts on the simulated host', () => {
  it('detects the mount and the capabilities from info/', async () => {
    const host = newHost({ numClosids: 8, numRmids: 64 });
    expect(await resctrlMount(host)).toBe(R);
    expect(await resctrlCapabilities(host)).toEqual({ mountPoint: R, allocation: true, monitoring: true, numClosids: 8, numRmids: 64, monFeatures: ['llc_occupancy', 'mbm_total_bytes', 'mbm_local_bytes'] });
    expect(await resctrlCapabilities(newHost({ allocation: false }))).toMatchObject({ allocation: false, monitoring: true });
    expect(await resctrlCapabilities(newHost({ monitoring: false }))).toMatchObject({ allocation: true, monitoring: false, monFeatures: [] });
    await resctrlErrorOf(resctrlCapabilities(newHost({ mounted: false })), 'Unsupported');
    await resctrlErrorOf(resctrlCapabilities(newHost(), '/sys/fs/cgroup'), 'Unsupported');
  });

  it('podGroupPath: a MON group by default, a control group in control mode; names sanitised and validated', () => {
    expect(podGroupPath(R, 'pod_', POD)).toBe(`${R}/mon_groups/pod_${POD}`);
    expect(podGroupPath(R, 'pod_', POD, 'control')).toBe(`${R}/pod_${POD}`);
    expect(sanitizePodUid('../../etc/passwd')).toBe('______etc_passwd');
    expect(sanitizePodUid('a/b\nc d')).toBe('a_b_c_d');
    expect(sanitizePodUid('x'.repeat(100))).toHaveLength(63);
    expect(podGroupPath(R, 'pod_', '../../../../tmp')).toBe(`${R}/mon_groups/pod_${'_'.repeat(12)}tmp`);
    for (const uid of ['', '..', '/', '...', '\n']) expect(() => podGroupPath(R, 'pod_', uid)).toThrow(ResctrlError);
    for (const prefix of ['', '../', 'a/b', '.', 'pod\n', 'x'.repeat(33), 'pod.']) expect(() => validateGroupPrefix(prefix)).toThrow(ResctrlError);
    expect(() => podGroupPath(R, 'mon_', 'groups', 'control')).toThrow(/reserved/);
    expect(() => podGroupPath(R, 'in', 'fo', 'control')).toThrow(/reserved/);
    expect(() => podGroupPath('relative', 'pod_', POD)).toThrow(ResctrlError);
    expect(() => podGroupPath(R, 'pod_', POD, 'other' as 'monitor')).toThrow(ResctrlError);
  });

  it('ensureGroup: created, then exists; capacity, limbo and unsupported answers carry last_cmd_status', async () => {
    const host = newHost({ numRmids: 3 });
    const a = podGroupPath(R, 'pod_', 'a');
    expect(await ensureGroup(host, a)).toBe(true);
    expect(await ensureGroup(host, a)).toBe(false);
    await ensureGroup(host, podGroupPath(R, 'pod_', 'b'));
    const full = await resctrlErrorOf(ensureGroup(host, podGroupPath(R, 'pod_', 'c')), 'Capacity');
    expect(full.details).toMatchObject({ code: 'ENOSPC', lastCmdStatus: 'Out of RMIDs' });
    expect(full.message).toContain('Out of RMIDs');
    expect(await removeGroup(host, a)).toBe(true);
    expect(await removeGroup(host, a)).toBe(false);
    const limbo = await resctrlErrorOf(ensureGroup(host, podGroupPath(R, 'pod_', 'c')), 'CapacityLimbo');
    expect(limbo.details).toMatchObject({ code: 'EBUSY', lastCmdStatus: 'Out of RMIDs' });
    host.drainLimbo();
    expect(await ensureGroup(host, podGroupPath(R, 'pod_', 'c'))).toBe(true);

    await resctrlErrorOf(ensureGroup(newHost({ allocation: false }), podGroupPath(R, 'pod_', 'a', 'control')), 'Unsupported');
    await resctrlErrorOf(ensureGroup(newHost({ monitoring: false }), podGroupPath(R, 'pod_', 'a')), 'Unsupported');
    await resctrlErrorOf(ensureGroup(newHost({ mounted: false }), podGroupPath(R, 'pod_', 'a')), 'Unsupported');
    const closids = newHost({ numClosids: 1 });
    await resctrlErrorOf(ensureGroup(closids, podGroupPath(R, 'pod_', 'a', 'control')), 'Capacity');

    const denied = recording(newHost(), (op, p) => {
      if (op === 'mkdir') throw errnoError('EACCES', 'mkdir', p);
    });
    await resctrlErrorOf(ensureGroup(denied, a), 'NoPermission');
  });

  it('ensureGroup and removeGroup touch only group-shaped paths of a mounted resctrl', async () => {
    const host = newHost();
    await host.mkdir('/run/x');
    const h = recording(host);
    await resctrlErrorOf(removeGroup(h, '/run/x'), 'InvalidInput');
    await resctrlErrorOf(ensureGroup(h, '/run/y'), 'Unsupported');
    await resctrlErrorOf(ensureGroup(h, `${R}/mon_groups/mon_data`), 'InvalidInput');
    await resctrlErrorOf(ensureGroup(h, `${R}/../etc`), 'InvalidInput');
    await resctrlErrorOf(removeGroup(h, `${R}/info`), 'NoPermission');
    expect(await removeGroup(h, '/run/missing')).toBe(false);
    expect(h.calls).toEqual([`rmdir ${R}/info`]);
    expect(await host.exists('/run/x')).toBe(true);
  });

  it('assignTasks: one write per TID, members skipped, exited TIDs gone, other control groups rejected', async () => {
    const host = newHost();
    const group = podGroupPath(R, 'pod_', POD);
    await ensureGroup(host, group);
    await host.mkdir(`${R}/cls`);
    const cgroup = host.addContainer({ podUid: POD, qos: 'Burstable', containerId: CONTAINER });
    const proc = host.spawn({ cgroup, threads: 4 });
    const [t0, t1, t2, t3] = proc.tids as [number, number, number, number];
    await host.write(`${group}/tasks`, `${t0}`);
    await host.write(`${R}/cls/tasks`, `${t3}`);
    const h = recording(host, (op, _p, data) => {
      // t2 exits between the listing and its write.
      if (op === 'write' && data === `${t2}\n`) host.exitThread(t2);
    });
    const res = await assignTasks(h, group, [t0, t1, t2, t3, t1]);
    expect(res).toEqual({ assigned: 1, alreadyMember: 1, gone: 1, rejected: [{ tid: t3, reason: "Can't move task to different control group" }] });
    expect(h.calls).toEqual([`write ${group}/tasks "${t1}\\n"`, `write ${group}/tasks "${t2}\\n"`, `write ${group}/tasks "${t3}\\n"`]);
    expect(await readTasks(host, group)).toEqual([t0, t1]);
    expect(await taskResctrlGroups(host, t1, proc.pid)).toEqual({ control: '/', monitor: `pod_${POD}` });
    expect(await taskResctrlGroups(host, t3, proc.pid)).toEqual({ control: 'cls', monitor: '' });
    expect(await taskResctrlGroups(host, t2, proc.pid)).toBeUndefined();
    expect(await taskResctrlGroups(host, proc.pid)).toEqual({ control: '/', monitor: `pod_${POD}` });

    await resctrlErrorOf(assignTasks(host, group, [0]), 'InvalidInput');
    await resctrlErrorOf(assignTasks(host, group, [1.5]), 'InvalidInput');
    await resctrlErrorOf(assignTasks(host, group, [-1]), 'InvalidInput');
  });

  it('assignTasks: a group deleted before or during the pass is GroupGone', async () => {
    const host = newHost();
    const group = podGroupPath(R, 'pod_', POD);
    await ensureGroup(host, group);
    const a = host.spawn({ cgroup: '/sys/fs/cgroup/system.slice' }).pid;
    const b = host.spawn({ cgroup: '/sys/fs/cgroup/system.slice' }).pid;
    const h = recording(host, (op, _p, data) => {
      if (op === 'write' && data === `${b}\n`) void host.rmdir(group);
    });
    const gone = await resctrlErrorOf(assignTasks(h, group, [a, b]), 'GroupGone');
    expect(gone.details).toMatchObject({ assigned: 1 });
    await resctrlErrorOf(assignTasks(host, group, [a]), 'GroupGone');
    // Recreated, the pass works again.
    await ensureGroup(host, group);
    expect(await assignTasks(host, group, [a, b])).toMatchObject({ assigned: 2 });
  });

  it('cleanupPrefix removes prefixed root groups and root mon_groups, never another group\'s mon_groups', async () => {
    const host = newHost();
    for (const p of [`${R}/pod_a`, `${R}/other`, `${R}/mon_groups/pod_b`, `${R}/mon_groups/pod_c`, `${R}/mon_groups/keep`, `${R}/other/mon_groups/pod_nested`, `${R}/pod_a/mon_groups/pod_inner`]) {
      await host.mkdir(p);
    }
    const h = recording(host, (op, p) => {
      // Someone else removes pod_c between the listing and our rmdir.
      if (op === 'rmdir' && p === `${R}/mon_groups/pod_c`) void host.rmdir(p);
    });
    const res = await cleanupPrefix(h, R, 'pod_');
    expect(res).toMatchObject({ removed: 2, failures: 0, races: 1, nonPrefix: 2 });
    expect(res.removedPaths.sort()).toEqual([`${R}/mon_groups/pod_b`, `${R}/pod_a`]);
    expect(h.calls.every((c) => !c.includes('other/'))).toBe(true);
    expect(await host.exists(`${R}/other/mon_groups/pod_nested`)).toBe(true);
    expect(await host.readdir(`${R}/mon_groups`)).toEqual(['keep']);

    const failing = recording(host, (op, p) => {
      if (op === 'rmdir') throw errnoError('EBUSY', 'rmdir', p);
    });
    await host.mkdir(`${R}/mon_groups/pod_d`);
    expect(await cleanupPrefix(failing, R, 'pod_')).toMatchObject({ removed: 0, failures: 1, failed: [{ path: `${R}/mon_groups/pod_d`, code: 'EBUSY' }] });
    await resctrlErrorOf(cleanupPrefix(host, R, ''), 'InvalidInput');
    await resctrlErrorOf(cleanupPrefix(host, R, '../'), 'InvalidInput');
    await resctrlErrorOf(cleanupPrefix(newHost({ mounted: false }), R, 'pod_'), 'Unsupported');
  });

  it('readMonData sums the domains and leaves out Unavailable counters', async () => {
    const host = newHost({ l3Domains: 2 });
    const group = podGroupPath(R, 'pod_', POD);
    await ensureGroup(host, group);
    host.setMonData(group, { llc_occupancy: 4096, mbm_total_bytes: 10, mbm_local_bytes: 3 }, 0);
    host.setMonData(group, { llc_occupancy: 1024, mbm_total_bytes: 5, mbm_local_bytes: 'Unavailable' }, 1);
    expect(await readMonData(host, group)).toEqual({ llcOccupancy: 5120, mbmTotalBytes: 15, domains: ['mon_L3_00', 'mon_L3_01'] });
    host.setMonData(group, 'Unavailable', 0);
    expect(await readMonData(host, group)).toEqual({ domains: ['mon_L3_00', 'mon_L3_01'] });
    await removeGroup(host, group);
    await resctrlErrorOf(readMonData(host, group), 'GroupGone');
    const alloc = newHost({ monitoring: false });
    await resctrlErrorOf(readMonData(alloc, R), 'Unsupported');
  });
});

describe('host/resctrl.ts on a real tmpdir tree (RealHost)', () => {
  let base: string;
  let root: string;
  let outside: string;

  beforeEach(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'resctrl-host-'));
    root = path.join(base, 'root');
    outside = path.join(base, 'outside');
    await mkdir(outside);
    const r = path.join(root, 'sys/fs/resctrl');
    await mkdir(path.join(r, 'info/L3_MON'), { recursive: true });
    await mkdir(path.join(r, 'mon_groups'));
    await writeFile(path.join(r, 'info/last_cmd_status'), 'ok\n');
    await writeFile(path.join(r, 'info/L3_MON/num_rmids'), '192\n');
    await writeFile(path.join(r, 'info/L3_MON/mon_features'), 'llc_occupancy\n');
    await writeFile(path.join(r, 'tasks'), '1\n');
    await mkdir(path.join(root, 'proc'), { recursive: true });
    await writeFile(path.join(root, 'proc/mounts'), 'sysfs /sys sysfs rw 0 0\nresctrl /sys/fs/resctrl resctrl rw,relatime 0 0\n');
  });
  afterEach(async () => {
    await rm(base, { recursive: true, force: true });
  });


  it('finds the mount and creates groups only inside <root>/mon_groups, whatever the pod UID', async () => {
    const host = new RealHost(root);
    const mount = await resctrlMount(host);
    expect(mount).toBe(R);
    expect(await resctrlCapabilities(host)).toMatchObject({ allocation: false, monitoring: true, numRmids: 192 });
    const hostile = ['../../../../outside/x', '../../../outside', '/etc/passwd', 'a/../../b', 'pod\nx', POD];
    const created: string[] = [];
    for (const uid of hostile) {
      const p = podGroupPath(mount!, 'pod_', uid);
      expect(path.posix.dirname(p)).toBe(`${R}/mon_groups`);
      await ensureGroup(host, p);
      created.push(path.posix.basename(p));
    }
    expect((await readdir(path.join(root, R, 'mon_groups'))).sort()).toEqual([...created].sort());
    expect(await readdir(outside)).toEqual([]);
    for (const prefix of ['../../../outside/', '/', '..', 'pod_/../../']) {
      expect(() => podGroupPath(mount!, prefix, POD)).toThrow(ResctrlError);
    }
  });

  it('hostile paths write and remove nothing; a group deleted underneath is GroupGone without creating a tasks file', async () => {
    const host = new RealHost(root);
    const group = podGroupPath(R, 'pod_', POD);
    await ensureGroup(host, group);
    await writeFile(path.join(root, group, 'tasks'), '');
    const before = await treeFingerprint(base, base);
    await resctrlErrorOf(removeGroup(host, `${R}/../../../../outside`), 'InvalidInput');
    await resctrlErrorOf(ensureGroup(host, `${R}/mon_groups/../../x`), 'InvalidInput');
    await resctrlErrorOf(assignTasks(host, `${R}/mon_groups/../../../..`, [5]), 'InvalidInput');
    await resctrlErrorOf(cleanupPrefix(host, R, '../../outside'), 'InvalidInput');
    expect(await treeFingerprint(base, base)).toBe(before);

    await rm(path.join(root, group), { recursive: true });
    await resctrlErrorOf(assignTasks(host, group, [5]), 'GroupGone');
    expect(await removeGroup(host, group)).toBe(false);
    expect(await lstat(path.join(root, group)).catch(() => undefined)).toBeUndefined();
  });

  it('a mon_groups link that leaves the root is refused before anything is created', async () => {
    const r = path.join(root, R);
    await rm(path.join(r, 'mon_groups'), { recursive: true });
    await symlink(outside, path.join(r, 'mon_groups'));
    const host = new RealHost(root);
    const err = await errOf(ensureGroup(host, podGroupPath(R, 'pod_', POD)));
    expect(err).toBeInstanceOf(HostUsageError);
    expect((err as HostUsageError).code).toBe('ERR_HOST_PATH_ESCAPE');
    expect(await readdir(outside)).toEqual([]);
    const listing = await errOf(cleanupPrefix(host, R, 'pod_'));
    expect((listing as HostUsageError).code).toBe('ERR_HOST_PATH_ESCAPE');
    expect(await readdir(outside)).toEqual([]);
  });
});

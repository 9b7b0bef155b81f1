// The process and thread table behind /proc/<pid>, cgroup.procs/threads and
// resctrl's tasks files. PIDs and TIDs share one number space, as in the
// kernel (a process's PID is its main thread's TID). Every process sits in one
// cgroup (cgroup v2 domain mode: all its threads with it). Listeners let other
// models follow thread lifetimes: resctrl copies a new thread's group from
// the thread that created it (fork/clone inheritance) and forgets exited ones.
import { kernelError } from './errors.js';
import { kstrtoul } from './kstrto.js';
import { attr, dir, type SimNode } from './vfs.js';

export interface SimProcess {
  readonly pid: number;
  /** Thread IDs, main thread (== pid) first, in creation order. */
  readonly tids: number[];
  /** cgroup path relative to the cgroup2 root, e.g. '/kubepods.slice/…/cri-containerd-<id>.scope'. */
  cgroup: string;
  readonly comm: string;
}

export interface SpawnSpec {
  pid?: number;
  /** Number of threads including the main one (default 1). */
  threads?: number;
  cgroup: string;
  comm?: string;
  /** The TID that forks: the new process inherits what it has (resctrl group). Absent: a new process started by an outside agent (runc exec, the shim). */
  parentTid?: number;
}

export interface ThreadListener {
  /** A thread appeared; `fromTid` created it (fork/clone) or is undefined for a process started from outside. */
  created(tid: number, fromTid: number | undefined): void;
  exited(tid: number): void;
}

/** Linux PID_MAX_LIMIT on 64-bit. */
export const PID_MAX_LIMIT = 4_194_304;
const FIRST_DYNAMIC_PID = 1000;

export class ProcessTable {
  private readonly processes = new Map<number, SimProcess>();
  /** tid → owning pid. */
  private readonly threadOwner = new Map<number, number>();
  private readonly listeners: ThreadListener[] = [];
  private nextId = FIRST_DYNAMIC_PID;
  /** The task that writes (pid 0 in a tasks or cgroup.procs write means "myself"). */
  private current: number | undefined;

  listen(listener: ThreadListener): void {
    this.listeners.push(listener);
  }

  spawn(spec: SpawnSpec): SimProcess {
    const threads = spec.threads ?? 1;
    if (!Number.isInteger(threads) || threads < 1) throw new Error(`threads must be a positive integer, got ${threads}`);
    if (spec.parentTid !== undefined && !this.threadOwner.has(spec.parentTid)) throw new Error(`no thread ${spec.parentTid} to fork from`);
    let pid: number;
    if (spec.pid !== undefined) {
      if (!Number.isInteger(spec.pid) || spec.pid < 1 || spec.pid >= PID_MAX_LIMIT) throw new Error(`invalid pid ${spec.pid}`);
      if (this.threadOwner.has(spec.pid)) throw new Error(`pid ${spec.pid} is in use`);
      pid = spec.pid;
    } else {
      pid = this.allocateId();
    }
    const proc: SimProcess = { pid, tids: [pid], cgroup: spec.cgroup, comm: spec.comm ?? 'proc' };
    this.processes.set(pid, proc);
    this.threadOwner.set(pid, pid);
    for (const l of this.listeners) l.created(pid, spec.parentTid);
    for (let i = 1; i < threads; i++) this.addThread(pid);
    return proc;
  }

  /** clone(CLONE_THREAD) from `fromTid` (default the main thread): the new thread inherits from it. */
  addThread(pid: number, fromTid?: number): number {
    const proc = this.processes.get(pid);
    if (!proc) throw new Error(`no process ${pid}`);
    const creator = fromTid ?? pid;
    if (!proc.tids.includes(creator)) throw new Error(`thread ${creator} is not in process ${pid}`);
    const tid = this.allocateId();
    proc.tids.push(tid);
    this.threadOwner.set(tid, pid);
    for (const l of this.listeners) l.created(tid, creator);
    return tid;
  }

  /** A non-main thread exits; the main thread's exit is the process's (exit_group). */
  exitThread(tid: number): void {
    const pid = this.threadOwner.get(tid);
    if (pid === undefined) throw new Error(`no thread ${tid}`);
    if (pid === tid) {
      this.exit(pid);
      return;
    }
    const proc = this.processes.get(pid)!;
    proc.tids.splice(proc.tids.indexOf(tid), 1);
    this.threadOwner.delete(tid);
    for (const l of this.listeners) l.exited(tid);
  }

  /** The process and all its threads vanish (reaped). */
  exit(pid: number): void {
    const proc = this.processes.get(pid);
    if (!proc) throw new Error(`no process ${pid}`);
    this.processes.delete(pid);
    for (const tid of proc.tids) {
      this.threadOwner.delete(tid);
      for (const l of this.listeners) l.exited(tid);
    }
  }

  /** Which thread issues the host's writes (the node agent's). */
  setCurrent(tid: number | undefined): void {
    if (tid !== undefined && !this.threadOwner.has(tid)) throw new Error(`no thread ${tid}`);
    this.current = tid;
  }

  /** The writing thread; a write naming pid 0 needs one (set with setCurrent). */
  currentTid(): number {
    if (this.current === undefined || !this.threadOwner.has(this.current)) {
      throw new Error('pid 0 names the writing task, and no live current task is set (SimHost.setCurrentTask)');
    }
    return this.current;
  }

  currentProcess(): SimProcess {
    return this.ownerOf(this.currentTid())!;
  }

  get(pid: number): SimProcess | undefined {
    return this.processes.get(pid);
  }

  /** The process a thread belongs to. */
  ownerOf(tid: number): SimProcess | undefined {
    const pid = this.threadOwner.get(tid);
    return pid === undefined ? undefined : this.processes.get(pid);
  }

  hasThread(tid: number): boolean {
    return this.threadOwner.has(tid);
  }

  /** Processes in creation order (the kernel's task list order). */
  list(): SimProcess[] {
    return [...this.processes.values()];
  }

  /** Every live TID in task-list order. */
  allTids(): number[] {
    return this.list().flatMap((p) => p.tids);
  }

  inCgroup(cgroup: string): SimProcess[] {
    return this.list().filter((p) => p.cgroup === cgroup);
  }

  /** alloc_pid: the next unused number above the last one handed out, wrapping below PID_MAX_LIMIT. */
  private allocateId(): number {
    for (let tries = 0; tries < PID_MAX_LIMIT; tries++) {
      const id = this.nextId;
      this.nextId = this.nextId + 1 >= PID_MAX_LIMIT ? FIRST_DYNAMIC_PID : this.nextId + 1;
      if (!this.threadOwner.has(id)) return id;
    }
    throw new Error('out of PIDs');
  }
}

/**
 * /proc/<pid> for every process (readdir shows thread-group leaders only):
 * comm, cgroup ("0::<path>" on a cgroup2-only host) and task/<tid>/ with the
 * same per-thread files. `extra` adds files per task (cpu_resctrl_groups).
 */
export function procPidEntries(table: ProcessTable, extra: (tid: number) => Record<string, SimNode | undefined>): Record<string, SimNode> {
  const taskFiles = (proc: SimProcess, tid: number): Record<string, SimNode | undefined> => ({
    comm: attr(() => `${proc.comm}\n`),
    cgroup: attr(() => `0::${proc.cgroup}\n`),
    ...extra(tid),
  });
  const out: Record<string, SimNode> = {};
  for (const proc of table.list()) {
    out[String(proc.pid)] = dir(() => ({
      ...taskFiles(proc, proc.pid),
      task: dir(() => Object.fromEntries(proc.tids.map((tid) => [String(tid), dir(() => taskFiles(proc, tid))]))),
    }));
  }
  return out;
}

/** kstrtoint(s, 0): kstrtoul's syntax with an optional '-', range of a C int; any failure is EINVAL. */
export function kstrtoint(s: string): number {
  const negative = s.startsWith('-');
  let magnitude: bigint;
  try {
    magnitude = kstrtoul(negative ? s.slice(1) : s);
  } catch {
    throw kernelError('EINVAL', `not an int: ${JSON.stringify(s)}`);
  }
  const value = negative ? -magnitude : magnitude;
  if (value > 0x7fffffffn || value < -0x80000000n) throw kernelError('EINVAL', `out of int range: ${JSON.stringify(s)}`);
  return Number(value);
}

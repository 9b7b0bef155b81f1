// cgroup v2 (the unified hierarchy at /sys/fs/cgroup) as the node agent sees
// it (shared/reference/node-host-interfaces.md §5.1):
// - the kubelet's pod cgroups for both drivers: systemd
//   (kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_>.slice, '-'
//   escaped to '_') and cgroupfs (kubepods/<qos>/pod<uid>); Guaranteed pods
//   have no QoS level;
// - the runtime's container cgroups: systemd `<runtime>-<id>.scope`
//   (cri-containerd, crio), cgroupfs `<id>` (containerd) or `crio-<id>`;
// - cgroup.procs lists TGIDs, cgroup.threads every TID of the processes in
//   that cgroup (not its descendants); both are unordered and may contain
//   duplicates (the `listDuplicates` knob shows each entry twice, as a reader
//   racing migrations can see);
// - mkdir creates a cgroup, rmdir is EBUSY while it has processes or child
//   cgroups; a write to cgroup.procs moves a whole process (ESRCH for an
//   unknown PID, EBUSY into a non-root cgroup with children: the
//   no-internal-process rule); cgroup.threads cannot move a thread into
//   another domain cgroup (EOPNOTSUPP).
// The rendering (files and dirs) is derived from this model and the process
// table on every lookup.
import type { ContainerRuntime, QosClass } from '../cgroup.js';
import { kernelError } from './errors.js';
import { kstrtoint, type ProcessTable } from './procs.js';
import { attr, dir, type SimDir, type SimNode } from './vfs.js';

export type CgroupDriver = 'systemd' | 'cgroupfs';

export interface ContainerSpec {
  podUid: string;
  qos: QosClass;
  containerId: string;
  /** Default cri-containerd. */
  runtime?: ContainerRuntime;
}

export interface CgroupOptions {
  driver: CgroupDriver;
  listDuplicates?: boolean;
}

export interface CgroupSnapshot {
  /** Host path, e.g. /sys/fs/cgroup/kubepods.slice. */
  path: string;
  procs: number[];
  threads: number[];
}

export const CGROUP_MOUNT = '/sys/fs/cgroup';
const CONTROLLERS = 'cpuset cpu io memory hugetlb pids rdma misc\n';
const SAFE_NAME = /^[A-Za-z0-9_-]+$/;

export class CgroupModel {
  /** Relative paths of every cgroup, '/' being the root. */
  private readonly cgroups = new Set<string>(['/']);
  private readonly containers = new Map<string, string>();
  private listDuplicates: boolean;

  constructor(
    private readonly procs: ProcessTable,
    private readonly opts: CgroupOptions,
  ) {
    this.listDuplicates = opts.listDuplicates ?? false;
    for (const p of ['/init.scope', '/system.slice', '/user.slice']) this.create(p);
    for (const qos of ['Burstable', 'BestEffort'] as const) this.createWithParents(this.qosPath(qos));
  }

  get driver(): CgroupDriver {
    return this.opts.driver;
  }

  setListDuplicates(on: boolean): void {
    this.listDuplicates = on;
  }

  has(rel: string): boolean {
    return this.cgroups.has(rel);
  }

  /** The kubelet creates the pod cgroup (if missing) and the runtime the container's; returns the relative path. */
  addContainer(spec: ContainerSpec): string {
    if (!SAFE_NAME.test(spec.podUid)) throw new Error(`pod UID must match ${SAFE_NAME}, got ${JSON.stringify(spec.podUid)}`);
    if (!/^[0-9a-f]{12,64}$/.test(spec.containerId)) throw new Error(`container ID must be 12-64 lowercase hex, got ${JSON.stringify(spec.containerId)}`);
    if (this.containers.has(spec.containerId)) throw new Error(`container ${spec.containerId} exists`);
    const rel = `${this.podPath(spec.podUid, spec.qos)}/${this.containerName(spec.containerId, spec.runtime ?? 'cri-containerd')}`;
    this.createWithParents(rel);
    this.containers.set(spec.containerId, rel);
    return rel;
  }

  /** The container's processes exit and the runtime removes its cgroup; returns the relative path. */
  removeContainer(containerId: string): string {
    const rel = this.containers.get(containerId);
    if (rel === undefined) throw new Error(`no container ${containerId}`);
    for (const proc of this.procs.inCgroup(rel)) this.procs.exit(proc.pid);
    this.cgroups.delete(rel);
    this.containers.delete(containerId);
    return rel;
  }

  /** The kubelet deletes a pod's cgroup after its containers are gone. */
  removePod(podUid: string, qos: QosClass): void {
    const pod = this.podPath(podUid, qos);
    if (!this.cgroups.has(pod)) throw new Error(`no pod cgroup ${pod}`);
    for (const [id, rel] of this.containers) if (rel.startsWith(pod + '/')) this.removeContainer(id);
    if (this.children(pod).length > 0 || this.populated(pod)) throw new Error(`${pod} still has processes or cgroups`);
    this.cgroups.delete(pod);
  }

  rootDir(): SimDir {
    return this.cgroupDir('/');
  }

  snapshot(): CgroupSnapshot[] {
    return [...this.cgroups].sort().map((rel) => ({
      path: rel === '/' ? CGROUP_MOUNT : CGROUP_MOUNT + rel,
      procs: this.procs.inCgroup(rel).map((p) => p.pid),
      threads: this.procs.inCgroup(rel).flatMap((p) => p.tids),
    }));
  }

  // ---- kubelet / runtime naming ----

  private qosPath(qos: QosClass): string {
    if (this.opts.driver === 'cgroupfs') return qos === 'Guaranteed' ? '/kubepods' : `/kubepods/${qos.toLowerCase()}`;
    return qos === 'Guaranteed' ? '/kubepods.slice' : `/kubepods.slice/kubepods-${qos.toLowerCase()}.slice`;
  }

  private podPath(podUid: string, qos: QosClass): string {
    if (this.opts.driver === 'cgroupfs') return `${this.qosPath(qos)}/pod${podUid}`;
    const escaped = podUid.replaceAll('-', '_');
    const slice = qos === 'Guaranteed' ? `kubepods-pod${escaped}.slice` : `kubepods-${qos.toLowerCase()}-pod${escaped}.slice`;
    return `${this.qosPath(qos)}/${slice}`;
  }

  private containerName(id: string, runtime: ContainerRuntime): string {
    if (this.opts.driver === 'systemd') return `${runtime}-${id}.scope`;
    return runtime === 'crio' ? `crio-${id}` : id;
  }

  // ---- tree ----

  private create(rel: string): void {
    if (this.cgroups.has(rel)) throw kernelError('EEXIST');
    if (!this.cgroups.has(parentOf(rel))) throw kernelError('ENOENT');
    this.cgroups.add(rel);
  }

  private createWithParents(rel: string): void {
    const segments = rel.split('/').filter(Boolean);
    for (let i = 1; i <= segments.length; i++) {
      const p = '/' + segments.slice(0, i).join('/');
      if (!this.cgroups.has(p)) this.create(p);
    }
  }

  private children(rel: string): string[] {
    return [...this.cgroups].filter((p) => p !== '/' && parentOf(p) === rel);
  }

  /** cgroup.events "populated": processes here or in any descendant. */
  private populated(rel: string): boolean {
    const prefix = rel === '/' ? '/' : rel + '/';
    return this.procs.list().some((p) => p.cgroup === rel || p.cgroup.startsWith(prefix));
  }

  private join(rel: string, name: string): string {
    return rel === '/' ? `/${name}` : `${rel}/${name}`;
  }

  private cgroupDir(rel: string): SimDir {
    const node = dir(() => {
      if (!this.cgroups.has(rel)) return {};
      const entries: Record<string, SimNode | undefined> = {
        'cgroup.procs': attr(
          () => this.listing(this.procs.inCgroup(rel).map((p) => p.pid)),
          (buf) => this.moveProcess(rel, buf),
        ),
        'cgroup.threads': attr(
          () => this.listing(this.procs.inCgroup(rel).flatMap((p) => p.tids)),
          (buf) => this.moveThread(rel, buf),
        ),
        'cgroup.controllers': attr(() => CONTROLLERS),
        'cgroup.subtree_control': attr(() => (this.children(rel).length > 0 ? CONTROLLERS : '\n')),
        'cgroup.type': rel === '/' ? undefined : attr(() => 'domain\n'),
        'cgroup.events': rel === '/' ? undefined : attr(() => `populated ${this.populated(rel) ? 1 : 0}\nfrozen 0\n`),
      };
      for (const child of this.children(rel)) entries[child.slice(child.lastIndexOf('/') + 1)] = this.cgroupDir(child);
      return entries;
    });
    return {
      ...node,
      mkdir: (name: string) => {
        if (name.includes('\n')) throw kernelError('EINVAL', 'cgroup name contains a newline');
        this.create(this.join(rel, name));
      },
      rmdir: (name: string) => {
        const child = this.join(rel, name);
        if (!this.cgroups.has(child)) throw kernelError('ENOENT');
        if (this.children(child).length > 0 || this.populated(child)) throw kernelError('EBUSY', `${child} has child cgroups or processes`);
        this.cgroups.delete(child);
        for (const [id, p] of this.containers) if (p === child) this.containers.delete(id);
      },
    };
  }

  private listing(ids: number[]): string {
    const shown = this.listDuplicates ? ids.flatMap((id) => [id, id]) : ids;
    return shown.map((id) => `${id}\n`).join('');
  }

  /** cgroup_procs_write: kstrtoint of the stripped buffer, whole thread group moves. */
  private moveProcess(rel: string, buf: string): void {
    if (!this.cgroups.has(rel)) throw kernelError('ENODEV');
    const tid = parsePid(buf);
    const proc = tid === 0 ? this.procs.currentProcess() : this.procs.ownerOf(tid);
    if (!proc) throw kernelError('ESRCH', `no process ${tid}`);
    if (rel !== '/' && this.children(rel).length > 0) throw kernelError('EBUSY', 'cgroup has children with controllers enabled');
    proc.cgroup = rel;
  }

  private moveThread(rel: string, buf: string): void {
    if (!this.cgroups.has(rel)) throw kernelError('ENODEV');
    const tid = parsePid(buf);
    const owner = tid === 0 ? this.procs.currentProcess() : this.procs.ownerOf(tid);
    if (!owner) throw kernelError('ESRCH', `no thread ${tid}`);
    if (owner.cgroup !== rel) throw kernelError('EOPNOTSUPP', 'threads of a domain cgroup cannot be split across cgroups');
  }
}

function parentOf(rel: string): string {
  const slash = rel.lastIndexOf('/');
  return slash <= 0 ? '/' : rel.slice(0, slash);
}

/** cgroup_procs_write_start: kstrtoint(strstrip(buf), 0); a negative PID names no task. */
function parsePid(buf: string): number {
  const pid = kstrtoint(buf.trim());
  if (pid < 0) throw kernelError('ESRCH', `no task ${pid}`);
  return pid;
}

// Finding a container's threads through cgroup v2
// (shared/reference/node-host-interfaces.md §5.1): the expected cgroup path
// for both kubelet drivers (systemd: kubepods.slice/kubepods-<qos>.slice/
// kubepods-<qos>-pod<uid_>.slice/<runtime>-<id>.scope; cgroupfs:
// kubepods/<qos>/pod<uid>/<id>), then a bounded walk when neither exists (a
// different cgroup root, e.g. KIND's kubelet.slice). cgroup.threads, not
// cgroup.procs, so that every thread of a running process can be moved.
// Failures are ResctrlErrors (InvalidInput, Io): one error type for the resctrl
// procedures that use these paths.
import { HostUsageError, isErrno, type Host } from './host.js';
import { ResctrlError } from './resctrl.js';

export const CGROUP_ROOT = '/sys/fs/cgroup';

export type QosClass = 'Guaranteed' | 'Burstable' | 'BestEffort';
export type ContainerRuntime = 'cri-containerd' | 'crio';

export interface ContainerRef {
  podUid: string;
  qos: QosClass;
  /** 12-64 lowercase hex, optionally with the status field's `<runtime>://` prefix. */
  containerId: string;
  /** Narrows the candidates to one runtime's naming; both are tried when absent. */
  runtime?: ContainerRuntime;
}

export interface CgroupCandidate {
  driver: 'systemd' | 'cgroupfs';
  path: string;
}

export interface WalkLimits {
  maxDepth?: number;
  maxEntries?: number;
}

const CONTAINER_ID = /^[0-9a-f]{12,64}$/;
/** Kubernetes UIDs are UUIDs; static pods use a hash in hex. */
const POD_UID = /^[0-9A-Za-z-]{1,64}$/;
const RUNTIME_PREFIX = /^[a-z0-9-]+:\/\//;
const QOS_CLASSES: readonly QosClass[] = ['Guaranteed', 'Burstable', 'BestEffort'];
const RUNTIMES: readonly ContainerRuntime[] = ['cri-containerd', 'crio'];
const DEFAULT_MAX_DEPTH = 6;
const DEFAULT_MAX_ENTRIES = 5000;

/** `containerd://<hex>` or `<hex>` → `<hex>`; anything else is InvalidInput. */
export function parseContainerId(raw: string): string {
  const id = typeof raw === 'string' ? raw.replace(RUNTIME_PREFIX, '') : '';
  if (!CONTAINER_ID.test(id)) throw new ResctrlError('InvalidInput', `not a container ID (12-64 lowercase hex): ${JSON.stringify(raw)}`, { value: String(raw) });
  return id;
}

export function validatePodUid(podUid: string): string {
  if (typeof podUid !== 'string' || !POD_UID.test(podUid)) throw new ResctrlError('InvalidInput', `not a pod UID: ${JSON.stringify(podUid)}`, { value: String(podUid) });
  return podUid;
}

function validateQos(qos: QosClass): QosClass {
  if (!QOS_CLASSES.includes(qos)) throw new ResctrlError('InvalidInput', `not a QoS class: ${JSON.stringify(qos)}`, { value: String(qos) });
  return qos;
}

function validateRuntime(runtime: ContainerRuntime | undefined): readonly ContainerRuntime[] {
  if (runtime === undefined) return RUNTIMES;
  if (!RUNTIMES.includes(runtime)) throw new ResctrlError('InvalidInput', `not a runtime: ${JSON.stringify(runtime)}`, { value: String(runtime) });
  return [runtime];
}

/** Where the kubelet and the runtime put the container, for each driver (systemd first). */
export function expectedContainerCgroupPaths(ref: ContainerRef): CgroupCandidate[] {
  const uid = validatePodUid(ref.podUid);
  const qos = validateQos(ref.qos);
  const id = parseContainerId(ref.containerId);
  const runtimes = validateRuntime(ref.runtime);
  const level = qos === 'Guaranteed' ? undefined : qos.toLowerCase();

  // systemd: each component's '-' becomes '_', slices nest by name.
  const escaped = uid.replaceAll('-', '_');
  const systemdPod = level
    ? `${CGROUP_ROOT}/kubepods.slice/kubepods-${level}.slice/kubepods-${level}-pod${escaped}.slice`
    : `${CGROUP_ROOT}/kubepods.slice/kubepods-pod${escaped}.slice`;
  const cgroupfsPod = level ? `${CGROUP_ROOT}/kubepods/${level}/pod${uid}` : `${CGROUP_ROOT}/kubepods/pod${uid}`;

  return [
    ...runtimes.map((rt): CgroupCandidate => ({ driver: 'systemd', path: `${systemdPod}/${rt}-${id}.scope` })),
    ...runtimes.map((rt): CgroupCandidate => ({ driver: 'cgroupfs', path: `${cgroupfsPod}/${rt === 'crio' ? `crio-${id}` : id}` })),
  ];
}

/**
 * The container's cgroup directory: the expected path for either driver, or
 * else the first directory named `*-<id>.scope`, `crio-<id>` or `<id>` under
 * a pod directory of this pod, found by a bounded walk of /sys/fs/cgroup/kube*.
 * Undefined when the container has no cgroup (not started, or gone).
 */
export async function containerCgroupPath(host: Host, ref: ContainerRef, limits: WalkLimits = {}): Promise<string | undefined> {
  const candidates = expectedContainerCgroupPaths(ref);
  for (const c of candidates) {
    if (await host.exists(`${c.path}/cgroup.procs`)) return c.path;
  }
  return findContainerCgroup(host, ref, limits);
}

async function findContainerCgroup(host: Host, ref: ContainerRef, limits: WalkLimits): Promise<string | undefined> {
  const id = parseContainerId(ref.containerId);
  const uid = validatePodUid(ref.podUid);
  const podMarkers = [`pod${uid}`, `pod${uid.replaceAll('-', '_')}`];
  const maxDepth = limits.maxDepth ?? DEFAULT_MAX_DEPTH;
  let budget = limits.maxEntries ?? DEFAULT_MAX_ENTRIES;
  const isMatch = (name: string) => name === id || name === `crio-${id}` || name.endsWith(`-${id}.scope`);
  // Interface files all contain a dot (cgroup.procs, memory.max); cgroup directories here are plain names, *.slice or *.scope.
  const mayBeCgroup = (name: string) => !name.includes('.') || name.endsWith('.slice') || name.endsWith('.scope');

  let level = (await listDir(host, CGROUP_ROOT)).filter((n) => n.startsWith('kube') && mayBeCgroup(n)).map((n) => `${CGROUP_ROOT}/${n}`);
  for (let depth = 1; depth <= maxDepth && level.length > 0; depth++) {
    const next: string[] = [];
    for (const dir of level) {
      const names = await listDir(host, dir);
      budget -= names.length;
      if (budget < 0) return undefined;
      for (const name of names) {
        if (!mayBeCgroup(name)) continue;
        const path = `${dir}/${name}`;
        if (isMatch(name) && podMarkers.some((m) => path.includes(m))) return path;
        next.push(path);
      }
    }
    level = next;
  }
  return undefined;
}

async function listDir(host: Host, path: string): Promise<string[]> {
  try {
    return await host.readdir(path);
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ENOTDIR')) return [];
    throw ioError(err, 'readdir', path);
  }
}

function validateCgroupPath(path: string): string {
  const ok = typeof path === 'string' && path.startsWith(`${CGROUP_ROOT}/`) && !path.slice(1).split('/').some((s) => s === '..' || s === '.' || s === '') && !path.includes('\0');
  if (!ok) throw new ResctrlError('InvalidInput', `not a cgroup directory under ${CGROUP_ROOT}: ${JSON.stringify(path)}`, { value: String(path) });
  return path;
}

/** Every TID in the cgroup (cgroup.threads), de-duplicated, in listing order; [] when the cgroup is gone. */
export async function containerThreads(host: Host, cgroupPath: string): Promise<number[]> {
  return readIds(host, `${validateCgroupPath(cgroupPath)}/cgroup.threads`);
}

/** The cgroup's processes (cgroup.procs, TGIDs), de-duplicated; [] when the cgroup is gone. */
export async function containerProcesses(host: Host, cgroupPath: string): Promise<number[]> {
  return readIds(host, `${validateCgroupPath(cgroupPath)}/cgroup.procs`);
}

async function readIds(host: Host, file: string): Promise<number[]> {
  let text: string;
  try {
    text = await host.readFile(file);
  } catch (err) {
    // The container exited and the runtime removed its cgroup.
    if (isErrno(err, 'ENOENT', 'ENODEV')) return [];
    throw ioError(err, 'read', file);
  }
  const seen = new Set<number>();
  for (const line of text.split('\n')) {
    const s = line.trim();
    if (s === '') continue;
    if (!/^[0-9]+$/.test(s)) throw new ResctrlError('Io', `unexpected line in ${file}: ${JSON.stringify(line)}`, { path: file });
    seen.add(Number(s));
  }
  return [...seen];
}

function ioError(err: unknown, op: string, path: string): Error {
  if (err instanceof HostUsageError) return err;
  return new ResctrlError('Io', `${op} ${path}: ${(err as Error).message ?? String(err)}`, { path, code: (err as { code?: unknown }).code });
}

// Per-pod resctrl groups through the Host port (shared/reference/
// node-host-interfaces.md §2, §3): detection from /proc/mounts, group paths
// built only from validated names, mkdir/rmdir with the kernel's errnos turned
// into typed answers (ENOSPC and limbo EBUSY are capacity, not I/O), one
// tasks write per TID that tolerates exited threads, prefix-only cleanup that
// never descends into other control groups, and mon_data sums.
import { HostUsageError, isErrno, validateHostPath, type Host } from './host.js';

export const RESCTRL_DEFAULT_ROOT = '/sys/fs/resctrl';
export const DEFAULT_GROUP_PREFIX = 'pod_';

export type ResctrlErrorKind = 'Capacity' | 'CapacityLimbo' | 'NoPermission' | 'GroupGone' | 'Unsupported' | 'InvalidInput' | 'Io';

export class ResctrlError extends Error {
  constructor(
    readonly kind: ResctrlErrorKind,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'ResctrlError';
  }
}

/** 'monitor': a MON group in the root's mon_groups (an RMID); 'control': a CTRL_MON group at the root (a CLOSID and an RMID). */
export type GroupMode = 'monitor' | 'control';

export interface ResctrlCapabilities {
  mountPoint: string;
  /** CTRL_MON groups can be created (info/ has an allocation resource). */
  allocation: boolean;
  /** MON groups and mon_data exist (info/L3_MON). */
  monitoring: boolean;
  numClosids?: number;
  numRmids?: number;
  monFeatures: string[];
}

export interface AssignResult {
  /** TIDs moved by this call. */
  assigned: number;
  /** TIDs already listed in the group's tasks. */
  alreadyMember: number;
  /** TIDs that exited before their write (ESRCH). */
  gone: number;
  /** TIDs the kernel refused, e.g. EINVAL "Can't move task to different control group". */
  rejected: Array<{ tid: number; reason: string }>;
}

export interface CleanupResult {
  removed: number;
  failures: number;
  /** Listed, then gone before the rmdir (ENOENT). */
  races: number;
  /** Groups at the two cleaned levels whose names do not start with the prefix (left alone). */
  nonPrefix: number;
  /** Prefixed groups left alone because they belong to a live pod. */
  kept: number;
  removedPaths: string[];
  failed: Array<{ path: string; code: string }>;
}

export interface MonData {
  /** Sum over every mon_L3_* domain; undefined when a domain reads Unavailable/Unassigned or the counter is absent. */
  llcOccupancy?: number;
  mbmTotalBytes?: number;
  mbmLocalBytes?: number;
  /** The domains read, e.g. ['mon_L3_00', 'mon_L3_01']. */
  domains: string[];
}

const GROUP_PREFIX = /^[A-Za-z0-9_-]{1,32}$/;
const MAX_UID_LENGTH = 63;
const NOT_UID_CHAR = /[^A-Za-z0-9_-]/g;
/** Linux PID_MAX_LIMIT: TIDs are below it. */
const PID_MAX_LIMIT = 4_194_304;
/** Files at the resctrl root and in every group; never groups. */
const GROUP_FILES = new Set(['tasks', 'cpus', 'cpus_list', 'schemata', 'size', 'mode', 'ctrl_hw_id', 'mon_hw_id']);
const ROOT_DIRS = new Set(['info', 'mon_groups', 'mon_data']);
const ALLOCATION_RESOURCES = ['L3', 'L3CODE', 'L3DATA', 'L2', 'L2CODE', 'L2DATA', 'MB', 'SMBA'];
const COUNTERS = [
  ['llc_occupancy', 'llcOccupancy'],
  ['mbm_total_bytes', 'mbmTotalBytes'],
  ['mbm_local_bytes', 'mbmLocalBytes'],
] as const;

// ---- names and paths ----

/** Like the seed: characters outside [A-Za-z0-9_-] become '_', at most 63 characters; nothing left is refused. */
export function sanitizePodUid(podUid: string): string {
  if (typeof podUid !== 'string') throw new ResctrlError('InvalidInput', 'pod UID must be a string', { value: String(podUid) });
  const clean = podUid.replace(NOT_UID_CHAR, '_').slice(0, MAX_UID_LENGTH);
  if (clean.length === 0 || /^_+$/.test(clean)) throw new ResctrlError('InvalidInput', `pod UID has no usable characters: ${JSON.stringify(podUid)}`, { value: podUid });
  return clean;
}

export function validateGroupPrefix(prefix: string): string {
  if (typeof prefix !== 'string' || !GROUP_PREFIX.test(prefix)) {
    throw new ResctrlError('InvalidInput', `group prefix must match ${GROUP_PREFIX}: ${JSON.stringify(prefix)}`, { value: String(prefix) });
  }
  return prefix;
}

function validateRoot(root: string): string {
  try {
    return validateHostPath(root);
  } catch (err) {
    if (err instanceof HostUsageError) throw new ResctrlError('InvalidInput', `not a resctrl root: ${err.message}`, { value: root });
    throw err;
  }
}

/** The pod's group: `<root>/mon_groups/<prefix><uid>` (monitor) or `<root>/<prefix><uid>` (control). */
export function podGroupPath(root: string, prefix: string, podUid: string, mode: GroupMode = 'monitor'): string {
  const base = validateRoot(root);
  const name = validateGroupPrefix(prefix) + sanitizePodUid(podUid);
  // e.g. prefix "mon_" + UID "groups": the name of a resctrl directory or file, not a new group.
  if (ROOT_DIRS.has(name) || GROUP_FILES.has(name)) throw new ResctrlError('InvalidInput', `group name ${JSON.stringify(name)} is reserved by resctrl`, { value: name });
  if (mode !== 'monitor' && mode !== 'control') throw new ResctrlError('InvalidInput', `unknown group mode ${JSON.stringify(mode)}`, { value: String(mode) });
  const parent = base === '/' ? '' : base;
  return mode === 'monitor' ? `${parent}/mon_groups/${name}` : `${parent}/${name}`;
}

function validateGroupPath(path: string): string {
  try {
    validateHostPath(path);
  } catch (err) {
    if (err instanceof HostUsageError) throw new ResctrlError('InvalidInput', `not a group path: ${err.message}`, { value: path });
    throw err;
  }
  if (path === '/') throw new ResctrlError('InvalidInput', 'the filesystem root is not a resctrl group', { value: path });
  return path;
}

function dirname(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash <= 0 ? '/' : path.slice(0, slash);
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

function join(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

/**
 * The resctrl mount a group path belongs to, judged by its shape: the root
 * itself, `<root>/<group>`, `<root>/mon_groups/<group>` or
 * `<root>/<class>/mon_groups/<group>`, where the root has
 * info/last_cmd_status. Undefined for any other path.
 */
async function rootOf(host: Host, groupPath: string): Promise<string | undefined> {
  const parent = dirname(groupPath);
  const candidates = basename(parent) === 'mon_groups' ? [dirname(parent), dirname(dirname(parent))] : [parent, groupPath];
  for (const c of candidates) {
    if (await host.exists(join(c, 'info/last_cmd_status'))) return c;
  }
  return undefined;
}

/** Refuses to touch a path that is not shaped like a group of a mounted resctrl; `missing` answers when nothing is there. */
async function requireGroupShape(host: Host, groupPath: string, missing: () => ResctrlError | false): Promise<string | false> {
  const root = await rootOf(host, groupPath);
  if (root !== undefined) return root;
  if (!(await host.exists(groupPath))) {
    const answer = missing();
    if (answer === false) return false;
    throw answer;
  }
  throw new ResctrlError('InvalidInput', `${groupPath} is not a group of a mounted resctrl filesystem`, { path: groupPath });
}

/** info/last_cmd_status of the group's mount, or undefined when it cannot be read. */
async function lastCmdStatus(host: Host, groupPath: string): Promise<string | undefined> {
  const root = await rootOf(host, groupPath);
  if (root === undefined) return undefined;
  const text = await host.readFile(join(root, 'info/last_cmd_status')).catch(() => undefined);
  return text?.trim();
}

// ---- detection ----

/** The resctrl mount point from /proc/mounts (fstype field), or undefined when not mounted. */
export async function resctrlMount(host: Host): Promise<string | undefined> {
  let text: string;
  try {
    text = await host.readFile('/proc/mounts');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw new ResctrlError('Io', `cannot read /proc/mounts: ${(err as Error).message}`, { code: (err as { code?: unknown }).code });
  }
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    if (fields[2] !== 'resctrl' || fields[1] === undefined) continue;
    // Mount points escape space, tab, newline and backslash as \ooo.
    const mountPoint = fields[1].replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
    try {
      return validateHostPath(mountPoint);
    } catch {
      continue;
    }
  }
  return undefined;
}

/** What the mounted resctrl supports, from its info/ directory. */
export async function resctrlCapabilities(host: Host, mountPoint?: string): Promise<ResctrlCapabilities> {
  const root = mountPoint === undefined ? await resctrlMount(host) : validateRoot(mountPoint);
  if (root === undefined) throw new ResctrlError('Unsupported', 'resctrl is not mounted (no resctrl line in /proc/mounts)');
  let info: string[];
  try {
    info = await host.readdir(join(root, 'info'));
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ENOTDIR')) throw new ResctrlError('Unsupported', `${root} has no info directory: not a resctrl mount`, { root });
    throw ioError(err, 'read info', root);
  }
  const readNumber = async (p: string): Promise<number | undefined> => {
    const text = await host.readFile(join(root, p)).catch(() => undefined);
    const n = text === undefined ? NaN : Number(text.trim());
    return Number.isInteger(n) ? n : undefined;
  };
  const allocation = ALLOCATION_RESOURCES.some((r) => info.includes(r));
  const monitoring = info.includes('L3_MON');
  const closidCounts = await Promise.all(ALLOCATION_RESOURCES.filter((r) => info.includes(r)).map((r) => readNumber(`info/${r}/num_closids`)));
  const known = closidCounts.filter((n): n is number => n !== undefined);
  const numRmids = monitoring ? await readNumber('info/L3_MON/num_rmids') : undefined;
  const features = monitoring ? await host.readFile(join(root, 'info/L3_MON/mon_features')).catch(() => '') : '';
  const caps: ResctrlCapabilities = { mountPoint: root, allocation, monitoring, monFeatures: features.split('\n').filter(Boolean) };
  // The kernel enforces the smallest CLOSID count of the enabled resources.
  if (known.length > 0) caps.numClosids = Math.min(...known);
  if (numRmids !== undefined) caps.numRmids = numRmids;
  return caps;
}

// ---- groups ----

/** mkdir the group; true when created, false when it already existed. */
export async function ensureGroup(host: Host, path: string): Promise<boolean> {
  validateGroupPath(path);
  if (ROOT_DIRS.has(basename(path)) || GROUP_FILES.has(basename(path))) throw new ResctrlError('InvalidInput', `${path}: the name is reserved by resctrl`, { path });
  await requireGroupShape(host, path, () => new ResctrlError('Unsupported', `${dirname(path)} is not in a mounted resctrl filesystem (or has no monitoring support)`, { path }));
  try {
    await host.mkdir(path);
    return true;
  } catch (err) {
    if (isErrno(err, 'EEXIST')) return false;
    throw await mkdirError(host, path, err);
  }
}

async function mkdirError(host: Host, path: string, err: unknown): Promise<unknown> {
  if (err instanceof HostUsageError) return err;
  const code = (err as { code?: unknown }).code;
  const status = await lastCmdStatus(host, path);
  const details = { path, code, lastCmdStatus: status };
  const why = status && status !== 'ok' ? ` (${status})` : '';
  if (isErrno(err, 'ENOSPC')) return new ResctrlError('Capacity', `no capacity for ${path}${why}`, details);
  if (isErrno(err, 'EBUSY')) return new ResctrlError('CapacityLimbo', `no free RMID for ${path} while freed ones are in limbo${why}`, details);
  if (isErrno(err, 'EPERM', 'EACCES')) {
    // A CTRL_MON group on a host without allocation is EPERM too: say so.
    const parent = dirname(path);
    if (basename(parent) !== 'mon_groups' && (await host.exists(join(parent, 'info')).catch(() => false))) {
      const caps = await resctrlCapabilities(host, parent).catch(() => undefined);
      if (caps && !caps.allocation) return new ResctrlError('Unsupported', `${parent} has no allocation support: control groups cannot be created`, details);
    }
    return new ResctrlError('NoPermission', `mkdir ${path} refused (${String(code)})${why}`, details);
  }
  if (isErrno(err, 'ENOENT')) return new ResctrlError('Unsupported', `${dirname(path)} does not exist (resctrl not mounted, or no monitoring support)`, details);
  if (isErrno(err, 'EINVAL', 'ENAMETOOLONG')) return new ResctrlError('InvalidInput', `the kernel refused the group name of ${path} (${String(code)})`, details);
  return ioError(err, 'mkdir', path, status);
}

/** rmdir the group; its tasks go back to the parent group. True when removed, false when it was already gone. */
export async function removeGroup(host: Host, path: string): Promise<boolean> {
  validateGroupPath(path);
  if ((await requireGroupShape(host, path, () => false)) === false) return false;
  try {
    await host.rmdir(path);
    return true;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    if (isErrno(err, 'EPERM', 'EACCES', 'EBUSY')) throw new ResctrlError('NoPermission', `rmdir ${path} refused (${String((err as { code?: unknown }).code)}): not a removable group`, { path, code: (err as { code?: unknown }).code });
    throw ioError(err, 'rmdir', path);
  }
}

// ---- tasks ----

/** The TIDs in the group's tasks file. */
export async function readTasks(host: Host, groupPath: string): Promise<number[]> {
  validateGroupPath(groupPath);
  let text: string;
  try {
    text = await host.readFile(join(groupPath, 'tasks'));
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ENOTDIR')) throw new ResctrlError('GroupGone', `${groupPath} no longer exists`, { path: groupPath });
    if (isErrno(err, 'EACCES', 'EPERM')) throw new ResctrlError('NoPermission', `cannot read ${groupPath}/tasks`, { path: groupPath });
    throw ioError(err, 'read tasks', groupPath);
  }
  return parseIdList(text, `${groupPath}/tasks`);
}

function validateTids(tids: readonly number[]): number[] {
  if (!Array.isArray(tids)) throw new ResctrlError('InvalidInput', 'tids must be an array');
  for (const tid of tids) {
    if (!Number.isInteger(tid) || tid < 1 || tid >= PID_MAX_LIMIT) throw new ResctrlError('InvalidInput', `not a TID: ${JSON.stringify(tid)}`, { value: String(tid) });
  }
  return [...new Set(tids)];
}

/**
 * Moves each TID into the group with its own write(2) to `<group>/tasks`
 * (kernels before 6.7 take one PID per write), skipping current members.
 * ESRCH: the thread exited (counted as gone). EINVAL/EPERM: refused for that
 * TID, with the kernel's last_cmd_status as the reason. ENOENT: the group was
 * deleted (GroupGone, thrown). Anything else aborts as Io/NoPermission.
 */
export async function assignTasks(host: Host, groupPath: string, tids: readonly number[]): Promise<AssignResult> {
  const wanted = validateTids(tids);
  validateGroupPath(groupPath);
  await requireGroupShape(host, groupPath, () => new ResctrlError('GroupGone', `${groupPath} no longer exists`, { path: groupPath }));
  const members = new Set(await readTasks(host, groupPath));
  const result: AssignResult = { assigned: 0, alreadyMember: 0, gone: 0, rejected: [] };
  const tasksFile = join(groupPath, 'tasks');
  for (const tid of wanted) {
    if (members.has(tid)) {
      result.alreadyMember++;
      continue;
    }
    try {
      await host.write(tasksFile, `${tid}\n`);
      result.assigned++;
    } catch (err) {
      if (isErrno(err, 'ESRCH')) result.gone++;
      else if (isErrno(err, 'EINVAL', 'EPERM')) {
        const status = await lastCmdStatus(host, groupPath);
        result.rejected.push({ tid, reason: status?.split('\n')[0] || String((err as { code?: unknown }).code) });
      } else if (isErrno(err, 'ENOENT')) throw new ResctrlError('GroupGone', `${groupPath} was deleted while assigning tasks`, { path: groupPath, ...result });
      else if (isErrno(err, 'EACCES')) throw new ResctrlError('NoPermission', `cannot write ${tasksFile}`, { path: groupPath });
      else throw ioError(err, 'write tasks', groupPath);
    }
  }
  return result;
}

// ---- cleanup ----

/**
 * Removes the root-level groups and the root's mon_groups/* whose names start
 * with `prefix`; other control groups' mon_groups are never listed. Names in
 * `keep` (the groups of pods still running on the node) stay.
 */
export async function cleanupPrefix(host: Host, root: string, prefix: string, keep: ReadonlySet<string> = new Set()): Promise<CleanupResult> {
  const base = validateRoot(root);
  validateGroupPrefix(prefix);
  const result: CleanupResult = { removed: 0, failures: 0, races: 0, nonPrefix: 0, kept: 0, removedPaths: [], failed: [] };
  const list = async (p: string): Promise<string[]> => {
    try {
      return await host.readdir(p);
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) return [];
      throw ioError(err, 'readdir', p);
    }
  };
  if (!(await host.exists(join(base, 'info')))) throw new ResctrlError('Unsupported', `${base} is not a mounted resctrl root`, { root: base });
  const monGroups = join(base, 'mon_groups');
  const candidates = [
    ...(await list(monGroups)).map((name) => ({ name, path: join(monGroups, name) })),
    ...(await list(base)).filter((name) => !ROOT_DIRS.has(name) && !GROUP_FILES.has(name)).map((name) => ({ name, path: join(base, name) })),
  ];
  for (const { name, path } of candidates) {
    if (!name.startsWith(prefix)) {
      result.nonPrefix++;
      continue;
    }
    if (keep.has(name)) {
      result.kept++;
      continue;
    }
    try {
      await host.rmdir(path);
      result.removed++;
      result.removedPaths.push(path);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) {
        result.races++;
        continue;
      }
      result.failures++;
      result.failed.push({ path, code: String((err as { code?: unknown }).code ?? (err as Error).message) });
    }
  }
  return result;
}

// ---- monitoring ----

/** Counters summed over every mon_L3_* domain of the group. */
export async function readMonData(host: Host, groupPath: string): Promise<MonData> {
  validateGroupPath(groupPath);
  const monData = join(groupPath, 'mon_data');
  let domains: string[];
  try {
    domains = (await host.readdir(monData)).filter((d) => /^mon_L3_[0-9]+$/.test(d));
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ENOTDIR')) {
      if (!(await host.exists(groupPath))) throw new ResctrlError('GroupGone', `${groupPath} no longer exists`, { path: groupPath });
      throw new ResctrlError('Unsupported', `${groupPath} has no mon_data: monitoring is not supported`, { path: groupPath });
    }
    throw ioError(err, 'readdir', monData);
  }
  const out: MonData = { domains };
  for (const [file, key] of COUNTERS) {
    let sum: number | undefined = 0;
    for (const domain of domains) {
      const value = await readCounter(host, join(join(monData, domain), file));
      if (value === undefined) {
        sum = undefined;
        break;
      }
      sum += value;
    }
    if (sum !== undefined && domains.length > 0) out[key] = sum;
  }
  return out;
}

/** A decimal byte count; undefined for Unavailable/Unassigned/Error or a counter this system lacks. */
async function readCounter(host: Host, path: string): Promise<number | undefined> {
  let text: string;
  try {
    text = await host.readFile(path);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    if (isErrno(err, 'EIO', 'EINVAL')) return undefined;
    throw ioError(err, 'read', path);
  }
  const s = text.trim();
  return /^[0-9]+$/.test(s) ? Number(s) : undefined;
}

/**
 * /proc/<pid>/task/<tid>/cpu_resctrl_groups: the thread's control group ('/'
 * for the root) and MON group ('' for none); undefined when the thread is gone.
 */
export async function taskResctrlGroups(host: Host, tid: number, pid = tid): Promise<{ control: string; monitor: string } | undefined> {
  const [validTid, validPid] = [validateTids([tid])[0]!, validateTids([pid])[0]!];
  const file = `/proc/${validPid}/task/${validTid}/cpu_resctrl_groups`;
  let text: string;
  try {
    text = await host.readFile(file);
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ESRCH')) return undefined;
    throw ioError(err, 'read', file);
  }
  const res = /^res:(.*)$/m.exec(text)?.[1];
  const mon = /^mon:(.*)$/m.exec(text)?.[1];
  if (res === undefined || mon === undefined) throw new ResctrlError('Io', `unexpected cpu_resctrl_groups content: ${JSON.stringify(text)}`, { tid });
  return { control: res, monitor: mon };
}

function parseIdList(text: string, what: string): number[] {
  const ids: number[] = [];
  for (const line of text.split('\n')) {
    const s = line.trim();
    if (s === '') continue;
    if (!/^[0-9]+$/.test(s)) throw new ResctrlError('Io', `unexpected line in ${what}: ${JSON.stringify(line)}`, { path: what });
    ids.push(Number(s));
  }
  return ids;
}

/** Io for a kernel answer; a HostUsageError (a link leaving the host root) is passed on as it is. */
function ioError(err: unknown, op: string, path: string, lastCmd?: string): Error {
  if (err instanceof HostUsageError) return err;
  const code = (err as { code?: unknown }).code;
  return new ResctrlError('Io', `${op} ${path}: ${(err as Error).message ?? String(err)}`, { path, code, ...(lastCmd ? { lastCmdStatus: lastCmd } : {}) });
}

// The resctrl filesystem as the kernel implements it
// (shared/reference/node-host-interfaces.md §2, fs/resctrl/rdtgroup.c):
// - groups: the root (default CTRL_MON, CLOSID 0, RMID 0), CTRL_MON groups
//   only at the root and only with allocation, MON groups only directly in a
//   `mon_groups` directory; mkdir elsewhere is EPERM, a name with '\n' EINVAL;
// - IDs: ENOSPC "Out of CLOSIDs", ENOSPC "Out of RMIDs", and EBUSY instead
//   while freed RMIDs sit in limbo (until drainLimbo());
// - a task → group map from which every `tasks` file is rendered: a CTRL_MON
//   group lists every task with its CLOSID (its MON groups' too), a MON group
//   the tasks with its RMID; writes move one task per token (comma lists as on
//   ≥ 6.7 kernels), ESRCH/EINVAL/ENOENT as rdtgroup_tasks_write; new threads
//   inherit their creator's group, exited ones vanish;
// - rmdir of a group with tasks moves them to the parent (MON) or the root
//   (CTRL_MON, whose MON groups go too) and frees the IDs;
// - schemata: partial writes merge, CBMs contiguous within cbm_mask, MB
//   within [min_bandwidth, 100] rounded up to bandwidth_gran;
// - mon_data counters are scripted per group and domain; a CTRL_MON group
//   reads the sum over itself and its MON groups;
// - info/last_cmd_status: "ok" or the last command's failure text.
// Files and directories are rendered from this model on every lookup.
import { kernelError } from './errors.js';
import { kstrtoint, type ProcessTable } from './procs.js';
import { attr, dir, type SimDir, type SimFile, type SimNode } from './vfs.js';

export const RESCTRL_MOUNT = '/sys/fs/resctrl';

export interface ResctrlOptions {
  /** Mounted at /sys/fs/resctrl (default true); false leaves the empty mount point. */
  mounted?: boolean;
  /** CAT (and MBA): CTRL_MON groups, schemata (default true). */
  allocation?: boolean;
  /** CMT/MBM: mon_groups, mon_data (default true). */
  monitoring?: boolean;
  /** info/L3/num_closids (default 16; CLOSID 0 is the root's). */
  numClosids?: number;
  /** info/L3_MON/num_rmids (default 192; RMID 0 is the root's). */
  numRmids?: number;
  /** RMIDs already in limbo at mount (freed by an earlier user, still dirty), default 0. */
  limbo?: number;
  /** A freed RMID waits in limbo until drainLimbo() (default true, as with llc_occupancy monitoring). */
  freedRmidsEnterLimbo?: boolean;
  /** L3 cache domains (mon_L3_00, …; schemata 0=…;1=…), default 1. */
  l3Domains?: number;
  /** Memory bandwidth allocation (info/MB, MB: schemata line); default = allocation. */
  mba?: boolean;
  /** CPUs on the host (root cpus/cpus_list), default 4. */
  cpus?: number;
}

export type MonCounter = 'llc_occupancy' | 'mbm_total_bytes' | 'mbm_local_bytes';
export const MON_COUNTERS: readonly MonCounter[] = ['llc_occupancy', 'mbm_total_bytes', 'mbm_local_bytes'];
export type MonReading = number | 'Unavailable' | 'Unassigned';
export type MonValues = Partial<Record<MonCounter, MonReading>> | 'Unavailable';

export type ResctrlGroupKind = 'CTRL_MON' | 'MON';

export interface ResctrlGroupSnapshot {
  path: string;
  kind: ResctrlGroupKind;
  closid: number;
  rmid: number | null;
  tasks: number[];
}

export interface ResctrlSnapshot {
  mounted: boolean;
  allocation: boolean;
  monitoring: boolean;
  numClosids: number;
  numRmids: number;
  lastCmdStatus: string;
  groups: ResctrlGroupSnapshot[];
  freeClosids: number[];
  freeRmids: number[];
  limboRmids: number[];
}

interface Group {
  readonly name: string;
  readonly kind: ResctrlGroupKind;
  readonly closid: number;
  readonly rmid: number | undefined;
  /** A MON group's CTRL_MON group. */
  readonly parent: Group | undefined;
  /** A CTRL_MON group's MON groups. */
  readonly monGroups: Map<string, Group>;
  alive: boolean;
  /** CTRL_MON only: CBM per L3 domain, MB percent per domain. */
  readonly l3: number[];
  readonly mb: number[];
  /** Scripted counters per domain (own RMID only). */
  readonly monData: Map<number, Record<MonCounter, MonReading>>;
}

const CBM_BITS = 20;
const CBM_MASK = (1 << CBM_BITS) - 1;
const MIN_CBM_BITS = 1;
const MIN_BANDWIDTH = 10;
const BANDWIDTH_GRAN = 10;
const L3_BYTES = 31_457_280;
const NAME_MAX = 255;
const RESERVED_ROOT_NAMES = new Set(['info', 'mon_groups', 'mon_data']);

export class ResctrlModel {
  readonly allocation: boolean;
  readonly monitoring: boolean;
  readonly mba: boolean;
  readonly numClosids: number;
  readonly numRmids: number;
  private readonly domains: number[];
  private readonly cpus: number;
  private readonly freedRmidsEnterLimbo: boolean;
  private mounted = false;
  private root!: Group;
  /** Root-level CTRL_MON groups by name. */
  private readonly ctrlGroups = new Map<string, Group>();
  /** tid → innermost group (a MON group, or a CTRL_MON group's own RMID); absent = root. */
  private readonly taskGroup = new Map<number, Group>();
  private freeClosids = new Set<number>();
  private freeRmids: number[] = [];
  private limbo: number[] = [];
  private lastCmd = '';

  constructor(
    private readonly procs: ProcessTable,
    opts: ResctrlOptions = {},
  ) {
    this.allocation = opts.allocation ?? true;
    this.monitoring = opts.monitoring ?? true;
    if (!this.allocation && !this.monitoring) throw new Error('resctrl needs allocation or monitoring support');
    this.mba = this.allocation && (opts.mba ?? true);
    this.numClosids = positiveInt('numClosids', opts.numClosids ?? 16);
    this.numRmids = positiveInt('numRmids', opts.numRmids ?? 192);
    this.domains = Array.from({ length: positiveInt('l3Domains', opts.l3Domains ?? 1) }, (_, i) => i);
    this.cpus = positiveInt('cpus', opts.cpus ?? 4);
    this.freedRmidsEnterLimbo = opts.freedRmidsEnterLimbo ?? true;
    procs.listen({
      created: (tid, fromTid) => {
        const inherited = fromTid === undefined ? undefined : this.taskGroup.get(fromTid);
        if (inherited) this.taskGroup.set(tid, inherited);
      },
      exited: (tid) => {
        this.taskGroup.delete(tid);
      },
    });
    if (opts.mounted ?? true) this.mount(opts.limbo ?? 0);
  }

  get isMounted(): boolean {
    return this.mounted;
  }

  /** mount -t resctrl: only the root group; `limbo` RMIDs start dirty. */
  mount(limbo = 0): void {
    if (this.mounted) throw new Error('resctrl is already mounted');
    if (!Number.isInteger(limbo) || limbo < 0 || limbo > this.numRmids - 1) throw new Error(`limbo must be 0..${this.numRmids - 1}`);
    this.root = this.newGroup('', 'CTRL_MON', 0, this.monitoring ? 0 : undefined, undefined);
    this.freeClosids = new Set(Array.from({ length: this.numClosids - 1 }, (_, i) => i + 1));
    const rmids = this.monitoring ? Array.from({ length: this.numRmids - 1 }, (_, i) => i + 1) : [];
    this.limbo = rmids.splice(rmids.length - limbo, limbo);
    this.freeRmids = rmids;
    this.lastCmd = '';
    this.mounted = true;
  }

  /** umount: every group goes, every task is back in the default group. */
  unmount(): void {
    if (!this.mounted) throw new Error('resctrl is not mounted');
    for (const g of [...this.ctrlGroups.values()]) this.removeCtrlGroup(g);
    for (const m of [...this.root.monGroups.values()]) this.removeMonGroup(m);
    this.taskGroup.clear();
    this.mounted = false;
  }

  /** Freed RMIDs become reusable (the limbo worker found their occupancy below the threshold). */
  drainLimbo(count = this.limbo.length): number[] {
    const drained = this.limbo.splice(0, count);
    this.freeRmids.push(...drained);
    return drained;
  }

  /** Script a group's own counters in one L3 domain; `rel` is the group path under the mount ('' for the root). */
  setMonData(rel: string, values: MonValues, domain = 0): void {
    if (!this.monitoring) throw new Error('resctrl monitoring is not supported on this host');
    if (!this.domains.includes(domain)) throw new Error(`no L3 domain ${domain}`);
    const group = this.groupAt(rel);
    if (!group) throw new Error(`no resctrl group ${JSON.stringify(rel)}`);
    const current = group.monData.get(domain) ?? { llc_occupancy: 0, mbm_total_bytes: 0, mbm_local_bytes: 0 };
    const update = values === 'Unavailable' ? { llc_occupancy: 'Unavailable', mbm_total_bytes: 'Unavailable', mbm_local_bytes: 'Unavailable' } : values;
    for (const [counter, value] of Object.entries(update) as Array<[MonCounter, MonReading]>) {
      if (!MON_COUNTERS.includes(counter)) throw new Error(`unknown counter ${counter}`);
      if (typeof value === 'number' && (!Number.isSafeInteger(value) || value < 0)) throw new Error(`counter values are non-negative integers, got ${value}`);
      current[counter] = value;
    }
    group.monData.set(domain, current);
  }

  /**
   * containerd/CRI-O started with an rdt_config_file: control groups not in
   * `keepNames` are deleted, and so is every MON group without tasks.
   * Returns the removed groups' paths under the mount.
   */
  runtimeDeletesUnknownGroups(keepNames: readonly string[]): string[] {
    if (!this.mounted) return [];
    const keep = new Set(keepNames);
    const removed: string[] = [];
    for (const g of [...this.ctrlGroups.values()]) {
      if (keep.has(g.name)) continue;
      this.removeCtrlGroup(g);
      removed.push(g.name);
    }
    for (const ctrl of [this.root, ...this.ctrlGroups.values()]) {
      for (const m of [...ctrl.monGroups.values()]) {
        if (this.tasksOf(m).length > 0) continue;
        this.removeMonGroup(m);
        removed.push(this.relPath(m));
      }
    }
    return removed;
  }

  /** /sys/fs/resctrl while mounted; the empty mount point otherwise. */
  mountPointDir(): SimDir {
    // Unmounted, it is a plain sysfs directory (mkdir is EPERM there).
    if (!this.mounted) return dir(() => ({}));
    return this.groupDir(this.root);
  }

  /** /proc/<pid>/cpu_resctrl_groups (proc_resctrl_show). */
  procGroupsText(tid: number): string {
    if (!this.mounted) return 'res:\nmon:\n';
    const g = this.taskGroup.get(tid) ?? this.root;
    const ctrl = g.kind === 'MON' ? g.parent! : g;
    return `res:${ctrl === this.root ? '/' : ctrl.name}\nmon:${g.kind === 'MON' ? g.name : ''}\n`;
  }

  snapshot(): ResctrlSnapshot {
    const groups: ResctrlGroupSnapshot[] = [];
    if (this.mounted) {
      for (const ctrl of [this.root, ...this.ctrlGroups.values()]) {
        groups.push(this.groupSnapshot(ctrl));
        for (const m of ctrl.monGroups.values()) groups.push(this.groupSnapshot(m));
      }
    }
    return {
      mounted: this.mounted,
      allocation: this.allocation,
      monitoring: this.monitoring,
      numClosids: this.numClosids,
      numRmids: this.numRmids,
      lastCmdStatus: this.lastCmdStatus(),
      groups,
      freeClosids: this.mounted ? [...this.freeClosids].sort((a, b) => a - b) : [],
      freeRmids: this.mounted ? [...this.freeRmids] : [],
      limboRmids: this.mounted ? [...this.limbo] : [],
    };
  }

  // ---- groups ----

  private newGroup(name: string, kind: ResctrlGroupKind, closid: number, rmid: number | undefined, parent: Group | undefined): Group {
    return {
      name,
      kind,
      closid,
      rmid,
      parent,
      monGroups: new Map(),
      alive: true,
      // rdtgroup_init_alloc: every usable bit, MB at 100%.
      l3: this.domains.map(() => CBM_MASK),
      mb: this.domains.map(() => 100),
      monData: new Map(),
    };
  }

  /** rdtgroup_mkdir_ctrl_mon: CLOSID first, then an RMID. */
  private mkdirCtrlMon(name: string): void {
    this.lastCmd = '';
    const closid = Math.min(...this.freeClosids);
    if (!Number.isFinite(closid)) {
      this.lastCmd = 'Out of CLOSIDs\n';
      throw kernelError('ENOSPC', 'Out of CLOSIDs');
    }
    const rmid = this.monitoring ? this.allocRmid() : undefined;
    this.freeClosids.delete(closid);
    this.ctrlGroups.set(name, this.newGroup(name, 'CTRL_MON', closid, rmid, undefined));
  }

  /** rdtgroup_mkdir_mon in `ctrl`'s mon_groups. */
  private mkdirMon(ctrl: Group, name: string): void {
    if (!ctrl.alive) throw kernelError('ENODEV');
    this.lastCmd = '';
    const rmid = this.allocRmid();
    ctrl.monGroups.set(name, this.newGroup(name, 'MON', ctrl.closid, rmid, ctrl));
  }

  /** resctrl_find_free_rmid: EBUSY while RMIDs are in limbo, ENOSPC when none are left. */
  private allocRmid(): number {
    const rmid = this.freeRmids.shift();
    if (rmid !== undefined) return rmid;
    this.lastCmd = 'Out of RMIDs\n';
    if (this.limbo.length > 0) throw kernelError('EBUSY', `Out of RMIDs (${this.limbo.length} in limbo)`);
    throw kernelError('ENOSPC', 'Out of RMIDs');
  }

  private freeRmid(rmid: number | undefined): void {
    if (rmid === undefined) return;
    if (this.freedRmidsEnterLimbo) this.limbo.push(rmid);
    else this.freeRmids.push(rmid);
  }

  /** rdtgroup_rmdir_ctrl: its tasks (MON groups' too) go to the root; CLOSID and every RMID are freed. */
  private removeCtrlGroup(g: Group): void {
    for (const [tid, tg] of [...this.taskGroup]) if (tg === g || tg.parent === g) this.taskGroup.delete(tid);
    for (const m of g.monGroups.values()) {
      m.alive = false;
      this.freeRmid(m.rmid);
    }
    g.monGroups.clear();
    g.alive = false;
    this.freeRmid(g.rmid);
    this.freeClosids.add(g.closid);
    this.ctrlGroups.delete(g.name);
  }

  /** rdtgroup_rmdir_mon: its tasks go to the parent CTRL_MON group; the RMID is freed. */
  private removeMonGroup(m: Group): void {
    const parent = m.parent!;
    for (const [tid, tg] of [...this.taskGroup]) {
      if (tg !== m) continue;
      if (parent === this.root) this.taskGroup.delete(tid);
      else this.taskGroup.set(tid, parent);
    }
    m.alive = false;
    this.freeRmid(m.rmid);
    parent.monGroups.delete(m.name);
  }

  private groupAt(rel: string): Group | undefined {
    if (!this.mounted) return undefined;
    const parts = rel === '' ? [] : rel.split('/');
    if (parts.length === 0) return this.root;
    let ctrl = this.root;
    if (parts[0] !== 'mon_groups') {
      const found = this.ctrlGroups.get(parts.shift()!);
      if (!found) return undefined;
      ctrl = found;
      if (parts.length === 0) return ctrl;
    }
    if (parts.length !== 2 || parts[0] !== 'mon_groups') return undefined;
    return ctrl.monGroups.get(parts[1]!);
  }

  private relPath(g: Group): string {
    if (g === this.root) return '';
    if (g.kind === 'CTRL_MON') return g.name;
    const parent = g.parent === this.root ? '' : `${g.parent!.name}/`;
    return `${parent}mon_groups/${g.name}`;
  }

  private groupSnapshot(g: Group): ResctrlGroupSnapshot {
    const rel = this.relPath(g);
    return { path: rel === '' ? RESCTRL_MOUNT : `${RESCTRL_MOUNT}/${rel}`, kind: g.kind, closid: g.closid, rmid: g.rmid ?? null, tasks: this.tasksOf(g) };
  }

  // ---- tasks ----

  /** show_rdt_tasks: a CTRL_MON group matches on CLOSID (so it lists its MON groups' tasks), a MON group on RMID. */
  private tasksOf(g: Group): number[] {
    return this.procs.allTids().filter((tid) => {
      const tg = this.taskGroup.get(tid) ?? this.root;
      return g.kind === 'MON' ? tg === g : (tg.kind === 'MON' ? tg.parent : tg) === g;
    });
  }

  /** rdtgroup_tasks_write: strim, then one kstrtoint token per ',' until the first failure. */
  private writeTasks(g: Group, buf: string): void {
    if (!g.alive) throw kernelError('ENOENT');
    this.lastCmd = '';
    let rest: string | undefined = buf.trim();
    while (rest !== undefined && rest !== '' && !rest.startsWith('\n')) {
      const comma: number = rest.indexOf(',');
      const token = (comma < 0 ? rest : rest.slice(0, comma)).trim();
      rest = comma < 0 ? undefined : rest.slice(comma + 1);
      let pid: number;
      try {
        pid = kstrtoint(token);
      } catch {
        this.lastCmd = `Task list parsing error pid ${token}\n`;
        throw kernelError('EINVAL', `Task list parsing error pid ${token}`);
      }
      if (pid < 0) {
        this.lastCmd = `Invalid pid ${pid}\n`;
        throw kernelError('EINVAL', `Invalid pid ${pid}`);
      }
      try {
        this.moveTask(pid === 0 ? this.procs.currentTid() : pid, g);
      } catch (err) {
        this.lastCmd += `Error while processing task ${pid}\n`;
        throw err;
      }
    }
  }

  /** rdtgroup_move_task / __rdtgroup_move_task. */
  private moveTask(tid: number, g: Group): void {
    if (!this.procs.hasThread(tid)) {
      this.lastCmd = `No task ${tid}\n`;
      throw kernelError('ESRCH', `No task ${tid}`);
    }
    const current = this.taskGroup.get(tid) ?? this.root;
    if (current === g) return;
    if (g.kind === 'MON') {
      const currentCtrl = current.kind === 'MON' ? current.parent : current;
      if (currentCtrl !== g.parent) {
        this.lastCmd = "Can't move task to different control group\n";
        throw kernelError('EINVAL', "Can't move task to different control group");
      }
    }
    if (g === this.root) this.taskGroup.delete(tid);
    else this.taskGroup.set(tid, g);
  }

  // ---- schemata ----

  private schemataText(g: Group): string {
    const lines: Array<[string, string]> = [];
    const width = Math.ceil(CBM_BITS / 4);
    lines.push(['L3', this.domains.map((d) => `${d}=${g.l3[d]!.toString(16).padStart(width, '0')}`).join(';')]);
    if (this.mba) lines.push(['MB', this.domains.map((d) => `${d}=${String(g.mb[d]).padStart(3, ' ')}`).join(';')]);
    const nameWidth = Math.max(...lines.map(([n]) => n.length));
    return lines.map(([n, v]) => `${n.padStart(nameWidth)}:${v}\n`).join('');
  }

  /** rdtgroup_schemata_write: needs a trailing newline; every line is validated before any is applied. */
  private writeSchemata(g: Group, buf: string): void {
    if (!buf.endsWith('\n')) throw kernelError('EINVAL', 'schemata input needs a trailing newline');
    if (!g.alive) throw kernelError('ENOENT');
    this.lastCmd = '';
    const staged = { L3: new Map<number, number>(), MB: new Map<number, number>() };
    const fail = (text: string): never => {
      this.lastCmd = `${text}\n`;
      throw kernelError('EINVAL', text);
    };
    for (const line of buf.slice(0, -1).split('\n')) {
      const colon = line.indexOf(':');
      if (colon < 0) fail("Missing ':'");
      const resource = line.slice(0, colon).trim();
      const values = line.slice(colon + 1);
      if (values === '') fail(`Missing '${resource}' value`);
      if (resource !== 'L3' && !(resource === 'MB' && this.mba)) fail(`Unknown or unsupported resource name '${resource}'`);
      const target = resource === 'L3' ? staged.L3 : staged.MB;
      for (const item of values.split(';')) {
        if (item === '') continue;
        const eq = item.indexOf('=');
        const id = eq < 0 ? '' : item.slice(0, eq);
        if (eq < 0 || !/^\+?[0-9]+\n?$/.test(id)) fail("Missing '=' or non-numeric domain");
        const domain = Number(id);
        if (!this.domains.includes(domain)) throw kernelError('EINVAL', `unknown domain ${domain}`);
        if (target.has(domain)) fail(`Duplicate domain ${domain}`);
        const value = item.slice(eq + 1).trim();
        target.set(domain, resource === 'L3' ? parseCbm(value, fail) : parseBandwidth(value, fail));
      }
    }
    for (const [d, cbm] of staged.L3) g.l3[d] = cbm;
    for (const [d, mb] of staged.MB) g.mb[d] = mb;
  }

  // ---- rendering ----

  private lastCmdStatus(): string {
    return this.lastCmd === '' ? 'ok\n' : this.lastCmd;
  }

  private groupDir(g: Group): SimDir {
    const isRoot = g === this.root;
    const ctrl = g.kind === 'CTRL_MON';
    return resctrlDir(
      () => ({
        info: isRoot ? this.infoDir() : undefined,
        tasks: attr(
          () => this.tasksOf(g).map((t) => `${t}\n`).join(''),
          (buf) => this.writeTasks(g, buf),
        ),
        cpus: attr(() => `${cpuMask(isRoot ? this.cpus : 0, this.cpus)}\n`),
        cpus_list: attr(() => `${isRoot ? cpuList(this.cpus) : ''}\n`),
        schemata: ctrl && this.allocation ? attr(() => this.schemataText(g), (buf) => this.writeSchemata(g, buf)) : undefined,
        size: ctrl && this.allocation ? attr(() => this.sizeText(g)) : undefined,
        mode: ctrl && this.allocation ? attr(() => 'shareable\n') : undefined,
        mon_groups: ctrl && this.monitoring ? this.monGroupsDir(g) : undefined,
        mon_data: this.monitoring ? this.monDataDir(g) : undefined,
        ...(isRoot ? Object.fromEntries([...this.ctrlGroups].map(([name, c]) => [name, this.groupDir(c)])) : {}),
      }),
      isRoot ? (name) => this.mkdirAtRoot(name) : undefined,
      isRoot ? (name) => this.rmdirAtRoot(name) : undefined,
    );
  }

  /** rdtgroup_mkdir at the root: a CTRL_MON group when allocation is supported, else EPERM. */
  private mkdirAtRoot(name: string): void {
    if (!this.allocation) throw kernelError('EPERM', 'no allocation support: only mon_groups/<name> can be created');
    this.mkdirCtrlMon(name);
  }

  /** rdtgroup_rmdir at the root: CTRL_MON groups only; info, mon_groups, mon_data are EPERM. */
  private rmdirAtRoot(name: string): void {
    const g = this.ctrlGroups.get(name);
    if (!g || RESERVED_ROOT_NAMES.has(name)) throw kernelError('EPERM');
    this.removeCtrlGroup(g);
  }

  private monGroupsDir(ctrl: Group): SimDir {
    return resctrlDir(
      () => Object.fromEntries([...ctrl.monGroups].map(([name, m]) => [name, this.groupDir(m)])),
      (name) => {
        if (name === 'mon_groups') throw kernelError('EPERM');
        this.mkdirMon(ctrl, name);
      },
      (name) => {
        const m = ctrl.monGroups.get(name);
        if (!m) throw kernelError('EPERM');
        this.removeMonGroup(m);
      },
    );
  }

  private monDataDir(g: Group): SimDir {
    return resctrlDir(() =>
      Object.fromEntries(
        this.domains.map((d) => [
          `mon_L3_${String(d).padStart(2, '0')}`,
          resctrlDir(() => Object.fromEntries(MON_COUNTERS.map((c) => [c, attr(() => `${this.counter(g, d, c)}\n`)]))),
        ]),
      ),
    );
  }

  /** A MON group's own RMID; a CTRL_MON group's sum over its RMID and its MON groups' (any non-number wins). */
  private counter(g: Group, domain: number, counter: MonCounter): MonReading {
    if (!g.alive) throw kernelError('ENOENT');
    const members = g.kind === 'CTRL_MON' ? [g, ...g.monGroups.values()] : [g];
    let sum = 0;
    for (const m of members) {
      const v = m.monData.get(domain)?.[counter] ?? 0;
      if (typeof v !== 'number') return v;
      sum += v;
    }
    return sum;
  }

  private sizeText(g: Group): string {
    const bytesPerBit = L3_BYTES / CBM_BITS;
    const lines = [`L3:${this.domains.map((d) => `${d}=${popcount(g.l3[d]!) * bytesPerBit}`).join(';')}`];
    if (this.mba) lines.push(`MB:${this.domains.map((d) => `${d}=${g.mb[d]}`).join(';')}`);
    return lines.map((l) => `${l}\n`).join('');
  }

  private infoDir(): SimDir {
    const value = (v: string | number): SimFile => attr(() => `${v}\n`);
    return resctrlDir(() => ({
      last_cmd_status: attr(() => this.lastCmdStatus()),
      L3: this.allocation
        ? resctrlDir(() => ({
            num_closids: value(this.numClosids),
            cbm_mask: value(CBM_MASK.toString(16)),
            min_cbm_bits: value(MIN_CBM_BITS),
            shareable_bits: value(0),
            sparse_masks: value(0),
          }))
        : undefined,
      MB: this.mba
        ? resctrlDir(() => ({
            num_closids: value(this.numClosids),
            min_bandwidth: value(MIN_BANDWIDTH),
            bandwidth_gran: value(BANDWIDTH_GRAN),
            delay_linear: value(1),
            thread_throttle_mode: value('max'),
          }))
        : undefined,
      L3_MON: this.monitoring
        ? resctrlDir(() => ({
            num_rmids: value(this.numRmids),
            mon_features: attr(() => MON_COUNTERS.map((c) => `${c}\n`).join('')),
            max_threshold_occupancy: value(Math.floor(L3_BYTES / this.numRmids)),
          }))
        : undefined,
    }));
  }
}

/**
 * A resctrl directory. mkdir anywhere in resctrl first rejects a name with a
 * newline (EINVAL), then dispatches; where no group can be made it is EPERM.
 * rmdir of anything that is not a group is EPERM.
 */
function resctrlDir(render: () => Record<string, SimNode | undefined>, mkdir?: (name: string) => void, rmdir?: (name: string) => void): SimDir {
  const node = dir(render);
  return {
    kind: 'dir',
    entries: () => node.entries(),
    mkdir: (name) => {
      if (name.length > NAME_MAX) throw kernelError('ENAMETOOLONG');
      if (name.includes('\n')) throw kernelError('EINVAL', 'group name contains a newline');
      if (!mkdir) throw kernelError('EPERM', 'groups can be created only at the root or in a mon_groups directory');
      mkdir(name);
    },
    rmdir: (name) => {
      if (!rmdir) throw kernelError('EPERM', 'not a resctrl group');
      rmdir(name);
    },
  };
}

/** cbm_validate: hex, non-zero, within cbm_mask, contiguous (no sparse_masks), at least min_cbm_bits. */
function parseCbm(value: string, fail: (text: string) => never): number {
  if (!/^(0[xX])?[0-9a-fA-F]+$/.test(value)) fail(`Non-hex character in the mask ${value}`);
  const cbm = parseInt(value.replace(/^0[xX]/, ''), 16);
  if (cbm === 0 || cbm > CBM_MASK) fail('Mask out of range');
  const bits = cbm.toString(2);
  if (/10+1/.test(bits)) fail(`The mask ${cbm.toString(16)} has non-consecutive 1-bits`);
  if (popcount(cbm) < MIN_CBM_BITS) fail(`Need at least ${MIN_CBM_BITS} bits in the mask`);
  return cbm;
}

/** bw_validate: decimal within [min_bandwidth, 100], rounded up to bandwidth_gran. */
function parseBandwidth(value: string, fail: (text: string) => never): number {
  if (!/^\+?[0-9]+$/.test(value)) fail(`Invalid format for MB: ${value}`);
  const bw = Number(value);
  if (bw < MIN_BANDWIDTH || bw > 100) fail(`MB value ${bw} out of range [${MIN_BANDWIDTH},100]`);
  return Math.ceil(bw / BANDWIDTH_GRAN) * BANDWIDTH_GRAN;
}

function popcount(n: number): number {
  let count = 0;
  for (let v = n; v > 0; v >>>= 1) count += v & 1;
  return count;
}

/** %*pb of the first `set` CPUs out of `total`: hex words of 32 bits, comma separated. */
function cpuMask(set: number, total: number): string {
  const words: string[] = [];
  for (let base = 0; base < total; base += 32) {
    let word = 0n;
    for (let cpu = base; cpu < Math.min(base + 32, total); cpu++) if (cpu < set) word |= 1n << BigInt(cpu - base);
    words.unshift(word.toString(16));
  }
  const [first, ...rest] = words;
  const width = (n: number) => Math.ceil(n / 4);
  const firstBits = total % 32 === 0 ? 32 : total % 32;
  return [first!.padStart(width(firstBits), '0'), ...rest.map((w) => w.padStart(8, '0'))].join(',');
}

/** %*pbl of the first `count` CPUs: "0" or "0-3". */
function cpuList(count: number): string {
  return count === 1 ? '0' : `0-${count - 1}`;
}

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, got ${v}`);
  return v;
}

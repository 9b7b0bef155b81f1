// An in-memory host that behaves like a Linux EC2 node for everything the node
// agent touches. It models kernel objects (PciBus, NetStack, VfioModel,
// ResctrlModel, CgroupModel, ProcessTable) and renders /sys and /proc from them on every lookup; writes go
// to the same store handlers the kernel would run. Paths resolve like the
// VFS: symlinks followed (relative to the link's directory, 40 hops at most),
// ENOENT/ENOTDIR/EISDIR/EACCES/EPERM where the kernel gives them.
//
// Extension: addEntries(dir, provider) places more nodes into a directory
// (e.g. resctrl at /sys/fs, pids under /proc); each model stays its own module.
// A store handler may return a promise: the write then blocks until it
// settles, as an unbind does while vfio waits for userspace to let go.
import { isIPv6 } from 'node:net';
import { errnoError, validateHostPath, validateWriteData, type ErrnoError, type Host } from '../host.js';
import { enaDriver, ENA_DEVICE_IDS, PCI_CLASS_ETHERNET, PCI_VENDOR_AMAZON, pciStubDriver, slotInterfaceName } from './drivers.js';
import { CGROUP_MOUNT, CgroupModel, type CgroupDriver, type CgroupSnapshot, type ContainerSpec } from './cgroup.js';
import type { QosClass } from '../cgroup.js';
import { KernelError } from './errors.js';
import { ARPHRD_LOOPBACK, IFF, NetStack, type NetDevice, type RouteSpec } from './net.js';
import { PciBus, pciAddress, type PciDevice, type PciDriver } from './pci.js';
import { procPidEntries, ProcessTable } from './procs.js';
import { RESCTRL_MOUNT, ResctrlModel, type MonValues, type ResctrlOptions, type ResctrlSnapshot } from './resctrl.js';
import { VfioModel, type VfioSnapshot } from './vfio.js';
import { attr, dir, TmpfsDir, type SimDir, type SimFile, type SimNode } from './vfs.js';

export interface PrimaryInterfaceOptions {
  macAddress: string;
  /** PCI slot of the primary ENI (5 on Nitro instances: 0000:00:05.0, ens5). */
  slot?: number;
  mtu?: number;
  /** Default route gateway; the primary interface carries the default route. */
  gateway?: string;
}

export interface SimHostOptions {
  primary?: PrimaryInterfaceOptions;
  /** Regular files to seed, e.g. { '/etc/pcidp/config.json': '{}' }; parents are created. */
  files?: Record<string, string>;
  /** max_mtu the ENA devices report (9216 by default). */
  enaMaxMtu?: number;
  /** The platform has an IOMMU (metal instances booted with intel_iommu=on): every device sits in an iommu group. */
  iommu?: boolean;
  /** vfio and vfio-pci are loaded at boot, optionally with enable_unsafe_noiommu_mode=1. */
  vfio?: boolean | { noiommuMode?: boolean };
  /** The kernel has CONFIG_VFIO_NOIOMMU (default true). */
  noiommuSupported?: boolean;
  /** A device that ena probes again keeps the kernel's ethN name (udev does not rename it back), e.g. ens6 → eth0. */
  renameOnRebind?: boolean;
  /** The CPU has RDT: resctrl exists (mounted at /sys/fs/resctrl unless `mounted: false`). Absent: no RDT at all. */
  resctrl?: ResctrlOptions;
  /** The kubelet's cgroup driver, which decides the kubepods naming (default systemd). */
  cgroupDriver?: CgroupDriver;
  /** cgroup.procs/cgroup.threads list every entry twice (what a reader racing migrations can see). */
  cgroupListDuplicates?: boolean;
}

export interface SpawnOptions {
  pid?: number;
  /** Threads including the main one (default 1). */
  threads?: number;
  /** Host path of the cgroup (under /sys/fs/cgroup); default the parent's. */
  cgroup?: string;
  comm?: string;
  /** A TID that forks the new process (it inherits that thread's cgroup and resctrl group). */
  parent?: number;
}

export interface SimProcessSnapshot {
  pid: number;
  tids: number[];
  cgroup: string;
  comm: string;
}

export interface HotplugResult {
  pciAddress: string;
  /** Absent when no driver claimed the device (ena unloaded, or an override). */
  interfaceName?: string;
}

export interface SimSnapshot {
  pciDevices: Array<{ address: string; vendor: string; device: string; macAddress: string | null; driver: string | null; driverOverride: string | null; interfaceName: string | null }>;
  drivers: Array<{ name: string; devices: string[] }>;
  interfaces: Array<{ name: string; ifindex: number; macAddress: string; mtu: number; up: boolean; pciAddress: string | null }>;
  routes: RouteSpec[];
  /** vfio state: IOMMU groups with their /dev/vfio node, the no-IOMMU parameter, devices held open. */
  vfio: VfioSnapshot;
  ipv6Addresses: Array<{ interfaceName: string; address: string; prefixLength: number }>;
  /** null when the CPU has no RDT. */
  resctrl: ResctrlSnapshot | null;
  cgroups: CgroupSnapshot[];
  processes: SimProcessSnapshot[];
}

type Provider = () => Record<string, SimNode | undefined>;

const MAX_SYMLINK_HOPS = 40;
/** First slot handed to hot-plugged ENIs; the primary sits at 5. */
const FIRST_SECONDARY_SLOT = 6;
const LAST_SLOT = 0x1f;

export class SimHost implements Host {
  readonly root = '/';
  readonly pci = new PciBus();
  readonly net = new NetStack();
  readonly vfio: VfioModel;
  readonly procs = new ProcessTable();
  readonly cgroups: CgroupModel;
  readonly resctrl: ResctrlModel | undefined;
  private readonly tmpfs = new TmpfsDir();
  private readonly contributions = new Map<string, Provider[]>();
  private readonly injectedWriteFailures = new Map<string, string[]>();
  /** Explicit IPv6 addresses (`ip -6 addr add`), by ifindex so they vanish with their netdev. */
  private readonly ipv6 = new Map<number, Array<{ address: string; prefixLength: number }>>();
  /** Devices ena has named before: a later probe is a rebind. */
  private readonly enaNamed = new Set<string>();
  private renameOnRebind: boolean;
  /** What comes back at every boot: vfio's module options and the primary ENI's configuration. */
  private readonly boot: { vfio: SimHostOptions['vfio']; primary: PrimaryInterfaceOptions | undefined };

  constructor(opts: SimHostOptions = {}) {
    this.renameOnRebind = opts.renameOnRebind ?? false;
    this.boot = { vfio: opts.vfio, primary: opts.primary };
    this.vfio = new VfioModel(this.pci, { iommu: opts.iommu ?? false, noiommuSupported: opts.noiommuSupported ?? true });
    this.cgroups = new CgroupModel(this.procs, { driver: opts.cgroupDriver ?? 'systemd', listDuplicates: opts.cgroupListDuplicates ?? false });
    this.resctrl = opts.resctrl ? new ResctrlModel(this.procs, opts.resctrl) : undefined;
    this.procs.spawn({ pid: 1, cgroup: '/init.scope', comm: 'systemd' });
    for (const name of ['etc', 'run', 'tmp', 'dev', 'var']) this.tmpfs.mkdir(name);
    for (const [p, data] of Object.entries(opts.files ?? {})) this.tmpfs.seed(validateHostPath(p).slice(1).split('/'), data);

    const sysfs = dir(() => ({
      bus: dir(() => ({ pci: this.pci.busDir() })),
      class: dir(() => ({ net: this.net.classNetDir() })),
      devices: dir(() => ({
        'pci0000:00': this.pci.devicesDir(),
        virtual: dir(() => ({ net: this.net.virtualNetDir() })),
      })),
      fs: dir(() => ({})),
      kernel: dir(() => ({ iommu_groups: this.vfio.iommuGroupsDir() })),
      module: dir(() => ({ vfio: this.vfio.moduleDir() })),
    }));
    const procfs = dir(() => ({ net: dir(() => ({ route: this.net.procRouteFile(), if_inet6: this.procIfInet6() })) }));
    this.addEntries('/', () => ({ sys: sysfs, proc: procfs }));
    this.addEntries('/dev', () => ({ vfio: this.vfio.devDir() }));
    this.addEntries('/sys/fs', () => ({ cgroup: this.cgroups.rootDir(), resctrl: this.resctrl?.mountPointDir() }));
    this.addEntries('/proc', () => ({
      mounts: attr(() => this.procMounts()),
      ...procPidEntries(this.procs, (tid) => ({ cpu_resctrl_groups: this.resctrl ? attr(() => this.resctrl!.procGroupsText(tid)) : undefined })),
    }));

    const interfaceName = (dev: PciDevice) => this.enaInterfaceName(dev);
    this.pci.loadDriver(enaDriver(this.net, opts.enaMaxMtu === undefined ? { interfaceName } : { maxMtu: opts.enaMaxMtu, interfaceName }));
    this.pci.loadDriver(pciStubDriver());
    this.loadBootModules();
    if (opts.primary) {
      const { pciAddress } = this.hotplugEna({ macAddress: opts.primary.macAddress, slot: opts.primary.slot ?? 5 });
      this.configurePrimary(pciAddress, opts.primary);
    }
  }

  // ---- Host ----

  async readFile(p: string): Promise<string> {
    const node = this.resolve(p, 'open', true);
    if (node.kind === 'dir') throw errnoError('EISDIR', 'read', p);
    if (node.kind !== 'file' || !node.read) throw errnoError('EACCES', 'open', p, 'write-only attribute');
    return this.kernelCall('read', p, () => node.read!());
  }

  async write(p: string, data: string): Promise<void> {
    validateHostPath(p);
    validateWriteData(p, data);
    const node = this.resolve(p, 'open', true);
    if (node.kind === 'dir') throw errnoError('EISDIR', 'open', p);
    if (node.kind !== 'file' || !node.write) throw errnoError('EACCES', 'open', p, 'read-only attribute');
    const injected = this.injectedWriteFailures.get(p)?.shift();
    if (injected !== undefined) throw errnoError(injected, 'write', p, 'injected failure');
    const pending: unknown = this.kernelCall('write', p, () => node.write!(data));
    if (pending instanceof Promise) await pending.catch((err: unknown) => Promise.reject(this.toErrno(err, 'write', p)));
  }

  async readdir(p: string): Promise<string[]> {
    const { node, path } = this.walk(p, 'scandir', true);
    if (node.kind !== 'dir') throw errnoError('ENOTDIR', 'scandir', p);
    return [...this.entriesOf(node, path).keys()].sort();
  }

  async readlink(p: string): Promise<string> {
    const node = this.resolve(p, 'readlink', false);
    if (node.kind !== 'link') throw errnoError('EINVAL', 'readlink', p);
    return node.target;
  }

  async exists(p: string): Promise<boolean> {
    try {
      this.resolve(p, 'stat', true);
      return true;
    } catch (err) {
      if ((err as ErrnoError).code === 'ENOENT' || (err as ErrnoError).code === 'ENOTDIR') return false;
      throw err;
    }
  }

  async mkdir(p: string): Promise<void> {
    const { parent, name } = this.resolveParent(p, 'mkdir');
    if (this.entriesOf(parent.node, parent.path).has(name)) throw errnoError('EEXIST', 'mkdir', p);
    if (!parent.node.mkdir) throw errnoError('EPERM', 'mkdir', p);
    this.kernelCall('mkdir', p, () => parent.node.mkdir!(name));
  }

  async rmdir(p: string): Promise<void> {
    const { parent, name } = this.resolveParent(p, 'rmdir');
    const child = this.entriesOf(parent.node, parent.path).get(name);
    if (!child) throw errnoError('ENOENT', 'rmdir', p);
    if (child.kind !== 'dir') throw errnoError('ENOTDIR', 'rmdir', p);
    if (this.isContributed(parent.path, name)) throw errnoError('EBUSY', 'rmdir', p, 'mount point');
    if (!parent.node.rmdir) throw errnoError('EPERM', 'rmdir', p);
    this.kernelCall('rmdir', p, () => parent.node.rmdir!(name));
  }

  async writeFileAtomic(p: string, data: string, mode = 0o644): Promise<void> {
    const { parent, name } = this.resolveParent(p, 'open');
    const existing = this.entriesOf(parent.node, parent.path).get(name);
    if (existing?.kind === 'dir') throw errnoError('EISDIR', 'rename', p);
    // sysfs and procfs cannot hold the temp file.
    if (!parent.node.createFile || this.isContributed(parent.path, name)) throw errnoError('EACCES', 'open', p);
    this.kernelCall('rename', p, () => parent.node.createFile!(name, data, mode));
  }

  // ---- simulation controls (not part of Host) ----

  /** Places more entries into the directory at `dirPath` (a mount of another model). */
  addEntries(dirPath: string, provider: Provider): void {
    validateHostPath(dirPath);
    const list = this.contributions.get(dirPath) ?? [];
    list.push(provider);
    this.contributions.set(dirPath, list);
  }

  /** An ENA VF appears on the PCI bus, as EC2 does after an attach; `ena` binds it (netdev down, mtu 1500). */
  hotplugEna(opts: { macAddress: string; slot?: number }): HotplugResult {
    const macAddress = opts.macAddress.toLowerCase();
    if (this.pci.listDevices().some((d) => d.macAddress === macAddress)) throw new Error(`a PCI device with MAC ${macAddress} is already plugged`);
    const slot = opts.slot ?? this.nextFreeSlot();
    const address = pciAddress(slot);
    const dev = this.pci.addDevice({ address, vendor: PCI_VENDOR_AMAZON, device: ENA_DEVICE_IDS.VF, classCode: PCI_CLASS_ETHERNET, macAddress });
    const interfaceName = dev.driver?.name === 'ena' ? this.net.list().find((n) => n.pciAddress === address)?.name : undefined;
    return interfaceName === undefined ? { pciAddress: address } : { pciAddress: address, interfaceName };
  }

  /** Hot-unplug (an EC2 detach): the driver releases the device and it disappears. */
  unplug(address: string): void {
    try {
      this.pci.removeDevice(address);
    } catch (err) {
      if (err instanceof KernelError) throw new Error(`no PCI device ${address} to unplug`);
      throw err;
    }
    // A device plugged into this slot later is new: ena names it by its slot again.
    this.enaNamed.delete(address);
  }

  /**
   * The instance reboots; its EC2 attachments (the PCI devices) stay. What a
   * reboot resets is reset: every driver lets go and every driver_override is
   * forgotten, then the bus probes the devices again, so a device that was
   * bound to a DPDK driver is back on its kernel driver (ena) as a netdev,
   * named by its slot again; every ENA netdev is down at MTU 1500, except the
   * primary ENI, which the OS configures at boot (its MTU, up, default route);
   * virtual netdevs, routes and IPv6 addresses are gone and ifindexes start
   * over; vfio is loaded again only as at boot (the options of the
   * constructor), with no-IOMMU mode as configured there and no device open;
   * /run (tmpfs, with the DPDK bind records) is empty. Not modelled: processes,
   * cgroups and resctrl groups (they stay as they are); /etc, /var and /tmp
   * persist.
   */
  reboot(): void {
    this.vfio.powerOff();
    this.pci.releaseAll();
    this.net.reset();
    this.ipv6.clear();
    this.enaNamed.clear();
    this.tmpfs.replaceWithEmptyDir('run');
    this.loadBootModules();
    this.pci.probeAll();
    const primary = this.boot.primary;
    const device = primary && this.pci.listDevices().find((d) => d.macAddress === primary.macAddress.toLowerCase());
    if (primary && device) this.configurePrimary(device.address, primary);
  }

  /** modprobe vfio-pci (with enable_unsafe_noiommu_mode=1 when asked). */
  loadVfio(opts: { noiommuMode?: boolean } = {}): void {
    this.vfio.load(opts);
  }

  /** rmmod vfio-pci vfio; throws EBUSY while a device is held open. */
  unloadVfio(): void {
    this.vfio.unload();
  }

  /** Userspace (a DPDK process) opens or closes the vfio device; while open, a vfio-pci unbind write blocks. */
  setDeviceInUse(address: string, inUse: boolean): void {
    this.vfio.setInUse(address, inUse);
  }

  /** The next write to exactly this path fails with `errnoCode` before reaching the store (one-shot, queued). */
  failNextWrite(path: string, errnoCode: string): void {
    validateHostPath(path);
    if (!/^E[A-Z0-9]+$/.test(errnoCode)) throw new Error(`not an errno code: ${errnoCode}`);
    const queue = this.injectedWriteFailures.get(path) ?? [];
    queue.push(errnoCode);
    this.injectedWriteFailures.set(path, queue);
  }

  setRenameOnRebind(on: boolean): void {
    this.renameOnRebind = on;
  }

  /** `ip -6 addr add <address>/<prefixLength> dev <interfaceName>`; shown in /proc/net/if_inet6 while the device is up. */
  addIpv6Address(interfaceName: string, address: string, prefixLength = 64): void {
    const dev = this.net.get(interfaceName);
    if (!dev) throw new Error(`no interface ${interfaceName}`);
    if (!isIPv6(address) || address.includes('.') || !Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > 128) {
      throw new Error(`not an IPv6 address/prefix: ${address}/${prefixLength}`);
    }
    const list = this.ipv6.get(dev.ifindex) ?? [];
    list.push({ address: address.toLowerCase(), prefixLength });
    this.ipv6.set(dev.ifindex, list);
  }

  loadDriver(driver: PciDriver): void {
    this.pci.loadDriver(driver);
  }

  unloadDriver(name: string): void {
    this.pci.unloadDriver(name);
  }

  addRoute(route: RouteSpec): void {
    this.net.addRoute(route);
  }

  /** A process starts in a cgroup (from outside, e.g. runc exec: root resctrl group) or forks from `parent`. */
  spawn(opts: SpawnOptions): { pid: number; tids: number[] } {
    const parent = opts.parent === undefined ? undefined : this.procs.ownerOf(opts.parent);
    if (opts.parent !== undefined && !parent) throw new Error(`no thread ${opts.parent}`);
    const cgroup = opts.cgroup === undefined ? parent?.cgroup : this.cgroupRel(opts.cgroup);
    if (cgroup === undefined) throw new Error('spawn needs a cgroup or a parent');
    const proc = this.procs.spawn({
      cgroup,
      ...(opts.pid === undefined ? {} : { pid: opts.pid }),
      ...(opts.threads === undefined ? {} : { threads: opts.threads }),
      ...(opts.comm === undefined ? {} : { comm: opts.comm }),
      ...(opts.parent === undefined ? {} : { parentTid: opts.parent }),
    });
    return { pid: proc.pid, tids: [...proc.tids] };
  }

  /** A thread of `pid` (created by `fromTid`, default the main thread) starts; it inherits that thread's resctrl group. */
  addThread(pid: number, fromTid?: number): number {
    return this.procs.addThread(pid, fromTid);
  }

  exitThread(tid: number): void {
    this.procs.exitThread(tid);
  }

  /** The process exits: its TIDs vanish from /proc, cgroups and resctrl (later tasks writes are ESRCH). */
  exit(pid: number): void {
    this.procs.exit(pid);
  }

  /** The thread that issues this host's writes (what pid 0 means in tasks/cgroup.procs). */
  setCurrentTask(tid: number | undefined): void {
    this.procs.setCurrent(tid);
  }

  /** The kubelet and runtime create a container's cgroup (and its pod's); returns its host path. */
  addContainer(spec: ContainerSpec): string {
    return CGROUP_MOUNT + this.cgroups.addContainer(spec);
  }

  /** The container's processes exit and its cgroup is removed; returns the removed host path. */
  removeContainer(containerId: string): string {
    return CGROUP_MOUNT + this.cgroups.removeContainer(containerId);
  }

  removePod(podUid: string, qos: QosClass): void {
    this.cgroups.removePod(podUid, qos);
  }

  setCgroupListDuplicates(on: boolean): void {
    this.cgroups.setListDuplicates(on);
  }

  /** Script a resctrl group's own counters (`groupPath` e.g. /sys/fs/resctrl/mon_groups/pod_x) in one L3 domain. */
  setMonData(groupPath: string, values: MonValues, domain = 0): void {
    this.requireResctrl().setMonData(this.resctrlRel(groupPath), values, domain);
  }

  /** Freed RMIDs leave limbo (all by default); returns them. */
  drainLimbo(count?: number): number[] {
    const model = this.requireResctrl();
    return count === undefined ? model.drainLimbo() : model.drainLimbo(count);
  }

  /** A runtime restarting with an rdt_config_file deletes control groups not in `keepNames` and empty MON groups; returns removed host paths. */
  runtimeDeletesUnknownGroups(keepNames: readonly string[]): string[] {
    return this.requireResctrl()
      .runtimeDeletesUnknownGroups(keepNames)
      .map((rel) => `${RESCTRL_MOUNT}/${rel}`);
  }

  mountResctrl(opts: { limbo?: number } = {}): void {
    this.requireResctrl().mount(opts.limbo ?? 0);
  }

  unmountResctrl(): void {
    this.requireResctrl().unmount();
  }

  snapshot(): SimSnapshot {
    const interfaceOf = (address: string) => this.net.list().find((n) => n.pciAddress === address)?.name ?? null;
    return {
      pciDevices: this.pci.listDevices().map((d) => ({
        address: d.address,
        vendor: `0x${d.vendor.toString(16).padStart(4, '0')}`,
        device: `0x${d.device.toString(16).padStart(4, '0')}`,
        macAddress: d.macAddress ?? null,
        driver: d.driver?.name ?? null,
        driverOverride: d.driverOverride ?? null,
        interfaceName: interfaceOf(d.address),
      })),
      drivers: this.pci.listDrivers().map((drv) => ({
        name: drv.name,
        devices: this.pci.listDevices().filter((d) => d.driver === drv).map((d) => d.address),
      })),
      interfaces: this.net.list().map((n) => ({
        name: n.name,
        ifindex: n.ifindex,
        macAddress: n.macAddress,
        mtu: n.mtu,
        up: this.net.isUp(n),
        pciAddress: n.pciAddress ?? null,
      })),
      routes: this.net.listRoutes(),
      vfio: this.vfio.snapshot(),
      ipv6Addresses: this.ipv6Rows().map((r) => ({ interfaceName: r.dev.name, address: r.address, prefixLength: r.prefixLength })),
      resctrl: this.resctrl?.snapshot() ?? null,
      cgroups: this.cgroups.snapshot(),
      processes: this.procs.list().map((p) => ({ pid: p.pid, tids: [...p.tids], cgroup: p.cgroup === '/' ? CGROUP_MOUNT : CGROUP_MOUNT + p.cgroup, comm: p.comm })),
    };
  }

  // ---- internals ----

  /** /proc/mounts: the root fs, sysfs, procfs, tmpfs /run, cgroup2, and resctrl while mounted. */
  private procMounts(): string {
    const lines = [
      '/dev/nvme0n1p1 / xfs rw,noatime,attr2,inode64,logbufs=8,logbsize=32k,noquota 0 0',
      'sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0',
      'proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0',
      'tmpfs /run tmpfs rw,nosuid,nodev,size=3255864k,nr_inodes=819200,mode=755,inode64 0 0',
      'cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate,memory_recursiveprot 0 0',
    ];
    if (this.resctrl?.isMounted) lines.push(`resctrl ${RESCTRL_MOUNT} resctrl rw,relatime 0 0`);
    return lines.map((l) => `${l}\n`).join('');
  }

  private requireResctrl(): ResctrlModel {
    if (!this.resctrl) throw new Error('this SimHost has no RDT (construct it with the resctrl option)');
    return this.resctrl;
  }

  /** '/sys/fs/resctrl/mon_groups/x' → 'mon_groups/x'. */
  private resctrlRel(groupPath: string): string {
    validateHostPath(groupPath);
    if (groupPath === RESCTRL_MOUNT) return '';
    if (!groupPath.startsWith(RESCTRL_MOUNT + '/')) throw new Error(`${groupPath} is not under ${RESCTRL_MOUNT}`);
    return groupPath.slice(RESCTRL_MOUNT.length + 1);
  }

  /** '/sys/fs/cgroup/a/b' → '/a/b', which must exist. */
  private cgroupRel(cgroupPath: string): string {
    validateHostPath(cgroupPath);
    const rel = cgroupPath === CGROUP_MOUNT ? '/' : cgroupPath.startsWith(CGROUP_MOUNT + '/') ? cgroupPath.slice(CGROUP_MOUNT.length) : undefined;
    if (rel === undefined || !this.cgroups.has(rel)) throw new Error(`no cgroup ${cgroupPath}`);
    return rel;
  }

  private loadBootModules(): void {
    if (this.boot.vfio) this.vfio.load(this.boot.vfio === true ? {} : this.boot.vfio);
  }

  /** What the OS does for the primary ENI at boot: its MTU, up, the default route through it. */
  private configurePrimary(pciAddress: string, primary: PrimaryInterfaceOptions): void {
    const dev = this.net.list().find((n) => n.pciAddress === pciAddress);
    if (!dev) throw new Error('the primary ENI was not claimed by ena');
    this.net.mtuStore(dev, String(primary.mtu ?? 9001));
    this.net.flagsStore(dev, `0x${(dev.flags | IFF.UP).toString(16)}`);
    this.net.addRoute({ interfaceName: dev.name, destination: '0.0.0.0/0', gateway: primary.gateway ?? '10.0.0.1' });
  }

  private nextFreeSlot(): number {
    const used = new Set(this.pci.listDevices().map((d) => d.address));
    for (let slot = FIRST_SECONDARY_SLOT; slot <= LAST_SLOT; slot++) if (!used.has(pciAddress(slot))) return slot;
    throw new Error('no free PCI slot');
  }

  private kernelCall<T>(syscall: string, p: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw this.toErrno(err, syscall, p);
    }
  }

  private toErrno(err: unknown, syscall: string, p: string): unknown {
    if (!(err instanceof KernelError)) return err;
    const out = errnoError(err.code, syscall, p, err.detail);
    out.cause = err;
    return out;
  }

  /** ena's netdev name: the slot name, or on a rebind with renameOnRebind the kernel's lowest free ethN. */
  private enaInterfaceName(dev: PciDevice): string {
    const rebind = this.enaNamed.has(dev.address);
    this.enaNamed.add(dev.address);
    if (!rebind || !this.renameOnRebind) return slotInterfaceName(dev.address);
    let n = 0;
    while (this.net.get(`eth${n}`)) n++;
    return `eth${n}`;
  }

  /**
   * Addresses of up devices: ::1 on lo, an EUI-64 fe80:: on every other
   * device, plus explicit ones. (Simplified: without keep_addr_on_down the
   * kernel drops addresses on down; here they are hidden while down.)
   */
  private ipv6Rows(): Array<{ dev: NetDevice; address: string; prefixLength: number }> {
    const rows: Array<{ dev: NetDevice; address: string; prefixLength: number }> = [];
    for (const dev of this.net.list()) {
      if (!this.net.isUp(dev)) continue;
      if (dev.type === ARPHRD_LOOPBACK) rows.push({ dev, address: '::1', prefixLength: 128 });
      else rows.push({ dev, address: eui64LinkLocal(dev.macAddress), prefixLength: 64 });
      for (const a of this.ipv6.get(dev.ifindex) ?? []) rows.push({ dev, ...a });
    }
    return rows;
  }

  /** /proc/net/if_inet6, formatted like if6_seq_show: "%pi6 %02x %02x %02x %02x %8s". */
  private procIfInet6(): SimFile {
    const hex2 = (n: number) => n.toString(16).padStart(2, '0');
    return attr(() =>
      this.ipv6Rows()
        .map((r) => `${ipv6Hex(r.address)} ${hex2(r.dev.ifindex)} ${hex2(r.prefixLength)} ${hex2(ipv6Scope(r.address))} 80 ${r.dev.name.padStart(8)}\n`)
        .join(''),
    );
  }

  private entriesOf(node: SimDir, physicalPath: string): Map<string, SimNode> {
    const out = new Map(node.entries());
    for (const provider of this.contributions.get(physicalPath) ?? []) {
      for (const [name, child] of Object.entries(provider())) if (child) out.set(name, child);
    }
    return out;
  }

  private isContributed(dirPath: string, name: string): boolean {
    return (this.contributions.get(dirPath) ?? []).some((provider) => provider()[name] !== undefined);
  }

  private resolve(p: string, syscall: string, followFinal: boolean): SimNode {
    return this.walk(p, syscall, followFinal).node;
  }

  private resolveParent(p: string, syscall: string): { parent: { node: SimDir; path: string }; name: string } {
    validateHostPath(p);
    if (p === '/') throw errnoError('EEXIST', syscall, p);
    const slash = p.lastIndexOf('/');
    const parentPath = slash === 0 ? '/' : p.slice(0, slash);
    const parent = this.walk(parentPath, syscall, true, p);
    if (parent.node.kind !== 'dir') throw errnoError('ENOTDIR', syscall, p);
    return { parent: { node: parent.node, path: parent.path }, name: p.slice(slash + 1) };
  }

  /** Path walk; `path` in the result is the physical path with every symlink resolved. */
  private walk(p: string, syscall: string, followFinal: boolean, reportAs = p): { node: SimNode; path: string } {
    validateHostPath(p);
    const stack: Array<{ name: string; node: SimNode }> = [];
    const rootNode: SimDir = this.tmpfs;
    let queue = p.split('/').filter((s) => s.length > 0);
    let hops = 0;
    while (queue.length > 0) {
      const name = queue.shift()!;
      const isFinal = queue.length === 0;
      if (name === '.') continue;
      if (name === '..') {
        stack.pop();
        continue;
      }
      const current = stack.at(-1)?.node ?? rootNode;
      if (current.kind !== 'dir') throw errnoError('ENOTDIR', syscall, reportAs);
      const currentPath = '/' + stack.map((s) => s.name).join('/');
      const child = this.entriesOf(current, currentPath).get(name);
      if (!child) throw errnoError('ENOENT', syscall, reportAs);
      if (child.kind === 'link' && (!isFinal || followFinal)) {
        if (++hops > MAX_SYMLINK_HOPS) throw errnoError('ELOOP', syscall, reportAs);
        if (child.target.startsWith('/')) stack.length = 0;
        queue = [...child.target.split('/').filter((s) => s.length > 0), ...queue];
        continue;
      }
      stack.push({ name, node: child });
    }
    return { node: stack.at(-1)?.node ?? rootNode, path: '/' + stack.map((s) => s.name).join('/') };
  }
}

/** The 32 hex digits %pi6 prints. */
function ipv6Hex(address: string): string {
  const [head = '', tail] = address.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return groups.map((g) => g.padStart(4, '0')).join('').toLowerCase();
}

/** ipv6_addr_scope as if_inet6 shows it: 0x10 host, 0x20 link, 0x40 site, 0x00 global. */
function ipv6Scope(address: string): number {
  const hex = ipv6Hex(address);
  if (hex === '0'.repeat(31) + '1') return 0x10;
  const first10 = parseInt(hex.slice(0, 3), 16) >> 2;
  if (first10 === 0x3fa) return 0x20;
  if (first10 === 0x3fb) return 0x40;
  return 0x00;
}

/** The link-local address the kernel derives from a MAC (EUI-64, universal/local bit flipped). */
function eui64LinkLocal(mac: string): string {
  const b = mac.split(':').map((x) => parseInt(x, 16));
  const word = (hi: number, lo: number) => ((hi << 8) | lo).toString(16);
  return `fe80::${word(b[0]! ^ 0x02, b[1]!)}:${word(b[2]!, 0xff)}:${word(0xfe, b[3]!)}:${word(b[4]!, b[5]!)}`;
}

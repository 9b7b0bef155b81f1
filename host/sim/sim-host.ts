// An in-memory host that behaves like a Linux EC2 node for everything the node
// agent touches. It models kernel objects (PciBus, NetStack, later resctrl
// and cgroups) and renders /sys and /proc from them on every lookup; writes go
// to the same store handlers the kernel would run. Paths resolve like the
// VFS: symlinks followed (relative to the link's directory, 40 hops at most),
// ENOENT/ENOTDIR/EISDIR/EACCES/EPERM where the kernel gives them.
//
// Extension: addEntries(dir, provider) places more nodes into a directory
// (e.g. resctrl at /sys/fs, pids under /proc); each model stays its own module.
import { errnoError, validateHostPath, validateWriteData, type ErrnoError, type Host } from '../host.js';
import { enaDriver, ENA_DEVICE_IDS, PCI_CLASS_ETHERNET, PCI_VENDOR_AMAZON, pciStubDriver, slotInterfaceName } from './drivers.js';
import { KernelError } from './errors.js';
import { IFF, NetStack, type RouteSpec } from './net.js';
import { PciBus, pciAddress, type PciDriver } from './pci.js';
import { dir, TmpfsDir, type SimDir, type SimNode } from './vfs.js';

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
  private readonly tmpfs = new TmpfsDir();
  private readonly contributions = new Map<string, Provider[]>();

  constructor(opts: SimHostOptions = {}) {
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
      kernel: dir(() => ({})),
      module: dir(() => ({})),
    }));
    const procfs = dir(() => ({ net: dir(() => ({ route: this.net.procRouteFile() })) }));
    this.addEntries('/', () => ({ sys: sysfs, proc: procfs }));

    this.pci.loadDriver(enaDriver(this.net, opts.enaMaxMtu === undefined ? {} : { maxMtu: opts.enaMaxMtu }));
    this.pci.loadDriver(pciStubDriver());
    if (opts.primary) this.createPrimary(opts.primary);
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
    this.kernelCall('write', p, () => node.write!(data));
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
    const interfaceName = dev.driver?.name === 'ena' ? slotInterfaceName(address) : undefined;
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
    };
  }

  // ---- internals ----

  private createPrimary(primary: PrimaryInterfaceOptions): void {
    const { interfaceName } = this.hotplugEna({ macAddress: primary.macAddress, slot: primary.slot ?? 5 });
    const dev = interfaceName === undefined ? undefined : this.net.get(interfaceName);
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
      if (err instanceof KernelError) {
        const out = errnoError(err.code, syscall, p, err.detail);
        out.cause = err;
        throw out;
      }
      throw err;
    }
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

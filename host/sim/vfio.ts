// vfio and vfio-pci as the kernel shows them to the node agent
// (shared/reference/node-host-interfaces.md §6.2, §6.4, §6.5):
// - vfio-pci has an empty ID table, so it binds only through driver_override;
// - its probe needs an IOMMU group: the platform's (IOMMU hosts: every device
//   has iommu_group → /sys/kernel/iommu_groups/<N> from boot), or, in no-IOMMU
//   mode, one it fabricates (name `vfio-noiommu`, freed on unbind); with
//   neither, the probe fails with EINVAL (vfio_group_find_or_alloc);
// - a bound device's group appears as /dev/vfio/<N> or /dev/vfio/noiommu-<N>,
//   next to the container node /dev/vfio/vfio;
// - /sys/module/vfio/parameters/enable_unsafe_noiommu_mode reads Y/N, takes
//   kstrtobool input, and exists while vfio is loaded (CONFIG_VFIO_NOIOMMU);
// - a device that userspace holds open ("in use") makes vfio-pci's remove
//   wait until it is released (vfio_unregister_group_dev), so the unbind
//   write blocks, and the module cannot be unloaded meanwhile.
import { kernelError } from './errors.js';
import type { PciBus, PciDevice, PciDriver } from './pci.js';
import { attr, dir, link, type SimDir, type SimNode } from './vfs.js';

export const VFIO_PCI = 'vfio-pci';
export const NOIOMMU_GROUP_NAME = 'vfio-noiommu';

export interface VfioOptions {
  /** The platform has an IOMMU: every PCI device sits in its own group from boot. */
  iommu: boolean;
  /** The kernel has CONFIG_VFIO_NOIOMMU, so the module parameter exists (default true). */
  noiommuSupported?: boolean;
}

export interface VfioGroupSnapshot {
  id: number;
  noiommu: boolean;
  devices: string[];
  /** The group's device node while a member is bound to vfio-pci. */
  vfioDevice: string | null;
}

export interface VfioSnapshot {
  iommu: boolean;
  loaded: boolean;
  /** enable_unsafe_noiommu_mode; null while the parameter does not exist. */
  noiommuMode: boolean | null;
  groups: VfioGroupSnapshot[];
  devicesInUse: string[];
}

export class VfioModel {
  private loaded = false;
  private noiommuMode = false;
  /** Platform groups (IOMMU hosts), numbered in order of discovery. */
  private readonly platformGroups = new Map<string, number>();
  /** Groups vfio fabricated in no-IOMMU mode, one per bound device. */
  private readonly noiommuGroups = new Map<string, number>();
  /** Devices vfio-pci has registered (bound, or blocked in remove). */
  private readonly registered = new Set<string>();
  private readonly inUse = new Set<string>();
  private readonly releaseWaiters = new Map<string, () => void>();
  private readonly noiommuSupported: boolean;

  constructor(
    private readonly pci: PciBus,
    private readonly opts: VfioOptions,
  ) {
    this.noiommuSupported = opts.noiommuSupported ?? true;
    pci.addDeviceEntries((dev) => {
      const group = this.groupOf(dev.address);
      return { iommu_group: group === undefined ? undefined : link(`../../../kernel/iommu_groups/${group}`) };
    });
  }

  get isLoaded(): boolean {
    return this.loaded;
  }

  /** modprobe vfio-pci (optionally with enable_unsafe_noiommu_mode=1). */
  load(opts: { noiommuMode?: boolean } = {}): void {
    if (this.loaded) throw kernelError('EEXIST', 'vfio is loaded');
    this.noiommuMode = this.noiommuSupported && (opts.noiommuMode ?? false);
    this.loaded = true;
    try {
      this.pci.loadDriver(this.driver());
    } catch (err) {
      this.loaded = false;
      throw err;
    }
  }

  /** rmmod vfio-pci vfio: EBUSY while a device is open; module parameters reset. */
  unload(): void {
    if (!this.loaded) throw kernelError('ENOENT', 'vfio is not loaded');
    this.pci.unloadDriver(VFIO_PCI);
    this.loaded = false;
    this.noiommuMode = false;
  }

  /**
   * Power-off (SimHost.reboot): userspace is gone (nothing holds a device open,
   * a blocked unbind returns), the modules are unloaded, no-IOMMU mode is off
   * and the groups are forgotten (platform groups are numbered again at boot).
   */
  powerOff(): void {
    this.inUse.clear();
    const waiters = [...this.releaseWaiters.values()];
    this.releaseWaiters.clear();
    for (const release of waiters) release();
    if (this.loaded) {
      this.pci.unloadDriver(VFIO_PCI);
      this.loaded = false;
    }
    this.noiommuMode = false;
    this.noiommuGroups.clear();
    this.registered.clear();
    this.platformGroups.clear();
  }

  /** Userspace opens (true) or closes (false) the device; closing lets a blocked unbind finish. */
  setInUse(address: string, inUse: boolean): void {
    if (!inUse) {
      this.inUse.delete(address);
      const release = this.releaseWaiters.get(address);
      this.releaseWaiters.delete(address);
      release?.();
      return;
    }
    const dev = this.pci.device(address);
    if (!dev || dev.driver?.name !== VFIO_PCI || dev.releasing) throw new Error(`${address} is not bound to ${VFIO_PCI}; only a vfio device can be opened`);
    this.inUse.add(address);
  }

  /** /sys/kernel/iommu_groups: present on every kernel with IOMMU support, empty without groups. */
  iommuGroupsDir(): SimDir {
    return dir(() => Object.fromEntries(this.groups().map((g) => [String(g.id), this.groupDir(g.noiommu, g.devices)])));
  }

  /** /sys/module/vfio while the module is loaded. */
  moduleDir(): SimNode | undefined {
    if (!this.loaded) return undefined;
    return dir(() => ({
      parameters: dir(() => ({
        enable_unsafe_noiommu_mode: this.noiommuSupported
          ? attr(
              () => (this.noiommuMode ? 'Y\n' : 'N\n'),
              (buf) => {
                this.noiommuMode = kstrtobool(buf);
              },
            )
          : undefined,
      })),
    }));
  }

  /** /dev/vfio while the module is loaded: the container node and one node per group in use by vfio. */
  devDir(): SimNode | undefined {
    if (!this.loaded) return undefined;
    return dir(() => {
      const nodes: Record<string, SimNode> = { vfio: attr(undefined) };
      for (const g of this.groups()) {
        const node = this.deviceNodeName(g.id, g.noiommu, g.devices);
        if (node) nodes[node] = attr(undefined);
      }
      return nodes;
    });
  }

  snapshot(): VfioSnapshot {
    return {
      iommu: this.opts.iommu,
      loaded: this.loaded,
      noiommuMode: this.loaded && this.noiommuSupported ? this.noiommuMode : null,
      groups: this.groups().map((g) => {
        const node = this.deviceNodeName(g.id, g.noiommu, g.devices);
        return { id: g.id, noiommu: g.noiommu, devices: g.devices, vfioDevice: node ? `/dev/vfio/${node}` : null };
      }),
      devicesInUse: [...this.inUse].sort(),
    };
  }

  private driver(): PciDriver {
    return {
      name: VFIO_PCI,
      // Like the in-tree driver without ids=: it claims nothing on its own.
      idTable: [],
      probe: (dev) => this.probe(dev),
      remove: (dev) => this.remove(dev),
      busy: () => this.inUse.size > 0,
    };
  }

  private probe(dev: PciDevice): void {
    if (this.groupOf(dev.address) === undefined) {
      if (!this.noiommuMode) throw kernelError('EINVAL', `${dev.address} has no IOMMU group and no-IOMMU mode is off`);
      this.noiommuGroups.set(dev.address, this.lowestFreeGroupId());
    }
    this.registered.add(dev.address);
  }

  private remove(dev: PciDevice): void | Promise<void> {
    const unregister = () => {
      this.registered.delete(dev.address);
      this.noiommuGroups.delete(dev.address);
    };
    if (!this.inUse.has(dev.address)) {
      unregister();
      return;
    }
    // "Device is currently in use, task ... blocked until device is released".
    return new Promise<void>((resolve) => this.releaseWaiters.set(dev.address, resolve)).then(unregister);
  }

  private groupOf(address: string): number | undefined {
    this.numberPlatformGroups();
    return this.platformGroups.get(address) ?? this.noiommuGroups.get(address);
  }

  /** Platform groups exist for every present device; new devices get the next number. */
  private numberPlatformGroups(): void {
    if (!this.opts.iommu) return;
    for (const dev of this.pci.listDevices()) {
      if (!this.platformGroups.has(dev.address)) this.platformGroups.set(dev.address, this.lowestFreeGroupId());
    }
  }

  private lowestFreeGroupId(): number {
    const used = new Set([...this.platformGroups.values(), ...this.noiommuGroups.values()]);
    let id = 0;
    while (used.has(id)) id++;
    return id;
  }

  private groups(): Array<{ id: number; noiommu: boolean; devices: string[] }> {
    this.numberPlatformGroups();
    const present = new Set(this.pci.listDevices().map((d) => d.address));
    const byId = new Map<number, { id: number; noiommu: boolean; devices: string[] }>();
    const add = (address: string, id: number, noiommu: boolean) => {
      if (!present.has(address)) return;
      const g = byId.get(id) ?? { id, noiommu, devices: [] };
      g.devices.push(address);
      byId.set(id, g);
    };
    for (const [address, id] of this.platformGroups) add(address, id, false);
    for (const [address, id] of this.noiommuGroups) add(address, id, true);
    return [...byId.values()].sort((a, b) => a.id - b.id).map((g) => ({ ...g, devices: g.devices.sort() }));
  }

  private deviceNodeName(id: number, noiommu: boolean, devices: string[]): string | undefined {
    if (!devices.some((d) => this.registered.has(d))) return undefined;
    return noiommu ? `noiommu-${id}` : String(id);
  }

  private groupDir(noiommu: boolean, devices: string[]): SimDir {
    return dir(() => ({
      devices: dir(() => Object.fromEntries(devices.map((d) => [d, link(`../../../../devices/pci0000:00/${d}`)]))),
      name: noiommu ? attr(() => `${NOIOMMU_GROUP_NAME}\n`) : undefined,
    }));
  }
}

/** kstrtobool, as param_set_bool uses it: the first character decides; "on"/"off" need two. */
function kstrtobool(buf: string): boolean {
  const c = buf[0];
  if (c !== undefined && 'yYtT1'.includes(c)) return true;
  if (c !== undefined && 'nNfF0'.includes(c)) return false;
  if (c === 'o' || c === 'O') {
    const d = buf[1];
    if (d === 'n' || d === 'N') return true;
    if (d === 'f' || d === 'F') return false;
  }
  throw kernelError('EINVAL', `not a boolean: ${JSON.stringify(buf)}`);
}

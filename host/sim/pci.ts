// The PCI bus as the kernel keeps it: devices, loaded drivers, which driver
// each device is bound to, and driver_override. The store handlers follow
// drivers/base/bus.c, drivers/base/dd.c and drivers/pci/pci-driver.c
// (see shared/reference/node-host-interfaces.md §6.3):
// - unbind: ENODEV unless the device exists and is bound to that driver;
// - bind: ENODEV if the device is unknown or does not match the driver
//   (override or ID table), EBUSY if it is bound already (modern dd.c), probe
//   errors passed through;
// - drivers_probe: ENODEV for an unknown device, otherwise success even when
//   nothing binds;
// - driver_override: only the named driver may match, and it always matches.
// A driver's remove() may block (vfio-pci while userspace holds the device
// open): like __device_release_driver, the driver links go first, the device
// lock stays held, and every store on that device waits until remove returns.
import { kernelError } from './errors.js';
import { sysfsStreq } from './kstrto.js';
import { attr, dir, link, type SimDir, type SimNode } from './vfs.js';

export interface PciId {
  vendor: number;
  device: number;
}

export interface PciDeviceSpec extends PciId {
  /** Bus/device/function, `DDDD:BB:DD.F`. */
  address: string;
  /** 24-bit class code, 0x020000 for an Ethernet controller. */
  classCode: number;
  /** The permanent MAC a NIC reports to its driver (ENA reads it from the device). */
  macAddress?: string;
}

export interface PciDevice extends Readonly<PciDeviceSpec> {
  driver?: PciDriver;
  driverOverride?: string;
  /** Set while a blocking remove() runs: the device lock is held until it settles. */
  releasing?: Promise<void>;
}

/** Entries the platform (not the bound driver) adds under a device's directory, e.g. iommu_group. */
export type PciDeviceEntries = (dev: PciDevice) => Record<string, SimNode | undefined>;

export interface PciDriver {
  readonly name: string;
  readonly idTable: readonly PciId[];
  /** Claims the device; throw KernelError to refuse (the errno reaches a bind write). */
  probe(dev: PciDevice): void;
  /** Releases the device; a promise means the unbind blocks until it settles (it must not reject). */
  remove(dev: PciDevice): void | Promise<void>;
  /** True while the module is referenced (a device is open): unloading it is EBUSY. */
  busy?(): boolean;
  /** What the bound driver adds under the device's sysfs directory (net/<if>, iommu_group, ...). */
  deviceEntries?(dev: PciDevice): Record<string, SimNode | undefined>;
}

const BDF = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$/;

export function isPciAddress(s: string): boolean {
  return BDF.test(s);
}

export function pciAddress(slot: number, fn = 0, bus = 0, domain = 0): string {
  const hex = (n: number, width: number) => n.toString(16).padStart(width, '0');
  return `${hex(domain, 4)}:${hex(bus, 2)}:${hex(slot, 2)}.${fn}`;
}

export function pciSlotOf(address: string): { slot: number; fn: number } {
  const m = /:([0-9a-f]{2})\.([0-7])$/.exec(address);
  if (!m) throw new Error(`not a PCI address: ${address}`);
  return { slot: parseInt(m[1]!, 16), fn: Number(m[2]) };
}

/** driver_set_override rejects writes of PAGE_SIZE - 1 bytes or more. */
const OVERRIDE_WRITE_LIMIT = 4095;

export class PciBus {
  private readonly devices = new Map<string, PciDevice>();
  private readonly drivers = new Map<string, PciDriver>();
  private readonly platformEntries: PciDeviceEntries[] = [];

  device(address: string): PciDevice | undefined {
    return this.devices.get(address);
  }

  listDevices(): PciDevice[] {
    return [...this.devices.values()].sort((a, b) => a.address.localeCompare(b.address));
  }

  listDrivers(): PciDriver[] {
    return [...this.drivers.values()];
  }

  driver(name: string): PciDriver | undefined {
    return this.drivers.get(name);
  }

  /** device_add: the device appears, then the bus probes it (hotplug). */
  addDevice(spec: PciDeviceSpec): PciDevice {
    if (!isPciAddress(spec.address)) throw new Error(`not a PCI address: ${spec.address}`);
    if (this.devices.has(spec.address)) throw kernelError('EEXIST', `PCI device ${spec.address} exists`);
    const dev: PciDevice = { ...spec };
    this.devices.set(spec.address, dev);
    this.attach(dev);
    return dev;
  }

  /** Hot-unplug: the driver lets go, then the device disappears (later, if the driver's remove blocks). */
  removeDevice(address: string): void {
    const dev = this.devices.get(address);
    if (!dev) throw kernelError('ENODEV', `no PCI device ${address}`);
    const pending = dev.releasing ?? this.detach(dev);
    if (pending) void pending.then(() => this.devices.delete(address));
    else this.devices.delete(address);
  }

  /** A platform provider of per-device entries (the IOMMU's iommu_group link). */
  addDeviceEntries(provider: PciDeviceEntries): void {
    this.platformEntries.push(provider);
  }

  /** Module load: the driver registers and claims every unbound matching device. */
  loadDriver(drv: PciDriver): void {
    if (this.drivers.has(drv.name)) throw kernelError('EEXIST', `driver ${drv.name} is loaded`);
    this.drivers.set(drv.name, drv);
    for (const dev of this.listDevices()) {
      if (!dev.driver && this.matches(drv, dev)) this.tryProbe(drv, dev);
    }
  }

  /** Module unload: every bound device is released first. */
  unloadDriver(name: string): void {
    const drv = this.drivers.get(name);
    if (!drv) throw kernelError('ENOENT', `driver ${name} is not loaded`);
    if (drv.busy?.()) throw kernelError('EBUSY', `driver ${name} is in use`);
    for (const dev of this.devices.values()) if (dev.driver === drv && !dev.releasing) void this.detach(dev);
    this.drivers.delete(name);
  }

  /**
   * Power-off (SimHost.reboot): every driver lets go of its device and every
   * driver_override is forgotten. Userspace is gone by then, so no remove()
   * may block; one that was blocked already is cut short.
   */
  releaseAll(): void {
    for (const dev of this.devices.values()) {
      if (dev.releasing) {
        delete dev.releasing;
        delete dev.driver;
      }
      const pending = this.detach(dev);
      if (pending) throw new Error(`${dev.address}: ${dev.driver?.name ?? 'its driver'} blocks in remove() at power-off`);
      delete dev.driverOverride;
    }
  }

  /** Boot (SimHost.reboot): the bus probes every unbound device, in address order. */
  probeAll(): void {
    for (const dev of this.listDevices()) if (!dev.driver) this.attach(dev);
  }

  /** /sys/bus/pci/drivers/<drv>/bind */
  bindStore(driverName: string, buf: string): void | Promise<void> {
    const drv = this.requireDriver(driverName);
    const dev = this.findByName(buf);
    if (dev?.releasing) return dev.releasing.then(() => this.bindStore(driverName, buf));
    if (!dev || !this.matches(drv, dev)) throw kernelError('ENODEV', `${buf.trim()} does not match ${driverName}`);
    if (dev.driver) throw kernelError('EBUSY', `${dev.address} is bound to ${dev.driver.name}`);
    this.probe(drv, dev);
  }

  /** /sys/bus/pci/drivers/<drv>/unbind */
  unbindStore(driverName: string, buf: string): void | Promise<void> {
    const drv = this.requireDriver(driverName);
    const dev = this.findByName(buf);
    if (dev?.releasing) return dev.releasing.then(() => this.unbindStore(driverName, buf));
    if (!dev || dev.driver !== drv) throw kernelError('ENODEV', `${buf.trim()} is not bound to ${driverName}`);
    return this.detach(dev);
  }

  /** /sys/bus/pci/drivers_probe */
  driversProbeStore(buf: string): void | Promise<void> {
    const dev = this.findByName(buf);
    if (dev?.releasing) return dev.releasing.then(() => this.driversProbeStore(buf));
    if (!dev) throw kernelError('ENODEV', `no PCI device ${buf.trim()}`);
    if (!dev.driver) this.attach(dev);
  }

  /** /sys/bus/pci/devices/<bdf>/driver_override (driver_set_override). */
  driverOverrideStore(dev: PciDevice, buf: string): void | Promise<void> {
    // driver_set_override takes the device lock.
    if (dev.releasing) return dev.releasing.then(() => this.driverOverrideStore(dev, buf));
    if (Buffer.byteLength(buf) >= OVERRIDE_WRITE_LIMIT) throw kernelError('EINVAL', 'driver_override too long');
    const nul = buf.indexOf('\0');
    const str = nul === -1 ? buf : buf.slice(0, nul);
    const newline = str.indexOf('\n');
    const value = newline === -1 ? str : str.slice(0, newline);
    if (value.length === 0) delete dev.driverOverride;
    else dev.driverOverride = value;
  }

  /** pci_match_device: an override names the only driver that may match, and it always does. */
  matches(drv: PciDriver, dev: PciDevice): boolean {
    if (dev.driverOverride !== undefined) return dev.driverOverride === drv.name;
    return drv.idTable.some((id) => id.vendor === dev.vendor && id.device === dev.device);
  }

  /** /sys/bus/pci: devices/, drivers/, drivers_probe. */
  busDir(): SimDir {
    return dir(() => ({
      devices: dir(() => Object.fromEntries(this.listDevices().map((d) => [d.address, link(`../../../devices/pci0000:00/${d.address}`)]))),
      drivers: dir(() => Object.fromEntries(this.listDrivers().map((drv) => [drv.name, this.driverDir(drv)]))),
      drivers_probe: attr(undefined, (buf) => this.driversProbeStore(buf)),
    }));
  }

  /** /sys/devices/pci0000:00: one directory per device. */
  devicesDir(): SimDir {
    return dir(() => Object.fromEntries(this.listDevices().map((d) => [d.address, this.deviceDir(d)])));
  }

  private driverDir(drv: PciDriver): SimDir {
    return dir(() => {
      const bound = this.listDevices().filter((d) => d.driver === drv && !d.releasing);
      return {
        bind: attr(undefined, (buf) => this.bindStore(drv.name, buf)),
        unbind: attr(undefined, (buf) => this.unbindStore(drv.name, buf)),
        ...Object.fromEntries(bound.map((d) => [d.address, link(`../../../../devices/pci0000:00/${d.address}`)])),
      };
    });
  }

  private deviceDir(dev: PciDevice): SimDir {
    const hex = (n: number, width: number) => `0x${n.toString(16).padStart(width, '0')}\n`;
    return dir(() => ({
      vendor: attr(() => hex(dev.vendor, 4)),
      device: attr(() => hex(dev.device, 4)),
      class: attr(() => hex(dev.classCode, 6)),
      // An unset override shows as "(null)": sysfs_emit("%s\n", NULL).
      driver_override: attr(
        () => `${dev.driverOverride ?? '(null)'}\n`,
        (buf) => this.driverOverrideStore(dev, buf),
      ),
      uevent: attr(() => this.uevent(dev), (buf) => assertUeventAction(buf)),
      subsystem: link('../../../bus/pci'),
      // driver_sysfs_remove runs before remove(): a blocked unbind has no link any more.
      driver: dev.driver && !dev.releasing ? link(`../../../bus/pci/drivers/${dev.driver.name}`) : undefined,
      ...this.platformEntriesOf(dev),
      ...(dev.driver?.deviceEntries?.(dev) ?? {}),
    }));
  }

  private platformEntriesOf(dev: PciDevice): Record<string, SimNode | undefined> {
    const out: Record<string, SimNode | undefined> = {};
    for (const entries of this.platformEntries) Object.assign(out, entries(dev));
    return out;
  }

  private uevent(dev: PciDevice): string {
    const id = `${dev.vendor.toString(16)}:${dev.device.toString(16)}`.toUpperCase();
    const lines = [
      ...(dev.driver ? [`DRIVER=${dev.driver.name}`] : []),
      `PCI_CLASS=${dev.classCode.toString(16).toUpperCase()}`,
      `PCI_ID=${id}`,
      `PCI_SLOT_NAME=${dev.address}`,
    ];
    return lines.map((l) => `${l}\n`).join('');
  }

  private requireDriver(name: string): PciDriver {
    // The file only exists while the driver is loaded; SimHost resolved it, so this holds.
    const drv = this.drivers.get(name);
    if (!drv) throw kernelError('ENODEV', `driver ${name} is not loaded`);
    return drv;
  }

  private findByName(buf: string): PciDevice | undefined {
    for (const dev of this.devices.values()) if (sysfsStreq(dev.address, buf)) return dev;
    return undefined;
  }

  /** device_attach: the first loaded driver that matches and probes successfully wins; probe errors are swallowed. */
  private attach(dev: PciDevice): void {
    for (const drv of this.drivers.values()) {
      if (dev.driver) return;
      if (this.matches(drv, dev)) this.tryProbe(drv, dev);
    }
  }

  private tryProbe(drv: PciDriver, dev: PciDevice): void {
    try {
      this.probe(drv, dev);
    } catch {
      // Like the kernel: a failed probe leaves the device unbound and the next driver may try.
    }
  }

  private probe(drv: PciDriver, dev: PciDevice): void {
    dev.driver = drv;
    try {
      drv.probe(dev);
    } catch (err) {
      delete dev.driver;
      throw err;
    }
  }

  /** device_release_driver; a promise while the driver's remove() blocks (the device lock is held meanwhile). */
  private detach(dev: PciDevice): void | Promise<void> {
    const drv = dev.driver;
    if (!drv) return;
    const pending = drv.remove(dev);
    if (!pending) {
      delete dev.driver;
      return;
    }
    const releasing = pending.finally(() => {
      if (dev.driver === drv) delete dev.driver;
      delete dev.releasing;
    });
    dev.releasing = releasing;
    return releasing;
  }
}

const UEVENT_ACTIONS = ['add', 'remove', 'change', 'move', 'online', 'offline', 'bind', 'unbind'];

/** Writing an action to uevent re-emits the event (nothing visible here); anything else is EINVAL. */
function assertUeventAction(buf: string): void {
  const action = buf.trim().split(/\s+/)[0] ?? '';
  if (!UEVENT_ACTIONS.includes(action)) throw kernelError('EINVAL', `unknown uevent action ${JSON.stringify(buf)}`);
}

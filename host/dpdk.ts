// Binding an ENI's PCI function to a DPDK driver and back, through sysfs only
// (shared/reference/node-host-interfaces.md §6): no dpdk-devbind, no shell.
//
// bind:   preflight → record → driver_override → unbind → drivers_probe
//         (→ bind, for the errno when the probe bound nothing) → verify.
//         Any failure rolls back to the original driver and verifies that
//         the interface is back (found by MAC), then says which step failed.
//         The override stays set so the binding survives a later probe.
// unbind: unbind from the DPDK driver (bounded: vfio blocks while the device
//         is open) → clear the override → bind the kernel driver → wait for
//         the netdev by MAC (it may come back under another name) → verify.
//
// Every input is validated before a path is built from it. Both directions
// are idempotent and resume from whatever state a crashed attempt left: a
// record under /run (tmpfs, gone on reboot like the binding itself) keeps the
// MAC, original driver and interface name once the netdev has disappeared.
import { isErrno, type Host } from './host.js';
import { AmbiguousMacError, assertInterfaceName, findInterfaceByMac, isDefaultRoute, normalizeMac, pciAddressOf, readRoutes, setMtu, type InterfaceInfo } from './net.js';

export const DPDK_DRIVERS = ['vfio-pci', 'igb_uio', 'uio_pci_generic'] as const;
export type DpdkDriverName = (typeof DPDK_DRIVERS)[number];

const DRIVER_NAME = /^[a-z0-9_-]{1,32}$/;
const PCI_ADDRESS = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;
const GROUP_ID = /^[0-9]{1,10}$/;

const PCI_DEVICES = '/sys/bus/pci/devices';
const PCI_DRIVERS = '/sys/bus/pci/drivers';
const DRIVERS_PROBE = '/sys/bus/pci/drivers_probe';
const IOMMU_GROUPS = '/sys/kernel/iommu_groups';
const NOIOMMU_PARAMETER = '/sys/module/vfio/parameters/enable_unsafe_noiommu_mode';
const NOIOMMU_GROUP_NAME = 'vfio-noiommu';
const RECORD_PARENT = '/run/nodeeni';
const RECORD_DIR = '/run/nodeeni/dpdk';

export interface DpdkBinding {
  pciAddress: string;
  driver: string;
  originalDriver: string;
  /** The netdev's name before binding (it no longer exists while bound). */
  interfaceName: string;
  macAddress: string;
  /** IOMMU group number; '' for drivers other than vfio-pci. */
  iommuGroup: string;
  /** /dev/vfio/<N> or /dev/vfio/noiommu-<N>; '' for drivers other than vfio-pci. */
  vfioDevice: string;
  noIommu: boolean;
}

export interface DpdkUnbound {
  interfaceName: string;
  pciAddress: string;
  driver: string;
  /** The device left the host (the ENI was detached or the instance replaced): nothing to give back. */
  gone?: true;
}

export interface DpdkTimings {
  /** Bound on each write to the device: vfio's unbind blocks while userspace holds the device (default 10 s). */
  writeTimeoutMs?: number;
  /** How long to wait for the netdev to come back after a rebind (default 10 s). */
  netdevTimeoutMs?: number;
  pollMs?: number;
}

export interface BindOptions extends DpdkTimings {
  macAddress: string;
  driver: string;
  expectedPciAddress?: string;
  primaryMac?: string;
  /** Switch vfio's no-IOMMU mode on when the host has no IOMMU (else refuse). */
  enableNoIommu: boolean;
}

export interface UnbindOptions extends DpdkTimings {
  macAddress: string;
  pciAddress: string;
  originalDriver: string;
  mtu?: number;
}

export type DpdkErrorKind =
  | 'InvalidInput'
  | 'DriverMissing'
  | 'NoIommuDisabled'
  | 'InterfaceInUse'
  | 'PciAddressMismatch'
  | 'NotFound'
  | 'BindFailed'
  | 'RollbackFailed'
  | 'DeviceInUse'
  | 'UnbindFailed';

export class DpdkError extends Error {
  constructor(
    readonly kind: DpdkErrorKind,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'DpdkError';
  }
}

// ---- validation ----

export function validatePciAddress(raw: string): string {
  const s = typeof raw === 'string' ? raw.toLowerCase() : '';
  if (!PCI_ADDRESS.test(s)) throw new DpdkError('InvalidInput', `not a PCI address (DDDD:BB:DD.F): ${JSON.stringify(raw)}`, { value: String(raw) });
  return s;
}

export function validateDriverName(raw: string): string {
  if (typeof raw !== 'string' || !DRIVER_NAME.test(raw)) throw new DpdkError('InvalidInput', `not a driver name: ${JSON.stringify(raw)}`, { value: String(raw) });
  return raw;
}

export function validateDpdkDriver(raw: string): DpdkDriverName {
  const name = validateDriverName(raw);
  if (!isDpdkDriver(name)) throw new DpdkError('InvalidInput', `${name} is not a DPDK driver (one of ${DPDK_DRIVERS.join(', ')})`, { value: name });
  return name;
}

export function isDpdkDriver(name: string): name is DpdkDriverName {
  return (DPDK_DRIVERS as readonly string[]).includes(name);
}

function parseMac(raw: string, what: string): string {
  try {
    return normalizeMac(raw);
  } catch {
    throw new DpdkError('InvalidInput', `${what} is not a MAC address: ${JSON.stringify(raw)}`, { value: String(raw) });
  }
}

// ---- inspection ----

export interface PciDeviceState {
  pciAddress: string;
  /** Bound driver; absent while unbound. */
  driver?: string;
  driverOverride?: string;
  /** Netdevs under the device (a network driver is bound). */
  netdevs: string[];
}

export interface InterfaceDevice extends PciDeviceState {
  interfaceName: string;
  macAddress: string;
}

const devicePath = (bdf: string, attribute?: string) => (attribute === undefined ? `${PCI_DEVICES}/${bdf}` : `${PCI_DEVICES}/${bdf}/${attribute}`);

/** Driver link, driver_override and net/ of one PCI function; NotFound when it is not on the bus. */
export async function inspectPciDevice(host: Host, pciAddress: string): Promise<PciDeviceState> {
  const bdf = validatePciAddress(pciAddress);
  if (!(await host.exists(devicePath(bdf)))) throw new DpdkError('NotFound', `PCI device ${bdf} is not present`, { pciAddress: bdf, devicePresent: false });
  const [driver, override, netdevs] = await Promise.all([
    host.readlink(devicePath(bdf, 'driver')).then(basename, orUndefinedOn('ENOENT')),
    host.readFile(devicePath(bdf, 'driver_override')).then((s) => s.trim(), orUndefinedOn('ENOENT')),
    host.readdir(devicePath(bdf, 'net')).catch((err: unknown) => {
      if (isErrno(err, 'ENOENT')) return [];
      throw err;
    }),
  ]);
  const state: PciDeviceState = { pciAddress: bdf, netdevs };
  if (driver !== undefined) state.driver = validateDriverName(driver);
  // An unset override reads "(null)".
  if (override !== undefined && override !== '' && override !== '(null)') state.driverOverride = override;
  return state;
}

/** The PCI function behind a netdev, by the basename of its `device` link. */
export async function inspectInterface(host: Host, interfaceName: string): Promise<InterfaceDevice> {
  try {
    assertInterfaceName(interfaceName);
  } catch (err) {
    throw new DpdkError('InvalidInput', (err as Error).message, { value: String(interfaceName) });
  }
  const bdf = await pciAddressOf(host, interfaceName);
  if (bdf === undefined) throw new DpdkError('InvalidInput', `${interfaceName} is not backed by a PCI function`, { interfaceName });
  const macAddress = (await host.readFile(`/sys/class/net/${interfaceName}/address`)).trim().toLowerCase();
  return { ...(await inspectPciDevice(host, bdf)), interfaceName, macAddress };
}

/** The device whose netdev carries `mac` (device-backed interfaces only); undefined while there is none. */
export async function findDeviceByMac(host: Host, mac: string): Promise<InterfaceDevice | undefined> {
  let iface: InterfaceInfo | undefined;
  try {
    iface = await findInterfaceByMac(host, mac, { physicalOnly: true });
  } catch (err) {
    if (err instanceof AmbiguousMacError) throw new DpdkError('InterfaceInUse', err.message, { macAddress: err.macAddress, interfaceNames: err.interfaceNames });
    throw err;
  }
  if (!iface) return undefined;
  try {
    return await inspectInterface(host, iface.name);
  } catch (err) {
    // Renamed or gone between the scan and the inspection.
    if (isErrno(err, 'ENOENT', 'ENODEV')) return undefined;
    throw err;
  }
}

// ---- preflight ----

/** True when the platform put devices into IOMMU groups (groups vfio fabricated in no-IOMMU mode do not count). */
export async function hostHasIommu(host: Host): Promise<boolean> {
  let groups: string[];
  try {
    groups = await host.readdir(IOMMU_GROUPS);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    throw err;
  }
  for (const id of groups.filter((g) => GROUP_ID.test(g))) {
    const name = await host.readFile(`${IOMMU_GROUPS}/${id}/name`).then((s) => s.trim(), orUndefinedOn('ENOENT'));
    if (name !== NOIOMMU_GROUP_NAME) return true;
  }
  return false;
}

async function requireDriverLoaded(host: Host, driver: string): Promise<void> {
  if (!(await host.exists(`${PCI_DRIVERS}/${driver}`))) {
    throw new DpdkError('DriverMissing', `driver ${driver} is not loaded (${PCI_DRIVERS}/${driver} is missing); load the module on the host`, { driver });
  }
}

/** vfio-pci needs an IOMMU group: the platform's, or one no-IOMMU mode fabricates. Returns whether no-IOMMU mode is used. */
async function ensureIommuOrNoIommu(host: Host, enableNoIommu: boolean): Promise<boolean> {
  if (await hostHasIommu(host)) return false;
  const current = await host.readFile(NOIOMMU_PARAMETER).then((s) => s.trim(), orUndefinedOn('ENOENT'));
  if (current === undefined) {
    throw new DpdkError('NoIommuDisabled', `the host has no IOMMU and ${NOIOMMU_PARAMETER} does not exist (vfio not loaded, or a kernel without CONFIG_VFIO_NOIOMMU)`);
  }
  if (current === 'Y') return true;
  if (!enableNoIommu) {
    throw new DpdkError('NoIommuDisabled', `the host has no IOMMU and vfio no-IOMMU mode is off; the node agent is configured not to enable it (enableNoIommu=false)`);
  }
  try {
    await host.write(NOIOMMU_PARAMETER, '1');
  } catch (err) {
    throw new DpdkError('NoIommuDisabled', `the host has no IOMMU and enabling vfio no-IOMMU mode failed (needs CAP_SYS_RAWIO): ${(err as Error).message}`);
  }
  const after = (await host.readFile(NOIOMMU_PARAMETER)).trim();
  if (after !== 'Y') throw new DpdkError('NoIommuDisabled', `wrote 1 to ${NOIOMMU_PARAMETER} but it reads ${JSON.stringify(after)}`);
  return true;
}

/**
 * dpdk-devbind's "Active" rule and more: never take away an interface the
 * node uses: the primary ENI, one carrying any IPv4 route (the default route
 * included) or any IPv6 address other than link-local.
 */
export async function refuseInterfaceInUse(host: Host, iface: { interfaceName: string; macAddress: string }, primaryMac?: string): Promise<void> {
  const name = iface.interfaceName;
  if (primaryMac !== undefined && iface.macAddress === primaryMac) {
    throw new DpdkError('InterfaceInUse', `${name} (${iface.macAddress}) is the node's primary interface; refusing to bind it to a DPDK driver`, { interfaceName: name, reason: 'primary' });
  }
  const routes = (await readRoutes(host)).filter((r) => r.interfaceName === name);
  if (routes.some(isDefaultRoute)) {
    throw new DpdkError('InterfaceInUse', `${name} carries the default route; refusing to bind it to a DPDK driver`, { interfaceName: name, reason: 'default-route' });
  }
  if (routes.length > 0) {
    const list = routes.map((r) => `${r.destination}/${r.mask}`).join(', ');
    throw new DpdkError('InterfaceInUse', `${name} carries routes (${list}); refusing to bind it to a DPDK driver`, { interfaceName: name, reason: 'routes' });
  }
  const addresses = (await readIpv6Addresses(host)).filter((a) => a.interfaceName === name && !a.linkLocal);
  if (addresses.length > 0) {
    throw new DpdkError('InterfaceInUse', `${name} has IPv6 addresses (${addresses.map((a) => a.address).join(', ')}); refusing to bind it to a DPDK driver`, { interfaceName: name, reason: 'addresses' });
  }
}

/** /proc/net/if_inet6: "<32 hex> <ifindex> <plen> <scope> <flags> <name>"; absent when IPv6 is off. */
async function readIpv6Addresses(host: Host): Promise<Array<{ interfaceName: string; address: string; linkLocal: boolean }>> {
  const text = await host.readFile('/proc/net/if_inet6').catch(orUndefinedOn('ENOENT'));
  if (text === undefined) return [];
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
    .map((line) => {
      const cols = line.split(/\s+/);
      const hex = cols[0] ?? '';
      if (cols.length < 6 || !/^[0-9a-f]{32}$/i.test(hex)) throw new Error(`malformed /proc/net/if_inet6 line: ${JSON.stringify(line)}`);
      // fe80::/10
      const linkLocal = (parseInt(hex.slice(0, 3), 16) & 0xffc) === 0xfe8;
      return { interfaceName: cols[5]!, address: hex.match(/.{4}/g)!.join(':'), linkLocal };
    });
}

// ---- the record of a binding ----

/** What a bind wrote under /run/nodeeni/dpdk before it took the netdev away (tmpfs: gone after a reboot). */
export interface BindingRecord {
  pciAddress: string;
  macAddress: string;
  driver: DpdkDriverName;
  originalDriver: string;
  interfaceName: string;
  state: 'bound' | 'released';
}

const recordPath = (bdf: string) => `${RECORD_DIR}/${validatePciAddress(bdf)}.json`;

async function writeRecord(host: Host, record: BindingRecord): Promise<void> {
  for (const dir of [RECORD_PARENT, RECORD_DIR]) {
    await host.mkdir(dir).catch((err: unknown) => {
      if (!isErrno(err, 'EEXIST')) throw err;
    });
  }
  await host.writeFileAtomic(recordPath(record.pciAddress), `${JSON.stringify(record)}\n`, 0o600);
}

async function releaseRecord(host: Host, record: BindingRecord): Promise<void> {
  await writeRecord(host, { ...record, state: 'released' });
}

/** Parsed and validated: a record is host data too, and paths are built from it. */
function parseRecord(text: string): BindingRecord | undefined {
  try {
    const r = JSON.parse(text) as Partial<BindingRecord>;
    if (r.state !== 'bound' && r.state !== 'released') return undefined;
    assertInterfaceName(String(r.interfaceName));
    return {
      pciAddress: validatePciAddress(String(r.pciAddress)),
      macAddress: normalizeMac(String(r.macAddress)),
      driver: validateDpdkDriver(String(r.driver)),
      originalDriver: validateDriverName(String(r.originalDriver)),
      interfaceName: String(r.interfaceName),
      state: r.state,
    };
  } catch {
    return undefined;
  }
}

export async function readRecord(host: Host, bdf: string): Promise<BindingRecord | undefined> {
  const text = await host.readFile(recordPath(bdf)).catch(orUndefinedOn('ENOENT'));
  return text === undefined ? undefined : parseRecord(text);
}

export async function findBoundRecordByMac(host: Host, mac: string): Promise<BindingRecord | undefined> {
  const names = await host.readdir(RECORD_DIR).catch((err: unknown) => {
    if (isErrno(err, 'ENOENT')) return [] as string[];
    throw err;
  });
  for (const name of names) {
    const bdf = name.endsWith('.json') ? name.slice(0, -'.json'.length) : '';
    if (!PCI_ADDRESS.test(bdf)) continue;
    const record = await readRecord(host, bdf);
    if (record?.state === 'bound' && record.macAddress === mac) return record;
  }
  return undefined;
}

// ---- bounded writes ----

/**
 * Writes still running per host and device. A write that outlived its bound
 * keeps a thread blocked in the kernel; no second write is stacked on the same
 * device until it returns (the device lock would block that one too).
 */
const inFlight = new WeakMap<Host, Map<string, Promise<void>>>();
const TIMED_OUT = Symbol('timed out');

async function withinMs<T>(p: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function deviceInUse(bdf: string, path: string, ms: number): DpdkError {
  return new DpdkError('DeviceInUse', `writing ${path} for ${bdf} did not return within ${ms} ms: the device is in use (a DPDK process or the device plugin holds it open); stop its users first`, {
    pciAddress: bdf,
    path,
  });
}

async function waitForPendingWrite(host: Host, bdf: string, ms: number, path: string): Promise<void> {
  const pending = inFlight.get(host)?.get(bdf);
  if (pending && (await withinMs(pending, ms)) === TIMED_OUT) throw deviceInUse(bdf, path, ms);
}

async function boundedWrite(host: Host, bdf: string, path: string, data: string, ms: number): Promise<void> {
  await waitForPendingWrite(host, bdf, ms, path);
  const writes = inFlight.get(host) ?? new Map<string, Promise<void>>();
  inFlight.set(host, writes);
  const write = host.write(path, data);
  const settled: Promise<void> = write.then(
    () => undefined,
    () => undefined,
  );
  writes.set(bdf, settled);
  void settled.then(() => {
    if (writes.get(bdf) === settled) writes.delete(bdf);
  });
  if ((await withinMs(write, ms)) === TIMED_OUT) throw deviceInUse(bdf, path, ms);
}

// ---- bind ----

type BindStep = 'driver_override' | 'unbind' | 'drivers_probe' | 'bind' | 'verify';

interface Timings {
  writeMs: number;
  netdevMs: number;
  pollMs: number;
}

function timings(t: DpdkTimings): Timings {
  return { writeMs: t.writeTimeoutMs ?? 10_000, netdevMs: t.netdevTimeoutMs ?? 10_000, pollMs: t.pollMs ?? 100 };
}

export async function bindToDpdk(host: Host, opts: BindOptions): Promise<DpdkBinding> {
  const mac = parseMac(opts.macAddress, 'macAddress');
  const driver = validateDpdkDriver(opts.driver);
  const expected = opts.expectedPciAddress === undefined ? undefined : validatePciAddress(opts.expectedPciAddress);
  const primary = opts.primaryMac === undefined ? undefined : parseMac(opts.primaryMac, 'primaryMac');
  const t = timings(opts);
  const checkExpected = (found: string) => {
    if (expected !== undefined && found !== expected) {
      throw new DpdkError('PciAddressMismatch', `the interface with MAC ${mac} is at PCI address ${found}, not at the expected ${expected} (dpdkPCIAddress)`, {
        macAddress: mac,
        pciAddress: found,
        expectedPciAddress: expected,
      });
    }
  };

  const iface = await findDeviceByMac(host, mac);
  if (iface) {
    // On its kernel driver: a fresh bind.
    checkExpected(iface.pciAddress);
    if (iface.driver === undefined) throw new DpdkError('NotFound', `${iface.interfaceName} (${iface.pciAddress}) has no driver yet`, { macAddress: mac });
    await requireDriverLoaded(host, driver);
    await refuseInterfaceInUse(host, iface, primary);
    const noIommu = driver === 'vfio-pci' ? await ensureIommuOrNoIommu(host, opts.enableNoIommu) : false;
    const record: BindingRecord = { pciAddress: iface.pciAddress, macAddress: mac, driver, originalDriver: iface.driver, interfaceName: iface.interfaceName, state: 'bound' };
    await writeRecord(host, record);
    return runBindSteps(host, record, noIommu, t);
  }

  // No netdev: bound already, or an earlier attempt stopped half-way.
  const record = await findBoundRecordByMac(host, mac);
  if (!record) throw new DpdkError('NotFound', `no interface with MAC ${mac} on this host yet`, { macAddress: mac });
  checkExpected(record.pciAddress);
  if (record.driver !== driver) {
    throw new DpdkError('InterfaceInUse', `${record.pciAddress} (MAC ${mac}) is bound to ${record.driver}, not ${driver}; unbind it first`, { pciAddress: record.pciAddress, driver: record.driver });
  }
  const state = await inspectPciDevice(host, record.pciAddress);
  if (state.driver === driver) return verifyBound(host, record).catch((cause: unknown) => rollBack(host, record, 'verify', cause, t));
  if (state.driver === record.originalDriver) {
    throw new DpdkError('NotFound', `${record.pciAddress} is on ${record.originalDriver} but no interface with MAC ${mac} is there yet`, { macAddress: mac, pciAddress: record.pciAddress });
  }
  if (state.driver !== undefined) {
    throw new DpdkError('InterfaceInUse', `${record.pciAddress} (MAC ${mac}) is bound to ${state.driver}, neither ${record.originalDriver} nor ${driver}`, { pciAddress: record.pciAddress, driver: state.driver });
  }
  // Unbound: finish what the earlier attempt started.
  await requireDriverLoaded(host, driver);
  const noIommu = driver === 'vfio-pci' ? await ensureIommuOrNoIommu(host, opts.enableNoIommu) : false;
  return runBindSteps(host, record, noIommu, t);
}

async function runBindSteps(host: Host, record: BindingRecord, noIommu: boolean, t: Timings): Promise<DpdkBinding> {
  const bdf = record.pciAddress;
  let step: BindStep = 'driver_override';
  try {
    // 1. Only the target driver may claim the device from now on (kept set: the binding is sticky).
    await boundedWrite(host, bdf, devicePath(bdf, 'driver_override'), record.driver, t.writeMs);
    // 2. Release it from the kernel driver (its netdev disappears).
    step = 'unbind';
    const before = await inspectPciDevice(host, bdf);
    if (before.driver === record.originalDriver) await boundedWrite(host, bdf, `${PCI_DRIVERS}/${record.originalDriver}/unbind`, bdf, t.writeMs);
    // 3. Let the bus match it again; the override leaves only the target driver.
    step = 'drivers_probe';
    await boundedWrite(host, bdf, DRIVERS_PROBE, bdf, t.writeMs);
    // drivers_probe succeeds even when nothing binds; a bind write reports why.
    if ((await inspectPciDevice(host, bdf)).driver === undefined) {
      step = 'bind';
      await boundedWrite(host, bdf, `${PCI_DRIVERS}/${record.driver}/bind`, bdf, t.writeMs);
    }
    step = 'verify';
    const binding = await verifyBound(host, record);
    if (binding.noIommu !== noIommu && record.driver === 'vfio-pci') {
      throw new Error(`IOMMU mode changed during the bind: expected ${noIommu ? 'a no-IOMMU' : 'an IOMMU'} group, got ${binding.vfioDevice}`);
    }
    return binding;
  } catch (cause) {
    return rollBack(host, record, step, cause, t);
  }
}

/** §6.4: driver link, override, vfio group and its device node, netdev gone. */
async function verifyBound(host: Host, record: BindingRecord): Promise<DpdkBinding> {
  const bdf = record.pciAddress;
  const state = await inspectPciDevice(host, bdf);
  const problems: string[] = [];
  if (state.driver !== record.driver) problems.push(`driver is ${state.driver ?? 'none'}, not ${record.driver}`);
  if (state.driverOverride !== record.driver) problems.push(`driver_override is ${state.driverOverride ?? '(null)'}`);
  if (state.netdevs.length > 0) problems.push(`net/${state.netdevs.join(',')} still present`);
  if ((await findDeviceByMac(host, record.macAddress)) !== undefined) problems.push(`an interface with MAC ${record.macAddress} still exists`);
  let iommuGroup = '';
  let vfioDevice = '';
  let noIommu = false;
  if (record.driver === 'vfio-pci' && state.driver === 'vfio-pci') {
    const group = await host.readlink(devicePath(bdf, 'iommu_group')).then(basename, orUndefinedOn('ENOENT'));
    if (group === undefined || !GROUP_ID.test(group)) {
      problems.push(`iommu_group is ${group === undefined ? 'missing' : JSON.stringify(group)}`);
    } else {
      const name = await host.readFile(`${IOMMU_GROUPS}/${group}/name`).then((s) => s.trim(), orUndefinedOn('ENOENT'));
      noIommu = name === NOIOMMU_GROUP_NAME;
      iommuGroup = group;
      vfioDevice = noIommu ? `/dev/vfio/noiommu-${group}` : `/dev/vfio/${group}`;
      if (!(await host.exists(vfioDevice))) problems.push(`${vfioDevice} does not exist`);
    }
  }
  if (problems.length > 0) throw new Error(`${bdf} is not bound as expected: ${problems.join('; ')}`);
  return { pciAddress: bdf, driver: record.driver, originalDriver: record.originalDriver, interfaceName: record.interfaceName, macAddress: record.macAddress, iommuGroup, vfioDevice, noIommu };
}

/** Back to the original driver and verified; always throws (BindFailed, or RollbackFailed). */
async function rollBack(host: Host, record: BindingRecord, failedStep: BindStep, cause: unknown, t: Timings): Promise<never> {
  const bdf = record.pciAddress;
  const causeText = describe(cause);
  const details = { pciAddress: bdf, driver: record.driver, originalDriver: record.originalDriver, macAddress: record.macAddress, step: failedStep, cause: causeText, errno: errnoOf(cause) };
  let rollbackStep = 'inspect';
  try {
    let state = await inspectPciDevice(host, bdf);
    if (state.driver !== undefined && state.driver !== record.originalDriver) {
      rollbackStep = `unbind from ${state.driver}`;
      await boundedWrite(host, bdf, `${PCI_DRIVERS}/${state.driver}/unbind`, bdf, t.writeMs);
    }
    if (state.driverOverride !== undefined) {
      rollbackStep = 'clear driver_override';
      await boundedWrite(host, bdf, devicePath(bdf, 'driver_override'), '\n', t.writeMs);
    }
    state = await inspectPciDevice(host, bdf);
    if (state.driver === undefined) {
      rollbackStep = `bind to ${record.originalDriver}`;
      await rebindKernelDriver(host, bdf, record.originalDriver, t);
    }
    rollbackStep = `find the interface with MAC ${record.macAddress} again`;
    const back = await waitForNetdev(host, record.macAddress, t);
    rollbackStep = 'verify';
    const verified = await inspectPciDevice(host, bdf);
    const problems = [
      ...(back === undefined ? [`no interface with MAC ${record.macAddress} within ${t.netdevMs} ms`] : []),
      ...(back !== undefined && back.pciAddress !== bdf ? [`MAC ${record.macAddress} is now at ${back.pciAddress}`] : []),
      ...(verified.driver !== record.originalDriver ? [`driver is ${verified.driver ?? 'none'}`] : []),
      ...(verified.driverOverride !== undefined ? [`driver_override is still ${verified.driverOverride}`] : []),
    ];
    if (problems.length > 0) throw new Error(problems.join('; '));
    await releaseRecord(host, record);
    throw new DpdkError(
      'BindFailed',
      `binding ${bdf} to ${record.driver} failed at step ${failedStep}: ${causeText}; rolled back: ${bdf} is on ${record.originalDriver} again as ${back!.interfaceName}`,
      { ...details, rolledBack: true, interfaceName: back!.interfaceName },
    );
  } catch (err) {
    if (err instanceof DpdkError && err.kind === 'BindFailed') throw err;
    const state = await inspectPciDevice(host, bdf).catch(() => undefined);
    throw new DpdkError(
      'RollbackFailed',
      `binding ${bdf} to ${record.driver} failed at step ${failedStep}: ${causeText}; rollback failed at "${rollbackStep}": ${describe(err)}; the device is now on ${state?.driver ?? 'no driver'}`,
      { ...details, rolledBack: false, rollbackStep, rollbackCause: describe(err), currentDriver: state?.driver ?? null },
    );
  }
}

/** bind to the kernel driver for its errno; if that fails, drivers_probe (the override is clear, the ID table matches). */
async function rebindKernelDriver(host: Host, bdf: string, driver: string, t: Timings): Promise<void> {
  try {
    await boundedWrite(host, bdf, `${PCI_DRIVERS}/${driver}/bind`, bdf, t.writeMs);
  } catch (bindErr) {
    if (bindErr instanceof DpdkError) throw bindErr;
    await boundedWrite(host, bdf, DRIVERS_PROBE, bdf, t.writeMs);
    const state = await inspectPciDevice(host, bdf);
    if (state.driver !== driver) throw new Error(`bind to ${driver} failed (${describe(bindErr)}) and drivers_probe left the device on ${state.driver ?? 'no driver'}`);
  }
}

/** The netdev comes back asynchronously (and udev may rename it): poll by MAC. */
async function waitForNetdev(host: Host, mac: string, t: Timings): Promise<InterfaceDevice | undefined> {
  const deadline = Date.now() + t.netdevMs;
  for (;;) {
    const found = await findDeviceByMac(host, mac);
    if (found || Date.now() >= deadline) return found;
    await new Promise((resolve) => setTimeout(resolve, t.pollMs));
  }
}

// ---- unbind ----

export async function unbindFromDpdk(host: Host, opts: UnbindOptions): Promise<DpdkUnbound> {
  const mac = parseMac(opts.macAddress, 'macAddress');
  const bdf = validatePciAddress(opts.pciAddress);
  const original = validateDriverName(opts.originalDriver);
  if (isDpdkDriver(original)) throw new DpdkError('InvalidInput', `originalDriver must be the kernel driver, not ${original}`, { value: original });
  if (opts.mtu !== undefined && !Number.isSafeInteger(opts.mtu)) throw new DpdkError('InvalidInput', `MTU must be an integer, got ${opts.mtu}`, { value: opts.mtu });
  const t = timings(opts);

  // An earlier attempt's write may still hang in the kernel: nothing new until it returns.
  await waitForPendingWrite(host, bdf, t.writeMs, `${PCI_DEVICES}/${bdf}`);
  // The address alone does not say the device is ours: a node name can come back on another
  // machine (Node deleted and re-created for another instance, seed 002), whose agent then
  // runs the old ENI's teardown, and there the same PCI address may hold a device this ENI
  // never had (another ENI, bound by someone else). Such a device is left alone, untouched.
  if (!(await host.exists(devicePath(bdf))) || !(await isDeviceOf(host, bdf, mac))) {
    const elsewhere = await findDeviceByMac(host, mac);
    if (elsewhere?.driver === original) return finishUnbind(host, elsewhere, original, opts.mtu);
    // Hot-unplugged, or on another machine: no device is left without a driver, and teardown must not wait for one to return.
    return { interfaceName: '', pciAddress: bdf, driver: '', gone: true };
  }

  let state = await inspectPciDevice(host, bdf);
  if (state.driver !== undefined && state.driver !== original) {
    if (!isDpdkDriver(state.driver)) {
      throw new DpdkError('UnbindFailed', `${bdf} is bound to ${state.driver}, which is neither ${original} nor a DPDK driver; leaving it alone`, { pciAddress: bdf, driver: state.driver, retryable: false });
    }
    await boundedWrite(host, bdf, `${PCI_DRIVERS}/${state.driver}/unbind`, bdf, t.writeMs).catch((err: unknown) => {
      // ENODEV: it let go in the meantime.
      if (!isErrno(err, 'ENODEV')) throw err;
    });
    state = await inspectPciDevice(host, bdf);
  }
  if (state.driverOverride !== undefined) {
    await boundedWrite(host, bdf, devicePath(bdf, 'driver_override'), '\n', t.writeMs);
  }
  if (state.driver === undefined) {
    try {
      await rebindKernelDriver(host, bdf, original, t);
    } catch (err) {
      if (err instanceof DpdkError) throw err;
      throw new DpdkError('UnbindFailed', `${bdf} has no driver and binding it to ${original} failed: ${describe(err)}`, { pciAddress: bdf, driver: original, retryable: true, errno: errnoOf(err) });
    }
  }
  state = await inspectPciDevice(host, bdf);
  if (state.driver !== original || state.driverOverride !== undefined) {
    throw new DpdkError('UnbindFailed', `${bdf} is on ${state.driver ?? 'no driver'} (driver_override ${state.driverOverride ?? '(null)'}) after rebinding ${original}`, { pciAddress: bdf, retryable: true });
  }
  const iface = await waitForNetdev(host, mac, t);
  if (!iface) throw new DpdkError('NotFound', `${bdf} is on ${original} but no interface with MAC ${mac} appeared within ${t.netdevMs} ms`, { macAddress: mac, pciAddress: bdf });
  if (iface.pciAddress !== bdf) {
    throw new DpdkError('UnbindFailed', `MAC ${mac} belongs to ${iface.interfaceName} at ${iface.pciAddress}, not ${bdf}`, { macAddress: mac, pciAddress: bdf, retryable: false });
  }
  return finishUnbind(host, iface, original, opts.mtu);
}

/**
 * Whether the PCI function at `bdf` is the ENI with this MAC: a netdev of it carries the MAC,
 * or, with no netdev (bound to a DPDK driver, or to none half-way through a bind or unbind),
 * this host's binding record for the address names the MAC. Every bind writes that record
 * before it takes the netdev away, so a device without one was not bound by us.
 */
async function isDeviceOf(host: Host, bdf: string, mac: string): Promise<boolean> {
  let state: PciDeviceState;
  try {
    state = await inspectPciDevice(host, bdf);
  } catch (err) {
    // Unplugged since the caller looked: not here.
    if (err instanceof DpdkError && err.kind === 'NotFound') return false;
    throw err;
  }
  if (state.netdevs.length > 0) {
    for (const name of state.netdevs) {
      try {
        assertInterfaceName(name);
      } catch {
        continue;
      }
      const address = await host.readFile(`/sys/class/net/${name}/address`).then((s) => s.trim().toLowerCase(), orUndefinedOn('ENOENT', 'ENODEV'));
      if (address === mac) return true;
    }
    return false;
  }
  return (await readRecord(host, bdf))?.macAddress === mac;
}

async function finishUnbind(host: Host, iface: InterfaceDevice, driver: string, mtu: number | undefined): Promise<DpdkUnbound> {
  if (!iface.netdevs.includes(iface.interfaceName)) throw new DpdkError('NotFound', `${iface.pciAddress} has no net/${iface.interfaceName}`, { pciAddress: iface.pciAddress });
  if (mtu !== undefined) {
    const current = Number((await host.readFile(`/sys/class/net/${iface.interfaceName}/mtu`)).trim());
    if (current !== mtu) await setMtu(host, iface.interfaceName, mtu);
  }
  const record = await readRecord(host, iface.pciAddress);
  if (record?.state === 'bound' && record.macAddress === iface.macAddress) await releaseRecord(host, record);
  return { interfaceName: iface.interfaceName, pciAddress: iface.pciAddress, driver };
}

// ---- helpers ----

function basename(link: string): string {
  return link.split('/').filter((s) => s.length > 0).at(-1) ?? '';
}

function orUndefinedOn(...codes: string[]) {
  return (err: unknown): undefined => {
    if (isErrno(err, ...codes)) return undefined;
    throw err;
  };
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function errnoOf(err: unknown): string | null {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : null;
}

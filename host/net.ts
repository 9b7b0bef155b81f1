// Network interfaces over the Host port, through sysfs only:
// /sys/class/net/<if>/{address,mtu,flags,operstate} and the `device` link.
// An ENI is found by its MAC address, never by its name or a device-index
// guess (the original agent's defect, anchor-controller.md §4.2).
import { isErrno, type Host } from './host.js';

export const IFF_UP = 0x1;

const CLASS_NET = '/sys/class/net';
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const PCI_ADDRESS = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;

export interface InterfaceInfo {
  name: string;
  macAddress: string;
  mtu: number;
  flags: number;
  up: boolean;
  operstate?: string;
  /** True when /sys/class/net/<if>/device exists: the interface is backed by a device, not virtual. */
  hasDevice: boolean;
  /** BDF when the backing device is a PCI function (ENA); absent for virtual or non-PCI parents (virtio). */
  pciAddress?: string;
}

/** Lower-case colon form of a 48-bit MAC; throws on anything else. */
export function normalizeMac(mac: string): string {
  const out = mac.trim().toLowerCase().replace(/-/g, ':');
  if (!MAC.test(out)) throw new Error(`not a MAC address: ${JSON.stringify(mac)}`);
  return out;
}

/** Interface names are path segments here, so refuse anything the kernel would not allow (dev_valid_name). */
export function assertInterfaceName(name: string): string {
  if (name.length === 0 || name.length > 15 || name === '.' || name === '..' || /[/:\s\0]/.test(name)) {
    throw new Error(`not a valid interface name: ${JSON.stringify(name)}`);
  }
  return name;
}

function ifPath(name: string, attribute?: string): string {
  assertInterfaceName(name);
  return attribute === undefined ? `${CLASS_NET}/${name}` : `${CLASS_NET}/${name}/${attribute}`;
}

export async function listInterfaces(host: Host): Promise<string[]> {
  return host.readdir(CLASS_NET);
}

/** BDF of the interface's parent device, from the basename of the `device` link (e.g. `../../../0000:00:06.0`). */
export async function pciAddressOf(host: Host, name: string): Promise<string | undefined> {
  try {
    const target = await host.readlink(ifPath(name, 'device'));
    const base = target.split('/').filter((s) => s.length > 0).at(-1) ?? '';
    return PCI_ADDRESS.test(base) ? base : undefined;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
}

export async function readInterface(host: Host, name: string): Promise<InterfaceInfo> {
  const [address, mtu, flags, operstate, hasDevice, pciAddress] = await Promise.all([
    host.readFile(ifPath(name, 'address')),
    host.readFile(ifPath(name, 'mtu')),
    host.readFile(ifPath(name, 'flags')),
    host.readFile(ifPath(name, 'operstate')).then(
      (s) => s.trim(),
      (err: unknown) => {
        if (isErrno(err, 'ENOENT')) return undefined;
        throw err;
      },
    ),
    host.exists(ifPath(name, 'device')),
    pciAddressOf(host, name),
  ]);
  const flagBits = parseIntStrict(flags, `${name} flags`);
  const info: InterfaceInfo = {
    name,
    macAddress: address.trim().toLowerCase(),
    mtu: parseIntStrict(mtu, `${name} mtu`),
    flags: flagBits,
    up: (flagBits & IFF_UP) !== 0,
    hasDevice,
  };
  if (operstate !== undefined) info.operstate = operstate;
  if (pciAddress !== undefined) info.pciAddress = pciAddress;
  return info;
}

/**
 * Every interface whose address is `mac`; interfaces that vanish during the
 * scan are skipped. A vanishing interface answers ENOENT (gone from the
 * directory), ENODEV (attribute opened before its removal) or EINVAL from
 * read(2): net-sysfs's show functions return -EINVAL once unregistration has
 * begun (dev_isalive() false) until the files are removed, which a scan hits
 * whenever pods' veths come and go (test/real-kernel.test.ts reproduces it).
 */
export async function findInterfacesByMac(host: Host, mac: string): Promise<InterfaceInfo[]> {
  return (await findInterfacesByMacs(host, [mac])).get(normalizeMac(mac))!;
}

/** findInterfacesByMac for several MACs in one scan of /sys/class/net; keyed by the normalized MAC. */
export async function findInterfacesByMacs(host: Host, macs: readonly string[]): Promise<Map<string, InterfaceInfo[]>> {
  const out = new Map(macs.map((m) => [normalizeMac(m), [] as InterfaceInfo[]]));
  for (const name of await listInterfaces(host)) {
    try {
      const matches = out.get((await host.readFile(ifPath(name, 'address'))).trim().toLowerCase());
      if (matches) matches.push(await readInterface(host, name));
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENODEV') || (isErrno(err, 'EINVAL') && err.syscall === 'read')) continue;
      throw err;
    }
  }
  return out;
}

export class AmbiguousMacError extends Error {
  constructor(
    readonly macAddress: string,
    readonly interfaceNames: string[],
  ) {
    super(`MAC ${macAddress} is carried by several interfaces: ${interfaceNames.join(', ')}`);
    this.name = 'AmbiguousMacError';
  }
}

/**
 * The interface with this MAC. Virtual interfaces can copy a device's MAC (a
 * bridge takes its first port's, VLANs and bonds inherit it), so an interface
 * backed by a device (`device` link present) wins over virtual ones.
 * `physicalOnly` ignores virtual interfaces altogether: an ENI is always a
 * PCI device. lo (00:00:00:00:00:00) is virtual, so it is found only without
 * `physicalOnly`. Two candidates of the winning kind → AmbiguousMacError.
 */
export async function findInterfaceByMac(host: Host, mac: string, opts: { physicalOnly?: boolean } = {}): Promise<InterfaceInfo | undefined> {
  return pickInterface(mac, await findInterfacesByMac(host, mac), opts);
}

/** findInterfaceByMac's choice among the interfaces that carry `mac` (from findInterfacesByMac[s]). */
export function pickInterface(mac: string, all: readonly InterfaceInfo[], opts: { physicalOnly?: boolean } = {}): InterfaceInfo | undefined {
  const physical = all.filter((i) => i.hasDevice);
  const candidates = physical.length > 0 || opts.physicalOnly ? physical : all;
  if (candidates.length > 1) throw new AmbiguousMacError(normalizeMac(mac), candidates.map((i) => i.name));
  return candidates[0];
}

export async function setMtu(host: Host, name: string, mtu: number): Promise<void> {
  if (!Number.isSafeInteger(mtu)) throw new Error(`MTU must be an integer, got ${mtu}`);
  await host.write(ifPath(name, 'mtu'), String(mtu));
}

/** Read-modify-write of `flags`: net-sysfs opens the device when IFF_UP is set and closes it when cleared. */
export async function setUp(host: Host, name: string): Promise<void> {
  await changeUpFlag(host, name, true);
}

export async function setDown(host: Host, name: string): Promise<void> {
  await changeUpFlag(host, name, false);
}

async function changeUpFlag(host: Host, name: string, up: boolean): Promise<void> {
  const flags = parseIntStrict(await host.readFile(ifPath(name, 'flags')), `${name} flags`);
  if (((flags & IFF_UP) !== 0) === up) return;
  const next = up ? flags | IFF_UP : flags & ~IFF_UP;
  await host.write(ifPath(name, 'flags'), `0x${(next >>> 0).toString(16)}`);
}

export interface RouteEntry {
  interfaceName: string;
  /** Dotted-quad destination and mask; 0.0.0.0/0.0.0.0 is the default route. */
  destination: string;
  mask: string;
  gateway: string;
  flags: number;
  metric: number;
}

/** IPv4 main-table routes from /proc/net/route (addresses there are little-endian hex of network-order values). */
export async function readRoutes(host: Host): Promise<RouteEntry[]> {
  const text = await host.readFile('/proc/net/route');
  const rows = text.split('\n').slice(1).map((l) => l.trim()).filter((l) => l.length > 0);
  return rows.map((row) => {
    const cols = row.split(/\s+/);
    if (cols.length < 8) throw new Error(`malformed /proc/net/route line: ${JSON.stringify(row)}`);
    return {
      interfaceName: cols[0]!,
      destination: leHexToIpv4(cols[1]!),
      gateway: leHexToIpv4(cols[2]!),
      flags: parseInt(cols[3]!, 16),
      metric: Number(cols[6]),
      mask: leHexToIpv4(cols[7]!),
    };
  });
}

export function isDefaultRoute(r: RouteEntry): boolean {
  return r.destination === '0.0.0.0' && r.mask === '0.0.0.0';
}

function leHexToIpv4(hex: string): string {
  if (!/^[0-9A-Fa-f]{8}$/.test(hex)) throw new Error(`malformed address in /proc/net/route: ${hex}`);
  const bytes = [6, 4, 2, 0].map((i) => parseInt(hex.slice(i, i + 2), 16));
  return bytes.join('.');
}

/** Integers as sysfs prints them: decimal (`1500`) or hex with 0x (`0x1003`). */
function parseIntStrict(text: string, what: string): number {
  const s = text.trim();
  if (/^0x[0-9a-f]+$/i.test(s)) return parseInt(s.slice(2), 16);
  if (/^\d+$/.test(s)) return Number(s);
  throw new Error(`unexpected ${what}: ${JSON.stringify(text)}`);
}

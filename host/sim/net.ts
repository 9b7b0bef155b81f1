// Network devices and the IPv4 main routing table, as net/core/dev.c and
// net/core/net-sysfs.c present them: /sys/class/net/<if>/{address,mtu,flags,
// operstate,ifindex,...} and /proc/net/route. Only what the node agent reads
// or writes is modelled; the rules are the kernel's:
// - mtu: kstrtoul, then dev_set_mtu((int)value) checks min_mtu..max_mtu (EINVAL);
// - flags: kstrtoul, then dev_change_flags keeps the volatile bits and toggles
//   the device open/closed when IFF_UP changes;
// - IPv4 routes through a device are flushed when it goes down or disappears.
import { kernelError } from './errors.js';
import { kstrtoul, toCInt, toCUint } from './kstrto.js';
import { attr, dir, link, type SimDir, type SimFile, type SimLink } from './vfs.js';

export const IFF = {
  UP: 0x1,
  BROADCAST: 0x2,
  DEBUG: 0x4,
  LOOPBACK: 0x8,
  POINTOPOINT: 0x10,
  NOTRAILERS: 0x20,
  RUNNING: 0x40,
  NOARP: 0x80,
  PROMISC: 0x100,
  ALLMULTI: 0x200,
  MASTER: 0x400,
  SLAVE: 0x800,
  MULTICAST: 0x1000,
  PORTSEL: 0x2000,
  AUTOMEDIA: 0x4000,
  DYNAMIC: 0x8000,
  LOWER_UP: 0x10000,
  DORMANT: 0x20000,
  ECHO: 0x40000,
} as const;

/** Bits a flags write may change directly (__dev_change_flags). */
const SETTABLE = IFF.DEBUG | IFF.NOTRAILERS | IFF.NOARP | IFF.DYNAMIC | IFF.MULTICAST | IFF.PORTSEL | IFF.AUTOMEDIA;
/** Bits owned by the driver or by reference counts; a flags write keeps them (IFF_VOLATILE, PROMISC, ALLMULTI). */
const KEPT = IFF.LOOPBACK | IFF.POINTOPOINT | IFF.BROADCAST | IFF.ECHO | IFF.MASTER | IFF.SLAVE | IFF.RUNNING | IFF.LOWER_UP | IFF.DORMANT | IFF.PROMISC | IFF.ALLMULTI;

export const ARPHRD_ETHER = 1;
export const ARPHRD_LOOPBACK = 772;

export interface NetDeviceSpec {
  name: string;
  macAddress: string;
  mtu: number;
  minMtu: number;
  maxMtu: number;
  flags: number;
  type: number;
  /** Set for a device backed by a PCI function; absent for virtual devices (lo). */
  pciAddress?: string;
}

export interface NetDevice extends NetDeviceSpec {
  readonly ifindex: number;
}

export interface RouteSpec {
  interfaceName: string;
  /** IPv4 CIDR, `0.0.0.0/0` for the default route. */
  destination: string;
  gateway?: string;
  metric?: number;
}

const RTF_UP = 0x1;
const RTF_GATEWAY = 0x2;

export class NetStack {
  private readonly devices = new Map<string, NetDevice>();
  private routes: RouteSpec[] = [];
  private nextIfindex = 1;

  constructor() {
    this.registerLoopback();
  }

  /** Boot (SimHost.reboot): no device but lo, no route, ifindexes counted from 1 again. */
  reset(): void {
    this.devices.clear();
    this.routes = [];
    this.nextIfindex = 1;
    this.registerLoopback();
  }

  private registerLoopback(): void {
    this.register({
      name: 'lo',
      macAddress: '00:00:00:00:00:00',
      mtu: 65536,
      // (unverified) loopback's MTU bounds; nothing in this project changes lo.
      minMtu: 68,
      maxMtu: 65536,
      flags: IFF.UP | IFF.LOOPBACK,
      type: ARPHRD_LOOPBACK,
    });
  }

  get(name: string): NetDevice | undefined {
    return this.devices.get(name);
  }

  list(): NetDevice[] {
    return [...this.devices.values()].sort((a, b) => a.ifindex - b.ifindex);
  }

  /** register_netdev: a new ifindex every time, even for a name seen before. */
  register(spec: NetDeviceSpec): NetDevice {
    if (this.devices.has(spec.name)) throw kernelError('EEXIST', `netdev ${spec.name} exists`);
    const dev: NetDevice = { ...spec, macAddress: spec.macAddress.toLowerCase(), ifindex: this.nextIfindex++ };
    this.devices.set(dev.name, dev);
    return dev;
  }

  unregister(name: string): void {
    const dev = this.devices.get(name);
    if (!dev) return;
    if (dev.flags & IFF.UP) this.close(dev);
    this.devices.delete(name);
  }

  isUp(dev: NetDevice): boolean {
    return (dev.flags & IFF.UP) !== 0;
  }

  /** mtu_store → dev_set_mtu. */
  mtuStore(dev: NetDevice, buf: string): void {
    const mtu = toCInt(kstrtoul(buf));
    if (mtu === dev.mtu) return;
    if (mtu < 0 || mtu < dev.minMtu) throw kernelError('EINVAL', `mtu ${mtu} below ${dev.minMtu}`);
    if (dev.maxMtu > 0 && mtu > dev.maxMtu) throw kernelError('EINVAL', `mtu ${mtu} above ${dev.maxMtu}`);
    dev.mtu = mtu;
  }

  /** flags_store → dev_change_flags. */
  flagsStore(dev: NetDevice, buf: string): void {
    const requested = toCUint(kstrtoul(buf));
    const wasUp = this.isUp(dev);
    dev.flags = (requested & SETTABLE) | (dev.flags & (KEPT | IFF.UP));
    const wantUp = (requested & IFF.UP) !== 0;
    if (wantUp && !wasUp) dev.flags |= IFF.UP;
    if (!wantUp && wasUp) this.close(dev);
  }

  /** Sim control: `ip route add` (gateway routes need the device up: ENETDOWN). */
  addRoute(route: RouteSpec): void {
    const dev = this.devices.get(route.interfaceName);
    if (!dev) throw kernelError('ENODEV', `no interface ${route.interfaceName}`);
    if (!this.isUp(dev)) throw kernelError('ENETDOWN', `${route.interfaceName} is down`);
    parseCidr(route.destination);
    if (route.gateway !== undefined) ipv4ToInt(route.gateway);
    this.routes.push({ ...route });
  }

  listRoutes(): RouteSpec[] {
    return this.routes.map((r) => ({ ...r }));
  }

  /** /sys/class/net: one link per device into its place in /sys/devices. */
  classNetDir(): SimDir {
    return dir(() =>
      Object.fromEntries(
        this.list().map((d) => [
          d.name,
          link(d.pciAddress ? `../../devices/pci0000:00/${d.pciAddress}/net/${d.name}` : `../../devices/virtual/net/${d.name}`),
        ]),
      ),
    );
  }

  /** /sys/devices/virtual/net: devices with no parent device. */
  virtualNetDir(): SimDir {
    return dir(() => Object.fromEntries(this.list().filter((d) => !d.pciAddress).map((d) => [d.name, this.netdevDir(d)])));
  }

  netdevDir(dev: NetDevice): SimDir {
    const device: SimLink | undefined = dev.pciAddress ? link(`../../../${dev.pciAddress}`) : undefined;
    return dir(() => ({
      address: attr(() => `${dev.macAddress}\n`),
      addr_len: attr(() => '6\n'),
      mtu: attr(() => `${dev.mtu}\n`, (buf) => this.mtuStore(dev, buf)),
      flags: attr(() => `0x${dev.flags.toString(16)}\n`, (buf) => this.flagsStore(dev, buf)),
      operstate: attr(() => `${this.operstate(dev)}\n`),
      ifindex: attr(() => `${dev.ifindex}\n`),
      iflink: attr(() => `${dev.ifindex}\n`),
      type: attr(() => `${dev.type}\n`),
      uevent: attr(() => `INTERFACE=${dev.name}\nIFINDEX=${dev.ifindex}\n`),
      device,
    }));
  }

  /** /proc/net/route, formatted like fib_route_seq_show (127-column lines, addresses in network byte order). */
  procRouteFile(): SimFile {
    return attr(() => {
      const header = 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT';
      const rows = this.routes
        .map((r) => ({ r, ...parseCidr(r.destination) }))
        .sort((a, b) => a.network - b.network || a.prefix - b.prefix)
        .map(({ r, network, prefix }) => {
          const gw = r.gateway === undefined ? 0 : ipv4ToInt(r.gateway);
          const flags = RTF_UP | (r.gateway === undefined ? 0 : RTF_GATEWAY);
          const cols = [r.interfaceName, hexLe(network), hexLe(gw), flags.toString(16).toUpperCase().padStart(4, '0'), '0', '0', String(r.metric ?? 0), hexLe(prefixMask(prefix)), '0', '0', '0'];
          return cols.join('\t');
        });
      return [header, ...rows].map((line) => `${line.padEnd(127)}\n`).join('');
    });
  }

  private operstate(dev: NetDevice): string {
    if (!this.isUp(dev)) return 'down';
    // Loopback has no carrier notion and reports IF_OPER_UNKNOWN.
    return dev.type === ARPHRD_LOOPBACK ? 'unknown' : 'up';
  }

  /** __dev_close, then fib_disable_ip: IPv4 routes through the device are flushed. */
  private close(dev: NetDevice): void {
    dev.flags &= ~IFF.UP;
    this.routes = this.routes.filter((r) => r.interfaceName !== dev.name);
  }
}

function ipv4ToInt(addr: string): number {
  const parts = addr.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) throw kernelError('EINVAL', `bad IPv4 address ${addr}`);
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

function parseCidr(cidr: string): { network: number; prefix: number } {
  const [addr, len] = cidr.split('/');
  const prefix = Number(len);
  if (addr === undefined || len === undefined || !/^\d{1,2}$/.test(len) || prefix > 32) throw kernelError('EINVAL', `bad CIDR ${cidr}`);
  const network = ipv4ToInt(addr);
  if ((network & ~prefixMask(prefix)) >>> 0 !== 0) throw kernelError('EINVAL', `${cidr} has host bits set`);
  return { network, prefix };
}

function prefixMask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** A big-endian IPv4 value printed as the little-endian u32 the kernel's %08X shows. */
function hexLe(value: number): string {
  const bytes = [(value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff];
  return bytes
    .reverse()
    .map((b) => b.toString(16).toUpperCase().padStart(2, '0'))
    .join('');
}

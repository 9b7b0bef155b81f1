// The child half of test/real-kernel.test.ts. It runs inside private
// namespaces made by `unshare` (never in the host's): it refuses to do
// anything unless its network and mount namespaces differ from the ones the
// test passed in NODEENI_RK_HOST_NS_NET / NODEENI_RK_HOST_NS_MNT. It sets up
// the kernel objects with `ip` and `mount` (execFile, argument arrays, no
// shell), runs the node agent's real code (RealHost and the procedures and
// activities above it) against them, and prints one JSON line:
// {"ok":true,"result":{...}} or {"ok":false,"error":"..."}. The test asserts
// on the result; this file only observes. Everything it creates (interfaces,
// mounts) belongs to namespaces that vanish when it exits.
//
//   net                   fresh sysfs at /sys, RealHost('/'): host/net.ts on ifb/veth
//   churn                 the same, the MAC scan while interfaces come and go
//   activities <root>     a tmpfs host root at <root> whose sysfs view backs the
//                         ifb/veth interfaces with a PCI device (their real
//                         attribute files bind-mounted), RealHost(<root>):
//                         configureInterface / releaseInterface end to end
//   drift <root>          the same root: verifyInterfaces before and after what a
//                         reboot leaves on the link (default MTU, down), and the
//                         repair by configureInterface
//   cgroup <root> <cgdir> <json>  <cgdir> (a test-owned cgroup2 directory)
//                         bind-mounted at <root>/sys/fs/cgroup, RealHost(<root>):
//                         host/cgroup.ts lookup and thread listing
import { execFile, spawn } from 'node:child_process';
import { mkdir, readdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createNodeActivities } from '../../activities/node/index.js';
import { containerCgroupPath, containerProcesses, containerThreads, parseContainerId, type QosClass } from '../../host/cgroup.js';
import type { Host } from '../../host/host.js';
import { findInterfaceByMac, findInterfacesByMac, listInterfaces, readInterface, readRoutes, setDown, setMtu, setUp } from '../../host/net.js';
import { RealHost } from '../../host/real-host.js';

const run = promisify(execFile);

export const MAC_A = '02:4e:49:00:00:0a';
export const MAC_B = '02:4e:49:00:00:0b';
export const MAC_C = '02:4e:49:00:00:0c';
export const MAC_MISSING = '02:4e:49:00:00:ff';
export const NODE_NAME = 'real-kernel-node';
/** Hostile or malformed MACs: each must be refused before any path is built. */
export const HOSTILE_MACS = ['../../../etc/passwd', '02:4e:49:00:00:0a/../x', '02:4e:49:00:00', '02:4e:49:00:00:0g', '*', '', 'x0', '02:4e:49:00:00:0a:ff'];
/** Hostile interface names: path tricks, alias syntax, too long, whitespace, NUL. */
export const HOSTILE_NAMES = ['../x1', 'x0/../x1', '.', '..', 'x0:0', '', ' x0', 'x0\n', 'x'.repeat(16), 'x0\0', '/x0'];

export interface ErrorView {
  name?: string;
  message: string;
  code?: string;
  syscall?: string;
  path?: string;
  type?: string;
  nonRetryable?: boolean;
  kind?: string;
  interfaceNames?: string[];
}
export type Outcome<T> = { ok: true; value: T } | { ok: false; error: ErrorView };

/** What the kernel says about an interface, read without the code under test: sysfs via node:fs and `ip -j link show`. */
export interface KernelView {
  sysfs: { address: string; mtu: number; flags: string; operstate: string };
  ip: { ifname: string; address: string; mtu: number; flags: string[]; operstate: string };
}

async function ip(...args: string[]): Promise<string> {
  try {
    return (await run('ip', args, { timeout: 10_000 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`);
  }
}

async function mount(...args: string[]): Promise<void> {
  try {
    await run('mount', args, { timeout: 10_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`mount ${args.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`);
  }
}

function describeError(err: unknown): ErrorView {
  const e = (typeof err === 'object' && err !== null ? err : { message: String(err) }) as Record<string, unknown>;
  const view: ErrorView = { message: String(e.message ?? err) };
  for (const key of ['name', 'code', 'syscall', 'path', 'type', 'kind'] as const) {
    if (typeof e[key] === 'string') view[key] = e[key] as string;
  }
  if (typeof e.nonRetryable === 'boolean') view.nonRetryable = e.nonRetryable;
  if (Array.isArray(e.interfaceNames)) view.interfaceNames = e.interfaceNames as string[];
  return view;
}

async function outcome<T>(fn: () => Promise<T>): Promise<Outcome<T>> {
  try {
    const value = await fn();
    return { ok: true, value: value === undefined ? (null as T) : value };
  } catch (err) {
    return { ok: false, error: describeError(err) };
  }
}

async function kernelView(name: string, sysRoot = '/sys'): Promise<KernelView> {
  const attr = async (a: string) => (await readFile(`${sysRoot}/class/net/${name}/${a}`, 'utf8')).trim();
  const [address, mtu, flags, operstate] = await Promise.all([attr('address'), attr('mtu'), attr('flags'), attr('operstate')]);
  const [link] = JSON.parse(await ip('-j', 'link', 'show', 'dev', name)) as { ifname: string; address: string; mtu: number; flags: string[]; operstate: string }[];
  if (!link) throw new Error(`ip -j link show dev ${name}: no such link`);
  return {
    sysfs: { address, mtu: Number(mtu), flags, operstate },
    ip: { ifname: link.ifname, address: link.address, mtu: link.mtu, flags: link.flags, operstate: link.operstate },
  };
}

/** Refuses to go on unless every namespace named differs from the test process's. */
async function assertPrivate(kinds: ('net' | 'mnt')[]): Promise<Record<string, string>> {
  const seen: Record<string, string> = {};
  for (const kind of kinds) {
    const hostNs = process.env[`NODEENI_RK_HOST_NS_${kind.toUpperCase()}`];
    const own = await readlink(`/proc/self/ns/${kind}`);
    if (!hostNs) throw new Error(`NODEENI_RK_HOST_NS_${kind.toUpperCase()} is not set: refusing to run outside the test`);
    if (own === hostNs) throw new Error(`still in the test's ${kind} namespace (${own}): refusing to touch the host`);
    seen[kind] = own;
  }
  return seen;
}

/** A fresh sysfs over /sys: its class/net shows this network namespace's interfaces only. */
async function freshSysfs(): Promise<void> {
  await mount('-t', 'sysfs', 'nodeeni-real-kernel', '/sys');
}

// ---------------------------------------------------------------------------
// net: host/net.ts on RealHost('/') over a fresh sysfs

async function netScenario(): Promise<unknown> {
  const namespaces = await assertPrivate(['net', 'mnt']);
  await freshSysfs();
  const host: Host = new RealHost('/');
  const r: Record<string, unknown> = { namespaces };

  r.interfacesBefore = await listInterfaces(host);
  // ifb cannot change its MAC after creation (no ndo_set_mac_address: EOPNOTSUPP), so it is given at creation.
  r.setAddressOnIfb = await outcome(async () => {
    await ip('link', 'add', 'xt', 'type', 'ifb');
    try {
      await ip('link', 'set', 'dev', 'xt', 'address', MAC_MISSING);
    } finally {
      await ip('link', 'del', 'dev', 'xt');
    }
  });
  await ip('link', 'add', 'x0', 'address', MAC_A, 'type', 'ifb');
  await ip('link', 'add', 'x1', 'address', MAC_B, 'type', 'ifb');
  // veth: a link type with real MTU bounds (68..65535); ifb accepts any non-negative MTU.
  await ip('link', 'add', 'v0', 'address', MAC_C, 'type', 'veth', 'peer', 'name', 'v0p');
  r.interfacesAfter = await listInterfaces(host);

  r.found = await findInterfaceByMac(host, MAC_A.toUpperCase());
  r.foundPhysicalOnly = (await findInterfaceByMac(host, MAC_A, { physicalOnly: true })) ?? null;
  r.kernelInitial = await kernelView('x0');

  await setMtu(host, 'x0', 9001);
  r.afterMtu = { info: await readInterface(host, 'x0'), kernel: await kernelView('x0') };
  await setUp(host, 'x0');
  r.afterUp = { info: await readInterface(host, 'x0'), kernel: await kernelView('x0') };
  await setUp(host, 'x0');
  r.afterUpAgain = await kernelView('x0');
  await setDown(host, 'x0');
  r.afterDown = { info: await readInterface(host, 'x0'), kernel: await kernelView('x0') };
  await setDown(host, 'x0');
  r.afterDownAgain = await kernelView('x0');

  r.missing = (await findInterfaceByMac(host, MAC_MISSING)) ?? null;

  // Kernel refusals come back as errno errors naming the host path.
  r.negativeMtu = await outcome(() => setMtu(host, 'x0', -1));
  r.vethTooBig = await outcome(() => setMtu(host, 'v0', 65536));
  r.vethTooSmall = await outcome(() => setMtu(host, 'v0', 67));
  r.vethMax = await outcome(() => setMtu(host, 'v0', 65535));
  r.vethAfter = await kernelView('v0');
  r.fractionalMtu = await outcome(() => setMtu(host, 'x0', 1500.5));

  // Hostile names and paths are refused before anything is opened.
  r.hostileNames = await Promise.all(
    HOSTILE_NAMES.map(async (name) => ({
      name,
      setMtu: await outcome(() => setMtu(host, name, 1280)),
      setUp: await outcome(() => setUp(host, name)),
      setDown: await outcome(() => setDown(host, name)),
      read: await outcome(() => readInterface(host, name)),
    })),
  );
  r.hostilePaths = {
    dotdotWrite: await outcome(() => host.write('/sys/class/net/x1/../x0/mtu', '1280')),
    dotdotRead: await outcome(() => host.readFile('/sys/class/net/x0/../../../../etc/hostname')),
    relative: await outcome(() => host.write('sys/class/net/x0/mtu', '1280')),
    nul: await outcome(() => host.write('/sys/class/net/x0/mtu\0', '1280')),
    emptyWrite: await outcome(() => host.write('/sys/class/net/x0/mtu', '')),
    noSuchAttribute: await outcome(() => host.write('/sys/class/net/x0/no_such_attribute', '1')),
    readOnlyAttribute: await outcome(() => host.write('/sys/class/net/x0/address', MAC_B)),
  };
  r.noSuchAttributeCreated = (await readdir('/sys/class/net/x0')).includes('no_such_attribute');
  r.hostileMacs = await Promise.all(HOSTILE_MACS.map(async (mac) => ({ mac, find: await outcome(() => findInterfaceByMac(host, mac)) })));
  r.afterHostile = { x0: await kernelView('x0'), x1: await kernelView('x1') };

  // Two interfaces with one MAC: ambiguous among virtual interfaces.
  await ip('link', 'add', 'x2', 'address', MAC_A, 'type', 'ifb');
  r.twins = (await findInterfacesByMac(host, MAC_A)).map((i) => i.name);
  r.ambiguous = await outcome(() => findInterfaceByMac(host, MAC_A));
  await ip('link', 'del', 'dev', 'x2');

  // The node activities never take a virtual interface for the ENI (physicalOnly).
  const acts = createNodeActivities({ host, nodeName: NODE_NAME });
  r.configureVirtual = await outcome(() => acts.configureInterface({ macAddress: MAC_A, mtu: 1500 }));
  r.afterConfigureVirtual = await kernelView('x0');
  await setUp(host, 'x0');
  r.releaseVirtual = await outcome(() => acts.releaseInterface({ macAddress: MAC_A }));
  r.afterReleaseVirtual = await kernelView('x0');
  await setDown(host, 'x0');

  // An interface deleted under the agent: ENOENT, and no longer found.
  await ip('link', 'del', 'dev', 'x1');
  r.vanishedRead = await outcome(() => readInterface(host, 'x1'));
  r.vanishedSetMtu = await outcome(() => setMtu(host, 'x1', 1280));
  r.vanishedFind = (await findInterfaceByMac(host, MAC_B)) ?? null;
  r.interfacesAtEnd = await listInterfaces(host);
  return r;
}

// ---------------------------------------------------------------------------
// churn: the MAC scan while other interfaces are created and deleted

/** Passes everything to `inner`, counting the errno codes its reads fail with. */
function countingReads(inner: Host, codes: Record<string, number>): Host {
  return {
    root: inner.root,
    readFile: (p) =>
      inner.readFile(p).catch((err: unknown) => {
        const code = String((err as { code?: unknown }).code ?? 'none');
        codes[code] = (codes[code] ?? 0) + 1;
        throw err;
      }),
    write: (p, d) => inner.write(p, d),
    readdir: (p) => inner.readdir(p),
    readlink: (p) => inner.readlink(p),
    exists: (p) => inner.exists(p),
    mkdir: (p) => inner.mkdir(p),
    rmdir: (p) => inner.rmdir(p),
    writeFileAtomic: (p, d, m) => inner.writeFileAtomic(p, d, m),
  };
}

/**
 * findInterfacesByMac in a loop while `ip -batch` adds and deletes 50 ifb
 * devices over and over (as pods' veths come and go on a node). Stops once the
 * scan has met enough kernel EINVALs (reads of an interface being
 * unregistered) or after a few seconds.
 */
async function churnScenario(): Promise<unknown> {
  const namespaces = await assertPrivate(['net', 'mnt']);
  await freshSysfs();
  await ip('link', 'add', 'x0', 'address', MAC_A, 'type', 'ifb');
  const readErrors: Record<string, number> = {};
  const host = countingReads(new RealHost('/'), readErrors);
  const lines: string[] = [];
  for (let i = 0; i < 3000; i++) lines.push(`link add z${i % 50} type ifb`, `link del z${i % 50}`);
  let churnDone = false;
  let churnError = '';
  let churn: ReturnType<typeof spawn> | undefined;
  let exited: Promise<void> = Promise.resolve();
  /** One batch of adds and deletes; another starts if the scan has not met the race yet (a busy machine is slower to race). */
  const startChurn = () => {
    churnDone = false;
    const child = spawn('ip', ['-force', '-batch', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    churn = child;
    exited = new Promise<void>((resolve) => {
      child.on('close', () => {
        churnDone = true;
        resolve();
      });
      child.on('error', (err) => {
        churnError = err.message;
        churnDone = true;
        resolve();
      });
    });
    child.stderr!.on('data', (d: Buffer) => {
      if (churnError.length < 2000) churnError += d.toString();
    });
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(`${lines.join('\n')}\n`);
  };
  startChurn();

  const started = Date.now();
  let scans = 0;
  let wrongResults = 0;
  const failures: Record<string, number> = {};
  while (Date.now() - started < 20_000 && (readErrors.EINVAL ?? 0) < 5 && !churnError) {
    if (churnDone) startChurn();
    scans++;
    try {
      const found = await findInterfacesByMac(host, MAC_A);
      if (found.map((i) => i.name).join() !== 'x0') wrongResults++;
    } catch (err) {
      const code = String((err as { code?: unknown }).code ?? (err as Error).message);
      failures[code] = (failures[code] ?? 0) + 1;
    }
  }
  const elapsedMs = Date.now() - started;
  if (!churnDone) churn?.kill('SIGTERM');
  await exited;
  return { namespaces, scans, elapsedMs, readErrors, failures, wrongResults, churnError: churnError.trim() };
}

// ---------------------------------------------------------------------------
// activities: configureInterface / releaseInterface on a device-backed view

export const STITCHED = [
  { name: 'x0', bdf: '0000:00:06.0', mac: MAC_A },
  { name: 'v0', bdf: '0000:00:07.0', mac: MAC_C },
] as const;
const ATTRIBUTES = ['address', 'mtu', 'flags', 'operstate'] as const;

/**
 * A host root on tmpfs laid out like an EC2 node's sysfs: each interface under
 * a PCI function with a `device` link, its attribute files bind mounts of the
 * kernel's real ones (reads and writes reach the kernel), and the real /proc.
 * No link type this kernel can create in a namespace has a parent device
 * (netdevsim is not built), and an ENI is always one.
 */
async function stitchRoot(root: string): Promise<void> {
  if (!path.isAbsolute(root)) throw new Error(`root must be absolute: ${root}`);
  await mount('-t', 'tmpfs', '-o', 'mode=0755,size=1m', 'nodeeni-real-kernel', root);
  await mkdir(path.join(root, 'sys/class/net'), { recursive: true });
  for (const { name, bdf } of STITCHED) {
    const dir = path.join(root, 'sys/devices/pci0000:00', bdf, 'net', name);
    await mkdir(dir, { recursive: true });
    for (const a of ATTRIBUTES) {
      await writeFile(path.join(dir, a), '');
      await mount('--bind', `/sys/class/net/${name}/${a}`, path.join(dir, a));
    }
    await symlink(`../../../${bdf}`, path.join(dir, 'device'));
    await symlink(`../../devices/pci0000:00/${bdf}/net/${name}`, path.join(root, 'sys/class/net', name));
  }
  await mkdir(path.join(root, 'proc'));
  await mount('--bind', '/proc', path.join(root, 'proc'));
}

/** In private namespaces with a fresh sysfs: x0 (ifb) and v0 (veth) behind PCI functions in a host root at `root`, and the node activities on it. */
async function stitchedNode(root: string) {
  const namespaces = await assertPrivate(['net', 'mnt']);
  await freshSysfs();
  await ip('link', 'add', 'x0', 'address', MAC_A, 'type', 'ifb');
  await ip('link', 'add', 'v0', 'address', MAC_C, 'type', 'veth', 'peer', 'name', 'v0p');
  await stitchRoot(root);
  const host = new RealHost(root);
  return { namespaces, host, acts: createNodeActivities({ host, nodeName: NODE_NAME }) };
}

async function activitiesScenario(root: string): Promise<unknown> {
  const { namespaces, host, acts } = await stitchedNode(root);
  const r: Record<string, unknown> = { namespaces };

  r.kernelInitial = await kernelView('x0');
  r.configured = await outcome(() => acts.configureInterface({ macAddress: MAC_A.toUpperCase(), mtu: 9001 }));
  r.afterConfigure = await kernelView('x0');
  r.configuredAgain = await outcome(() => acts.configureInterface({ macAddress: MAC_A, mtu: 9001 }));
  r.afterConfigureAgain = await kernelView('x0');
  r.configuredNoMtu = await outcome(() => acts.configureInterface({ macAddress: MAC_A }));

  r.badMtu = await outcome(() => acts.configureInterface({ macAddress: MAC_C, mtu: 65536 }));
  r.afterBadMtu = await kernelView('v0');
  r.fractionalMtu = await outcome(() => acts.configureInterface({ macAddress: MAC_C, mtu: 1500.5 }));

  r.missingConfigure = await outcome(() => acts.configureInterface({ macAddress: MAC_MISSING, mtu: 9001 }));
  r.missingRelease = await outcome(() => acts.releaseInterface({ macAddress: MAC_MISSING }));
  r.hostileMacs = await Promise.all(
    HOSTILE_MACS.map(async (mac) => ({
      mac,
      configure: await outcome(() => acts.configureInterface({ macAddress: mac, mtu: 1280 })),
      release: await outcome(() => acts.releaseInterface({ macAddress: mac })),
    })),
  );
  r.afterHostile = { x0: await kernelView('x0'), v0: await kernelView('v0') };

  // The interface carrying the default route is never taken down.
  await ip('address', 'add', '10.77.0.2/24', 'dev', 'x0');
  await ip('route', 'add', 'default', 'via', '10.77.0.1', 'dev', 'x0');
  r.routes = (await readRoutes(host)).filter((route) => route.interfaceName === 'x0');
  r.releaseDefaultRoute = await outcome(() => acts.releaseInterface({ macAddress: MAC_A }));
  r.afterReleaseDefaultRoute = await kernelView('x0');
  await ip('route', 'del', 'default', 'via', '10.77.0.1', 'dev', 'x0');

  r.released = await outcome(() => acts.releaseInterface({ macAddress: MAC_A.toUpperCase() }));
  r.afterRelease = await kernelView('x0');
  r.releasedAgain = await outcome(() => acts.releaseInterface({ macAddress: MAC_A }));

  // Deleted while the agent's view still lists it: the kernel answers ENODEV on the stale attribute.
  r.reconfigured = await outcome(() => acts.configureInterface({ macAddress: MAC_A, mtu: 1500 }));
  await ip('link', 'del', 'dev', 'x0');
  r.staleRead = await outcome(() => readFile(path.join(root, 'sys/class/net/x0/address'), 'utf8'));
  r.releaseDeleted = await outcome(() => acts.releaseInterface({ macAddress: MAC_A }));
  r.configureDeleted = await outcome(() => acts.configureInterface({ macAddress: MAC_A, mtu: 1500 }));
  return r;
}

// ---------------------------------------------------------------------------
// drift: verifyInterfaces and the repair of reboot drift on a device-backed view

async function driftScenario(root: string): Promise<unknown> {
  const { namespaces, acts } = await stitchedNode(root);
  const expected = [{ macAddress: MAC_A, mtu: 9001 }, { macAddress: MAC_MISSING, mtu: 9001 }];
  const r: Record<string, unknown> = { namespaces };

  r.configured = await outcome(() => acts.configureInterface({ macAddress: MAC_A, mtu: 9001 }));
  r.verifiedConfigured = await outcome(() => acts.verifyInterfaces({ expected }));
  // What a reboot leaves on the link: the default MTU, down (a namespace cannot reboot the netdev itself).
  await ip('link', 'set', 'dev', 'x0', 'down', 'mtu', '1500');
  r.kernelRebooted = await kernelView('x0');
  r.verifiedRebooted = await outcome(() => acts.verifyInterfaces({ expected }));
  r.kernelAfterVerify = await kernelView('x0');
  r.repaired = await outcome(() => acts.configureInterface({ macAddress: MAC_A, mtu: 9001 }));
  r.kernelRepaired = await kernelView('x0');
  r.verifiedRepaired = await outcome(() => acts.verifyInterfaces({ expected: expected.slice(0, 1) }));
  r.hostileMacs = await Promise.all(HOSTILE_MACS.map(async (mac) => ({ mac, verify: await outcome(() => acts.verifyInterfaces({ expected: [{ macAddress: mac, mtu: 1500 }] })) })));
  r.hostilePci = await outcome(() => acts.verifyInterfaces({ expected: [{ macAddress: MAC_A, mtu: 9001, dpdk: { driver: 'vfio-pci', pciAddress: '0000:00:06.0/../../../..' } }] }));
  r.kernelAtEnd = await kernelView('x0');
  return r;
}

// ---------------------------------------------------------------------------
// cgroup: host/cgroup.ts on a test-owned cgroup2 subtree seen as /sys/fs/cgroup

export interface CgroupContainer {
  podUid: string;
  qos: QosClass;
  containerId: string;
  pids: number[];
}

async function tasksOf(pid: number): Promise<number[]> {
  return (await readdir(`/proc/${pid}/task`)).map(Number).sort((a, b) => a - b);
}

async function cgroupScenario(root: string, cgroupDir: string, containersJson: string): Promise<unknown> {
  const namespaces = await assertPrivate(['mnt']);
  const containers = JSON.parse(containersJson) as CgroupContainer[];
  await mount('--bind', cgroupDir, path.join(root, 'sys/fs/cgroup'));
  const host = new RealHost(root);
  const r: Record<string, unknown> = { namespaces };
  r.found = await Promise.all(
    containers.map(async (c) => {
      const tasksBefore = (await Promise.all(c.pids.map(tasksOf))).flat();
      const ref = { podUid: c.podUid, qos: c.qos, containerId: `containerd://${c.containerId}` };
      const cgroup = await containerCgroupPath(host, ref);
      const threads = cgroup ? await containerThreads(host, cgroup) : [];
      const processes = cgroup ? await containerProcesses(host, cgroup) : [];
      const tasksAfter = (await Promise.all(c.pids.map(tasksOf))).flat();
      return { containerId: c.containerId, cgroup: cgroup ?? null, threads, processes, tasksBefore, tasksAfter };
    }),
  );
  const first = containers[0]!;
  r.unknownContainer = (await containerCgroupPath(host, { podUid: first.podUid, qos: first.qos, containerId: 'f'.repeat(64) })) ?? null;
  r.goneThreads = await containerThreads(host, '/sys/fs/cgroup/kubepods.slice/no-such.scope');
  r.hostile = {
    dotdot: await outcome(() => containerThreads(host, '/sys/fs/cgroup/../../etc')),
    outside: await outcome(() => containerProcesses(host, '/etc')),
    podUid: await outcome(() => containerCgroupPath(host, { podUid: '../../etc', qos: 'Burstable', containerId: first.containerId })),
    containerId: await outcome(async () => parseContainerId('../../../etc/passwd')),
    qos: await outcome(() => containerCgroupPath(host, { podUid: first.podUid, qos: 'Root' as QosClass, containerId: first.containerId })),
  };
  return r;
}

async function main(): Promise<unknown> {
  const [scenario, ...args] = process.argv.slice(2);
  switch (scenario) {
    case 'net':
      return netScenario();
    case 'churn':
      return churnScenario();
    case 'activities':
      return activitiesScenario(args[0]!);
    case 'drift':
      return driftScenario(args[0]!);
    case 'cgroup':
      return cgroupScenario(args[0]!, args[1]!, args[2]!);
    default:
      throw new Error(`unknown scenario ${JSON.stringify(scenario)}`);
  }
}

// Imported by the test for its constants; runs only as the entry point.
if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then(
    (result) => process.stdout.write(`${JSON.stringify({ ok: true, result })}\n`),
    (err: unknown) => {
      process.stdout.write(`${JSON.stringify({ ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) })}\n`);
      process.exitCode = 1;
    },
  );
}

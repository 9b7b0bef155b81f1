// The real host implementation against the real kernel (issue 10, item 7).
// Needs root, network and mount namespaces, ifb and veth links, sysfs and a
// writable cgroup2 mount; anything missing FAILS the tests (never skips).
//
// Network: each scenario is a child process started as
//   unshare --net --mount --propagation private -- node --import tsx test/support/real-kernel-child.ts <scenario>
// It checks that its namespaces differ from ours, mounts a fresh sysfs over
// /sys (so /sys/class/net lists only the new namespace's interfaces), creates
// interfaces with `ip`, runs RealHost and the procedures/activities above it,
// and prints a JSON result that is asserted here. The namespaces, their
// interfaces and mounts vanish with the child; the host is never touched.
//
// cgroup v2: a test-owned directory under the real cgroup2 mount (found in
// /proc/self/mountinfo) laid out like the kubelet's, real processes moved into
// it through cgroup.procs, and host/cgroup.ts reading it through RealHost.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, rmdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import type { InterfaceInfo } from '../host/net.js';
import { HOSTILE_MACS, HOSTILE_NAMES, MAC_A, MAC_B, MAC_C, MAC_MISSING, NODE_NAME, type CgroupContainer, type ErrorView, type KernelView, type Outcome } from './support/real-kernel-child.js';

const run = promisify(execFile);
const PROJECT_ROOT = path.resolve(import.meta.dirname, '..');
const CHILD = 'test/support/real-kernel-child.ts';
/** Names this file's children create; none may ever show up on the host. */
const TEST_LINKS = ['x0', 'x1', 'x2', 'xt', 'v0', 'v0p'];
const MARK = 'nodeeni-real-kernel';

function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new Error(`the real-kernel tests must run as root (uid 0, this is uid ${process.getuid?.()}): they create network and mount namespaces, mount sysfs and create cgroups`);
  }
}

function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= fn());
}

async function hostNamespaces(): Promise<{ net: string; mnt: string }> {
  return { net: await readlink('/proc/self/ns/net'), mnt: await readlink('/proc/self/ns/mnt') };
}

/** Runs one scenario of the child under `unshare <flags>` and returns its result (throws with its error and stderr otherwise). */
async function runChild<T>(unshareFlags: string[], args: string[]): Promise<T> {
  requireRoot();
  const ns = await hostNamespaces();
  const env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', NODEENI_RK_HOST_NS_NET: ns.net, NODEENI_RK_HOST_NS_MNT: ns.mnt };
  let stdout: string;
  let stderr: string;
  try {
    ({ stdout, stderr } = await run('unshare', [...unshareFlags, '--', process.execPath, '--import', 'tsx', CHILD, ...args], { cwd: PROJECT_ROOT, env, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }));
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    const reported = lastJsonLine(e.stdout ?? '');
    throw new Error(`child ${args[0]} failed: ${reported && !reported.ok ? reported.error : e.message}\n${(e.stderr ?? '').slice(-4000)}`);
  }
  const out = lastJsonLine(stdout);
  if (!out) throw new Error(`child ${args[0]} printed no result:\n${stdout.slice(-2000)}\n${stderr.slice(-2000)}`);
  if (!out.ok) throw new Error(`child ${args[0]} failed: ${out.error}\n${stderr.slice(-4000)}`);
  return out.result as T;
}

function lastJsonLine(stdout: string): { ok: true; result: unknown } | { ok: false; error: string } | undefined {
  const line = stdout.trim().split('\n').at(-1);
  if (!line) return undefined;
  try {
    return JSON.parse(line) as { ok: true; result: unknown } | { ok: false; error: string };
  } catch {
    return undefined;
  }
}

const NET_NS = ['--net', '--mount', '--propagation', 'private'];
const MOUNT_NS = ['--mount', '--propagation', 'private'];

/** The host's interfaces as the kernel reports them (read-only). */
async function hostLinks(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const name of await readdir('/sys/class/net')) {
    const attr = async (a: string) => (await readFile(`/sys/class/net/${name}/${a}`, 'utf8').catch(() => '?')).trim();
    out.set(name, `${await attr('address')} mtu=${await attr('mtu')} flags=${await attr('flags')}`);
  }
  return out;
}

/** Lines of our mountinfo for mounts at or under one of `dirs`, or made by this file (source named MARK). */
async function mountsOf(dirs: string[]): Promise<string[]> {
  const lines = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.length > 0);
  return lines.filter((l) => {
    const mountPoint = unescapeMountinfo(l.split(' ')[4] ?? '');
    return l.includes(MARK) || dirs.some((d) => mountPoint === d || mountPoint.startsWith(`${d}/`));
  });
}

/** Mounts of ours visible in the test's own namespace: there may never be any (they live in the children's). */
async function leakedMounts(): Promise<string[]> {
  return mountsOf(tempDirs);
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Removes a temp dir only when nothing is mounted under it in our namespace (rm -r must never walk into sysfs or cgroupfs). */
async function removeTempDir(dir: string): Promise<void> {
  const mounts = await mountsOf([dir]);
  if (mounts.length > 0) throw new Error(`refusing to remove ${dir}: mounted in the test's namespace:\n${mounts.join('\n')}`);
  await rm(dir, { recursive: true, force: true });
}

const tempDirs: string[] = [];
async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `${MARK}-${prefix}-`));
  tempDirs.push(dir);
  return dir;
}

const hostBefore = once(async () => {
  requireRoot();
  return hostLinks();
});

function err(o: Outcome<unknown>): ErrorView {
  expect(o.ok, JSON.stringify(o)).toBe(false);
  return (o as { ok: false; error: ErrorView }).error;
}

function value<T>(o: Outcome<T>): T {
  expect(o.ok, JSON.stringify(o)).toBe(true);
  return (o as { ok: true; value: T }).value;
}

/** sysfs and `ip -j link show` agree, and both say this. */
function expectKernel(k: KernelView, want: { mac: string; mtu: number; up: boolean }): void {
  expect(k.sysfs.address).toBe(want.mac);
  expect(k.ip.address).toBe(want.mac);
  expect(k.sysfs.mtu).toBe(want.mtu);
  expect(k.ip.mtu).toBe(want.mtu);
  expect((parseInt(k.sysfs.flags, 16) & 1) === 1).toBe(want.up);
  expect(k.ip.flags.includes('UP')).toBe(want.up);
  expect(k.ip.operstate.toLowerCase()).toBe(k.sysfs.operstate);
  if (want.up) expect(k.sysfs.operstate).not.toBe('down');
  else expect(k.sysfs.operstate).toBe('down');
}

afterAll(async () => {
  for (const dir of tempDirs) await removeTempDir(dir);
});

// ---------------------------------------------------------------------------

interface NetResult {
  namespaces: { net: string; mnt: string };
  interfacesBefore: string[];
  setAddressOnIfb: Outcome<null>;
  interfacesAfter: string[];
  found: InterfaceInfo;
  foundPhysicalOnly: InterfaceInfo | null;
  kernelInitial: KernelView;
  afterMtu: { info: InterfaceInfo; kernel: KernelView };
  afterUp: { info: InterfaceInfo; kernel: KernelView };
  afterUpAgain: KernelView;
  afterDown: { info: InterfaceInfo; kernel: KernelView };
  afterDownAgain: KernelView;
  missing: InterfaceInfo | null;
  negativeMtu: Outcome<null>;
  vethTooBig: Outcome<null>;
  vethTooSmall: Outcome<null>;
  vethMax: Outcome<null>;
  vethAfter: KernelView;
  fractionalMtu: Outcome<null>;
  hostileNames: { name: string; setMtu: Outcome<null>; setUp: Outcome<null>; setDown: Outcome<null>; read: Outcome<InterfaceInfo> }[];
  hostilePaths: Record<'dotdotWrite' | 'dotdotRead' | 'relative' | 'nul' | 'emptyWrite' | 'noSuchAttribute' | 'readOnlyAttribute', Outcome<unknown>>;
  noSuchAttributeCreated: boolean;
  hostileMacs: { mac: string; find: Outcome<unknown> }[];
  afterHostile: { x0: KernelView; x1: KernelView };
  twins: string[];
  ambiguous: Outcome<unknown>;
  configureVirtual: Outcome<unknown>;
  afterConfigureVirtual: KernelView;
  releaseVirtual: Outcome<unknown>;
  afterReleaseVirtual: KernelView;
  vanishedRead: Outcome<unknown>;
  vanishedSetMtu: Outcome<unknown>;
  vanishedFind: InterfaceInfo | null;
  interfacesAtEnd: string[];
}

describe('host/net.ts on RealHost, in a private network namespace with its own sysfs', () => {
  const net = once(async () => {
    await hostBefore();
    return runChild<NetResult>(NET_NS, ['net']);
  });

  it('runs in namespaces of its own that see only their own interfaces', async () => {
    const r = await net();
    const ours = await hostNamespaces();
    expect(r.namespaces.net).not.toBe(ours.net);
    expect(r.namespaces.mnt).not.toBe(ours.mnt);
    expect(r.interfacesBefore).toEqual(['lo']);
    expect(r.interfacesAfter).toEqual(['lo', 'v0', 'v0p', 'x0', 'x1']);
    // ifb has no ndo_set_mac_address: the MAC can only be given at creation.
    expect(err(r.setAddressOnIfb).message).toMatch(/Operation not supported/);
  });

  it('finds the interface by MAC (any case), as a virtual interface', async () => {
    const r = await net();
    expect(r.found).toEqual({ name: 'x0', macAddress: MAC_A, mtu: 1500, flags: 0x82, up: false, hasDevice: false, operstate: 'down' });
    expect(r.foundPhysicalOnly).toBeNull();
    expectKernel(r.kernelInitial, { mac: MAC_A, mtu: 1500, up: false });
    expect(r.missing).toBeNull();
  });

  it('sets the MTU, brings the interface up and down (idempotently), and the kernel agrees', async () => {
    const r = await net();
    expect(r.afterMtu.info).toMatchObject({ mtu: 9001, up: false });
    expectKernel(r.afterMtu.kernel, { mac: MAC_A, mtu: 9001, up: false });

    expect(r.afterUp.info).toMatchObject({ mtu: 9001, up: true, flags: 0x83, operstate: 'unknown' });
    expectKernel(r.afterUp.kernel, { mac: MAC_A, mtu: 9001, up: true });
    // Read-modify-write of flags: only IFF_UP changed (ifb keeps NOARP, has no MULTICAST).
    expect(r.afterUp.kernel.sysfs.flags).toBe('0x83');
    expect(r.afterUp.kernel.ip.flags).toEqual(['BROADCAST', 'NOARP', 'UP', 'LOWER_UP']);
    expect(r.afterUpAgain).toEqual(r.afterUp.kernel);

    expect(r.afterDown.info).toMatchObject({ mtu: 9001, up: false, flags: 0x82, operstate: 'down' });
    expectKernel(r.afterDown.kernel, { mac: MAC_A, mtu: 9001, up: false });
    expect(r.afterDownAgain).toEqual(r.afterDown.kernel);
  });

  it("passes the kernel's MTU refusals on as EINVAL naming the host path", async () => {
    const r = await net();
    expect(err(r.negativeMtu)).toMatchObject({ code: 'EINVAL', syscall: 'write', path: '/sys/class/net/x0/mtu' });
    expect(err(r.vethTooBig)).toMatchObject({ code: 'EINVAL', syscall: 'write', path: '/sys/class/net/v0/mtu' });
    expect(err(r.vethTooSmall)).toMatchObject({ code: 'EINVAL', syscall: 'write', path: '/sys/class/net/v0/mtu' });
    expect(value(r.vethMax)).toBeNull();
    expectKernel(r.vethAfter, { mac: MAC_C, mtu: 65535, up: false });
    expect(err(r.fractionalMtu).message).toMatch(/MTU must be an integer/);
  });

  it('refuses hostile interface names, paths and MACs before touching anything', async () => {
    const r = await net();
    expect(r.hostileNames.map((h) => h.name)).toEqual(HOSTILE_NAMES);
    for (const h of r.hostileNames) {
      for (const o of [h.setMtu, h.setUp, h.setDown, h.read]) expect(err(o).message).toMatch(/^not a valid interface name/);
    }
    const p = r.hostilePaths;
    expect(err(p.dotdotWrite)).toMatchObject({ name: 'HostUsageError', code: 'ERR_INVALID_HOST_PATH' });
    expect(err(p.dotdotRead)).toMatchObject({ name: 'HostUsageError', code: 'ERR_INVALID_HOST_PATH' });
    expect(err(p.relative)).toMatchObject({ name: 'HostUsageError', code: 'ERR_INVALID_HOST_PATH' });
    expect(err(p.nul)).toMatchObject({ name: 'HostUsageError', code: 'ERR_INVALID_HOST_PATH' });
    expect(err(p.emptyWrite)).toMatchObject({ name: 'HostUsageError', code: 'ERR_EMPTY_WRITE' });
    // Kernel answers: write never creates a file; a read-only attribute refuses the open.
    expect(err(p.noSuchAttribute)).toMatchObject({ code: 'ENOENT', syscall: 'open', path: '/sys/class/net/x0/no_such_attribute' });
    expect(r.noSuchAttributeCreated).toBe(false);
    expect(err(p.readOnlyAttribute)).toMatchObject({ code: 'EACCES', syscall: 'open', path: '/sys/class/net/x0/address' });

    expect(r.hostileMacs.map((h) => h.mac)).toEqual(HOSTILE_MACS);
    for (const h of r.hostileMacs) expect(err(h.find).message).toMatch(/^not a MAC address/);
    expectKernel(r.afterHostile.x0, { mac: MAC_A, mtu: 9001, up: false });
    expectKernel(r.afterHostile.x1, { mac: MAC_B, mtu: 1500, up: false });
  });

  it('two interfaces with one MAC are ambiguous', async () => {
    const r = await net();
    expect(r.twins).toEqual(['x0', 'x2']);
    expect(err(r.ambiguous)).toMatchObject({ name: 'AmbiguousMacError', interfaceNames: ['x0', 'x2'] });
  });

  it('the activities never take a virtual interface for an ENI: not found, and left alone', async () => {
    const r = await net();
    expect(err(r.configureVirtual)).toMatchObject({ type: 'InterfaceNotFound', nonRetryable: false });
    expectKernel(r.afterConfigureVirtual, { mac: MAC_A, mtu: 9001, up: false });
    expect(value(r.releaseVirtual)).toEqual({ released: true });
    expectKernel(r.afterReleaseVirtual, { mac: MAC_A, mtu: 9001, up: true });
  });

  it('an interface deleted under the agent: ENOENT, and no longer found', async () => {
    const r = await net();
    // readInterface reads its attributes in parallel: whichever open fails first names its path.
    expect(err(r.vanishedRead)).toMatchObject({ code: 'ENOENT', path: expect.stringMatching(/^\/sys\/class\/net\/x1\/(address|mtu|flags|operstate)$/) });
    expect(err(r.vanishedSetMtu)).toMatchObject({ code: 'ENOENT', syscall: 'open', path: '/sys/class/net/x1/mtu' });
    expect(r.vanishedFind).toBeNull();
    expect(r.interfacesAtEnd).toEqual(['lo', 'v0', 'v0p', 'x0']);
  });
});

// ---------------------------------------------------------------------------

interface ChurnResult {
  scans: number;
  elapsedMs: number;
  readErrors: Record<string, number>;
  failures: Record<string, number>;
  wrongResults: number;
  churnError: string;
}

describe('the MAC scan while interfaces come and go (real kernel races)', () => {
  it('skips interfaces being unregistered (EINVAL on read), never failing or missing the wanted one', async () => {
    await hostBefore();
    const r = await runChild<ChurnResult>(NET_NS, ['churn']);
    expect(r.churnError).toBe('');
    // The scans really met interfaces dying underneath them: net-sysfs answers EINVAL (while one is
    // being unregistered) or ENOENT/ENODEV (once it is gone), depending on how the race falls; a
    // machine busy with other tests may never hit the EINVAL window in 30 s, the others it always does.
    const dying = (r.readErrors.EINVAL ?? 0) + (r.readErrors.ENOENT ?? 0) + (r.readErrors.ENODEV ?? 0);
    expect(dying, JSON.stringify(r)).toBeGreaterThan(0);
    expect(r.failures).toEqual({});
    expect(r.wrongResults).toBe(0);
    expect(r.scans).toBeGreaterThan(0);
  });
});

// ---------------------------------------------------------------------------

interface ActivitiesResult {
  kernelInitial: KernelView;
  configured: Outcome<unknown>;
  afterConfigure: KernelView;
  configuredAgain: Outcome<unknown>;
  afterConfigureAgain: KernelView;
  configuredNoMtu: Outcome<unknown>;
  badMtu: Outcome<unknown>;
  afterBadMtu: KernelView;
  fractionalMtu: Outcome<unknown>;
  missingConfigure: Outcome<unknown>;
  missingRelease: Outcome<unknown>;
  hostileMacs: { mac: string; configure: Outcome<unknown>; release: Outcome<unknown> }[];
  afterHostile: { x0: KernelView; v0: KernelView };
  routes: { interfaceName: string; destination: string; mask: string; gateway: string }[];
  releaseDefaultRoute: Outcome<unknown>;
  afterReleaseDefaultRoute: KernelView;
  released: Outcome<unknown>;
  afterRelease: KernelView;
  releasedAgain: Outcome<unknown>;
  reconfigured: Outcome<unknown>;
  staleRead: Outcome<unknown>;
  releaseDeleted: Outcome<unknown>;
  configureDeleted: Outcome<unknown>;
}

describe('configureInterface / releaseInterface (createNodeActivities on RealHost) against kernel interfaces', () => {
  // The interfaces' real attribute files, bind-mounted into a tmpfs host root
  // under a PCI function with a `device` link: no link type this kernel can
  // create in a namespace has a parent device, and an ENI always has one.
  const acts = once(async () => {
    await hostBefore();
    const root = await tempDir('root');
    return runChild<ActivitiesResult>(NET_NS, ['activities', root]);
  });

  it('configures by MAC: MTU, up, the PCI address reported; the kernel agrees; idempotent', async () => {
    const r = await acts();
    expectKernel(r.kernelInitial, { mac: MAC_A, mtu: 1500, up: false });
    const want = { interfaceName: 'x0', pciAddress: '0000:00:06.0', mtu: 9001, up: true };
    expect(value(r.configured)).toEqual(want);
    expectKernel(r.afterConfigure, { mac: MAC_A, mtu: 9001, up: true });
    expect(value(r.configuredAgain)).toEqual(want);
    expect(r.afterConfigureAgain).toEqual(r.afterConfigure);
    expect(value(r.configuredNoMtu)).toEqual(want);
  });

  it("the kernel's MTU refusal is InvalidMtu (non-retryable) and the interface stays down", async () => {
    const r = await acts();
    expect(err(r.badMtu)).toMatchObject({ type: 'InvalidMtu', nonRetryable: true });
    expect(err(r.badMtu).message).toMatch(/EINVAL/);
    expectKernel(r.afterBadMtu, { mac: MAC_C, mtu: 1500, up: false });
    expect(err(r.fractionalMtu)).toMatchObject({ type: 'InvalidMtu', nonRetryable: true });
  });

  it('a MAC that does not exist: InterfaceNotFound (retryable) to configure, already released to release', async () => {
    const r = await acts();
    expect(err(r.missingConfigure)).toMatchObject({ type: 'InterfaceNotFound', nonRetryable: false });
    expect(err(r.missingConfigure).message).toContain(MAC_MISSING);
    expect(err(r.missingConfigure).message).toContain(NODE_NAME);
    expect(value(r.missingRelease)).toEqual({ released: true });
  });

  it('hostile MACs are InvalidMacAddress (non-retryable); nothing changed', async () => {
    const r = await acts();
    expect(r.hostileMacs.map((h) => h.mac)).toEqual(HOSTILE_MACS);
    for (const h of r.hostileMacs) {
      expect(err(h.configure)).toMatchObject({ type: 'InvalidMacAddress', nonRetryable: true });
      expect(err(h.release)).toMatchObject({ type: 'InvalidMacAddress', nonRetryable: true });
    }
    expectKernel(r.afterHostile.x0, { mac: MAC_A, mtu: 9001, up: true });
    expectKernel(r.afterHostile.v0, { mac: MAC_C, mtu: 1500, up: false });
  });

  it('release refuses the interface that carries the default route (read from the namespace /proc/net/route)', async () => {
    const r = await acts();
    expect(r.routes).toContainEqual(expect.objectContaining({ interfaceName: 'x0', destination: '0.0.0.0', mask: '0.0.0.0', gateway: '10.77.0.1' }));
    expect(err(r.releaseDefaultRoute)).toMatchObject({ type: 'InterfaceCarriesDefaultRoute', nonRetryable: true });
    expectKernel(r.afterReleaseDefaultRoute, { mac: MAC_A, mtu: 9001, up: true });
  });

  it('releases (down) by MAC, idempotently; the kernel agrees', async () => {
    const r = await acts();
    expect(value(r.released)).toEqual({ interfaceName: 'x0', released: true });
    expectKernel(r.afterRelease, { mac: MAC_A, mtu: 9001, up: false });
    expect(value(r.releasedAgain)).toEqual({ interfaceName: 'x0', released: true });
  });

  it('an interface deleted while still listed: the kernel answers ENODEV; released / not found', async () => {
    const r = await acts();
    expect(value(r.reconfigured)).toMatchObject({ interfaceName: 'x0', mtu: 1500, up: true });
    expect(err(r.staleRead)).toMatchObject({ code: 'ENODEV' });
    expect(value(r.releaseDeleted)).toEqual({ released: true });
    expect(err(r.configureDeleted)).toMatchObject({ type: 'InterfaceNotFound', nonRetryable: false });
  });
});

interface DriftResult {
  configured: Outcome<unknown>;
  verifiedConfigured: Outcome<unknown>;
  kernelRebooted: KernelView;
  verifiedRebooted: Outcome<unknown>;
  kernelAfterVerify: KernelView;
  repaired: Outcome<unknown>;
  kernelRepaired: KernelView;
  verifiedRepaired: Outcome<unknown>;
  hostileMacs: { mac: string; verify: Outcome<unknown> }[];
  hostilePci: Outcome<unknown>;
  kernelAtEnd: KernelView;
}

describe('verifyInterfaces and the repair of reboot drift (createNodeActivities on RealHost) against a kernel interface', () => {
  const drift = once(async () => {
    await hostBefore();
    const root = await tempDir('drift');
    return runChild<DriftResult>(NET_NS, ['drift', root]);
  });
  const x0 = { interfaceName: 'x0', pciAddress: '0000:00:06.0' };

  it('ok as configured; mtu and down after the link was reset, read-only; ok again after configureInterface', async () => {
    const r = await drift();
    expect(value(r.configured)).toEqual({ ...x0, mtu: 9001, up: true });
    const missing = { macAddress: MAC_MISSING, ok: false, drift: [{ kind: 'missing' }], actual: {} };
    expect(value(r.verifiedConfigured)).toEqual({ ok: false, interfaces: [{ macAddress: MAC_A, ok: true, drift: [], actual: { ...x0, mtu: 9001, up: true } }, missing] });
    expectKernel(r.kernelRebooted, { mac: MAC_A, mtu: 1500, up: false });
    expect(value(r.verifiedRebooted)).toEqual({
      ok: false,
      interfaces: [{ macAddress: MAC_A, ok: false, drift: [{ kind: 'mtu', expected: 9001, actual: 1500 }, { kind: 'down' }], actual: { ...x0, mtu: 1500, up: false } }, missing],
    });
    expect(r.kernelAfterVerify).toEqual(r.kernelRebooted);
    expect(value(r.repaired)).toEqual({ ...x0, mtu: 9001, up: true });
    expectKernel(r.kernelRepaired, { mac: MAC_A, mtu: 9001, up: true });
    expect(value(r.verifiedRepaired)).toEqual({ ok: true, interfaces: [{ macAddress: MAC_A, ok: true, drift: [], actual: { ...x0, mtu: 9001, up: true } }] });
  });

  it('hostile MACs are InvalidMacAddress, a hostile PCI address InvalidInput (non-retryable); nothing changed', async () => {
    const r = await drift();
    expect(r.hostileMacs.map((h) => h.mac)).toEqual(HOSTILE_MACS);
    for (const h of r.hostileMacs) expect(err(h.verify)).toMatchObject({ type: 'InvalidMacAddress', nonRetryable: true });
    expect(err(r.hostilePci)).toMatchObject({ type: 'InvalidInput', nonRetryable: true });
    expect(r.kernelAtEnd).toEqual(r.kernelRepaired);
  });
});

describe('the host after the network namespaces', () => {
  it('kept its interfaces unchanged, got none of the test links and no mounts', async () => {
    const before = await hostBefore();
    const after = await hostLinks();
    for (const name of TEST_LINKS) expect(after.has(name), name).toBe(false);
    for (const [name, state] of before) {
      if (after.has(name)) expect(after.get(name), name).toBe(state);
    }
    expect(await leakedMounts()).toEqual([]);
  });
});

// ---------------------------------------------------------------------------

/** The real cgroup2 mount: the first `cgroup2` line of mountinfo whose root is the hierarchy's root. */
async function cgroup2Mount(): Promise<string> {
  for (const line of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const fields = left.split(' ');
    const [fstype] = right.split(' ');
    if (fstype === 'cgroup2' && fields[3] === '/' && (fields[5] ?? '').split(',').includes('rw')) return unescapeMountinfo(fields[4]!);
  }
  throw new Error('no read-write cgroup2 mount of the hierarchy root in /proc/self/mountinfo: these tests need cgroup v2');
}

interface CgroupResult {
  namespaces: { mnt: string };
  found: { containerId: string; cgroup: string | null; threads: number[]; processes: number[]; tasksBefore: number[]; tasksAfter: number[] }[];
  unknownContainer: string | null;
  goneThreads: number[];
  hostile: Record<'dotdot' | 'outside' | 'podUid' | 'containerId' | 'qos', Outcome<unknown>>;
}

describe('host/cgroup.ts on RealHost against a real cgroup2 hierarchy', () => {
  const POD_A = '7a1c9e2b-3d4f-4a5b-8c6d-9e0f1a2b3c4d';
  const POD_B = 'c0ffee00-1111-4222-8333-944445555666';
  const ID_A = randomBytes(32).toString('hex');
  const ID_B = randomBytes(32).toString('hex');
  /** Systemd driver, Burstable: the expected path. */
  const REL_A = `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${POD_A.replaceAll('-', '_')}.slice/cri-containerd-${ID_A}.scope`;
  /** KIND-style (kubelet.slice root): only the bounded walk finds it. */
  const REL_B = `kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod${POD_B.replaceAll('-', '_')}.slice/cri-containerd-${ID_B}.scope`;

  let testDir: string | undefined;
  const processes: ChildProcess[] = [];

  function started(child: ChildProcess, readyLine?: string): Promise<number> {
    return new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code, signal) => reject(new Error(`${child.spawnfile} exited early (${code ?? signal})`)));
      if (!readyLine) child.once('spawn', () => resolve(child.pid!));
      else child.stdout!.on('data', (d: Buffer) => d.toString().includes(readyLine) && resolve(child.pid!));
    });
  }

  const setup = once(async () => {
    requireRoot();
    const mount = await cgroup2Mount();
    await sweepStale(mount);
    testDir = path.join(mount, `${MARK}-${process.pid}-${randomBytes(4).toString('hex')}`);
    await mkdir(testDir);
    await mkdir(path.join(testDir, REL_A), { recursive: true });
    await mkdir(path.join(testDir, REL_B), { recursive: true });

    // Real processes: two single-threaded sleeps and a multi-threaded node (V8 and libuv threads).
    // The node one exits when our end of its stdin closes, so nothing outlives a killed test run.
    const sleepA = spawn('sleep', ['30'], { stdio: 'ignore' });
    const nodeA = spawn(process.execPath, ['-e', "process.stdin.on('end', () => process.exit(0)).resume(); require('fs').stat('/', () => process.stdout.write('ready\\n')); setTimeout(() => process.exit(0), 60000)"], { stdio: ['pipe', 'pipe', 'inherit'], env: { PATH: process.env.PATH ?? '' } });
    const sleepB = spawn('sleep', ['30'], { stdio: 'ignore' });
    processes.push(sleepA, nodeA, sleepB);
    const [pidSleepA, pidNodeA, pidSleepB] = await Promise.all([started(sleepA), started(nodeA, 'ready'), started(sleepB)]);
    for (const c of processes) c.removeAllListeners('exit');

    // What the runtime does: write each PID to the container cgroup's cgroup.procs (the whole thread group moves).
    await writeFile(path.join(testDir, REL_A, 'cgroup.procs'), `${pidSleepA}\n`);
    await writeFile(path.join(testDir, REL_A, 'cgroup.procs'), `${pidNodeA}\n`);
    await writeFile(path.join(testDir, REL_B, 'cgroup.procs'), `${pidSleepB}\n`);
    const cgroupOf = async (pid: number) => (await readFile(`/proc/${pid}/cgroup`, 'utf8')).split('\n').find((l) => l.startsWith('0::'));
    const rel = path.relative(mount, testDir);
    const kernelSays = { sleepA: await cgroupOf(pidSleepA!), nodeA: await cgroupOf(pidNodeA!), sleepB: await cgroupOf(pidSleepB!) };
    const expectedCgroup = { sleepA: `0::/${rel}/${REL_A}`, nodeA: `0::/${rel}/${REL_A}`, sleepB: `0::/${rel}/${REL_B}` };

    // The node agent's view: the test directory bind-mounted at <root>/sys/fs/cgroup in a private mount namespace.
    const root = await tempDir('cgroot');
    await mkdir(path.join(root, 'sys/fs/cgroup'), { recursive: true });
    const containers: CgroupContainer[] = [
      { podUid: POD_A, qos: 'Burstable', containerId: ID_A, pids: [pidSleepA!, pidNodeA!] },
      { podUid: POD_B, qos: 'BestEffort', containerId: ID_B, pids: [pidSleepB!] },
    ];
    const result = await runChild<CgroupResult>(MOUNT_NS, ['cgroup', root, testDir, JSON.stringify(containers)]);
    return { result, kernelSays, expectedCgroup, pids: { sleepA: pidSleepA!, nodeA: pidNodeA!, sleepB: pidSleepB! } };
  });

  afterAll(async () => {
    await Promise.all(processes.map((c) => stop(c)));
    if (testDir) await removeCgroupTree(testDir);
  });

  it('the processes are in the test cgroups (kernel view, /proc/<pid>/cgroup)', async () => {
    const s = await setup();
    expect(s.kernelSays).toEqual(s.expectedCgroup);
  });

  it('finds the container cgroup at the systemd-driver path and lists every thread and process', async () => {
    const { result, pids } = await setup();
    const ours = await hostNamespaces();
    expect(result.namespaces.mnt).not.toBe(ours.mnt);
    const a = result.found[0]!;
    expect(a.cgroup).toBe(`/sys/fs/cgroup/${REL_A}`);
    expect([...a.processes].sort((x, y) => x - y)).toEqual([pids.sleepA, pids.nodeA].sort((x, y) => x - y));
    // cgroup.threads: every TID of both processes (the node one has several).
    const threads = [...a.threads].sort((x, y) => x - y);
    expect(threads.length).toBeGreaterThan(2);
    expect(threads).toContain(pids.sleepA);
    expect(threads).toContain(pids.nodeA);
    for (const tid of a.tasksBefore) expect(threads).toContain(tid);
    for (const tid of threads) expect(a.tasksAfter).toContain(tid);
  });

  it('finds a KIND-style cgroup by the bounded walk; unknown and removed cgroups are absent / empty', async () => {
    const { result, pids } = await setup();
    const b = result.found[1]!;
    expect(b.cgroup).toBe(`/sys/fs/cgroup/${REL_B}`);
    expect(b.threads).toEqual([pids.sleepB]);
    expect(b.processes).toEqual([pids.sleepB]);
    expect(result.unknownContainer).toBeNull();
    expect(result.goneThreads).toEqual([]);
  });

  it('refuses hostile cgroup paths, pod UIDs, container IDs and QoS classes', async () => {
    const { result } = await setup();
    for (const o of Object.values(result.hostile)) expect(err(o)).toMatchObject({ name: 'ResctrlError', kind: 'InvalidInput' });
  });

  it('leaves no cgroup, process or mount behind', async () => {
    const s = await setup();
    await Promise.all(processes.map((c) => stop(c)));
    for (const pid of Object.values(s.pids)) expect(await readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => 'gone')).toBe('gone');
    const dir = testDir!;
    await removeCgroupTree(dir);
    await expect(readdir(dir)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await leakedMounts()).toEqual([]);
  });
});

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
}

/** rmdir deepest first; a cgroup whose last task just exited may answer EBUSY for a moment. */
async function removeCgroupTree(dir: string): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(dir, { withFileTypes: true }).then((d) => d.filter((e) => e.isDirectory()).map((e) => e.name));
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return;
    throw e;
  }
  for (const name of entries) await removeCgroupTree(path.join(dir, name));
  for (let attempt = 0; ; attempt++) {
    try {
      await rmdir(dir);
      return;
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || attempt >= 50) throw e;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** Test cgroups of earlier runs whose process is gone (a killed run): removed when empty, best effort. */
async function sweepStale(mount: string): Promise<void> {
  for (const name of await readdir(mount)) {
    const m = new RegExp(`^${MARK}-(\\d+)-[0-9a-f]+$`).exec(name);
    if (!m || (await readFile(`/proc/${m[1]}/stat`).then(() => true, () => false))) continue;
    await removeCgroupTree(path.join(mount, name)).catch(() => undefined);
  }
}

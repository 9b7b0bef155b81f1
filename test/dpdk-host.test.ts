// vfio in the simulated kernel (IOMMU groups, no-IOMMU mode, /dev/vfio, a
// blocking unbind while the device is open) and host/dpdk.ts's bind/unbind
// procedures on it: verification, rollback at each step, lookup by MAC after
// a rename, idempotent re-runs, resuming a half-done bind, and input
// validation that touches nothing. Last, the same procedures on a real-fs
// tmpdir host root: nothing is written for bad input or outside the root.
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bindToDpdk, DpdkError, findDeviceByMac, hostHasIommu, inspectInterface, inspectPciDevice, unbindFromDpdk, type BindOptions, type DpdkErrorKind } from '../host/dpdk.js';
import { HostUsageError, type Host } from '../host/host.js';
import { RealHost } from '../host/real-host.js';
import { SimHost, type SimHostOptions } from '../host/sim/sim-host.js';
import { interceptWrites, treeFingerprint } from './support/host-testing.js';

const PRIMARY_MAC = '02:00:00:00:00:05';
const ENI_MAC = '02:aa:bb:cc:dd:06';
const BDF = '0000:00:06.0';
const dev = (f: string) => `/sys/bus/pci/devices/${BDF}/${f}`;
const FAST = { writeTimeoutMs: 100, netdevTimeoutMs: 300, pollMs: 10 };

function newHost(opts: SimHostOptions = {}): SimHost {
  const host = new SimHost({ primary: { macAddress: PRIMARY_MAC }, ...opts });
  host.hotplugEna({ macAddress: ENI_MAC });
  return host;
}

function bindOpts(extra: Partial<BindOptions> = {}): BindOptions {
  return { macAddress: ENI_MAC, driver: 'vfio-pci', enableNoIommu: true, ...FAST, ...extra };
}

/** A Host that records writes and can run a hook before each one. */
function recording(inner: Host, beforeWrite?: (p: string, data: string) => void): Host & { writes: string[] } {
  const writes: string[] = [];
  const host = interceptWrites(inner, (p, data) => {
    beforeWrite?.(p, data);
    writes.push(`${p}=${JSON.stringify(data)}`);
  });
  return Object.assign(host, { writes });
}

async function dpdkErrorOf(p: Promise<unknown>, kind: DpdkErrorKind): Promise<DpdkError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected DpdkError ${kind}`).toBeInstanceOf(DpdkError);
  expect((err as DpdkError).kind, (err as Error).message).toBe(kind);
  return err as DpdkError;
}

async function errnoOf(p: Promise<unknown>): Promise<string | undefined> {
  return p.then(
    () => undefined,
    (e: unknown) => (e as { code?: string }).code,
  );
}

async function driverOf(host: Host, bdf = BDF): Promise<string | undefined> {
  const p = `/sys/bus/pci/devices/${bdf}/driver`;
  if (!(await host.exists(p))) return undefined;
  return (await host.readlink(p)).split('/').at(-1);
}

describe('vfio-pci in the simulated kernel', () => {
  it('binds only through driver_override; without an IOMMU the probe is EINVAL until no-IOMMU mode is on', async () => {
    const host = newHost({ vfio: true });
    expect(await host.readdir('/sys/bus/pci/drivers/vfio-pci')).toEqual(['bind', 'unbind']);
    expect(await host.readdir('/dev/vfio')).toEqual(['vfio']);
    expect(await host.readdir('/sys/kernel/iommu_groups')).toEqual([]);
    expect(await host.exists(dev('iommu_group'))).toBe(false);
    const param = '/sys/module/vfio/parameters/enable_unsafe_noiommu_mode';
    expect(await host.readFile(param)).toBe('N\n');

    // Empty ID table: without an override it matches nothing, even when the device is free.
    await host.write('/sys/bus/pci/drivers/ena/unbind', BDF);
    expect(await errnoOf(host.write('/sys/bus/pci/drivers/vfio-pci/bind', BDF))).toBe('ENODEV');
    await host.write(dev('driver_override'), 'vfio-pci');
    // drivers_probe succeeds although the probe fails; bind reports the probe's errno.
    await host.write('/sys/bus/pci/drivers_probe', BDF);
    expect(await driverOf(host)).toBeUndefined();
    expect(await errnoOf(host.write('/sys/bus/pci/drivers/vfio-pci/bind', BDF))).toBe('EINVAL');

    await host.write(param, '1\n');
    expect(await host.readFile(param)).toBe('Y\n');
    await host.write('/sys/bus/pci/drivers/vfio-pci/bind', BDF);
    expect(await driverOf(host)).toBe('vfio-pci');
    expect(await host.readlink(dev('iommu_group'))).toBe('../../../kernel/iommu_groups/0');
    expect(await host.readFile('/sys/kernel/iommu_groups/0/name')).toBe('vfio-noiommu\n');
    expect(await host.readdir('/sys/kernel/iommu_groups/0/devices')).toEqual([BDF]);
    expect(await host.readFile('/sys/kernel/iommu_groups/0/devices/0000:00:06.0/vendor')).toBe('0x1d0f\n');
    expect(await host.readdir('/dev/vfio')).toEqual(['noiommu-0', 'vfio']);
    expect(await host.exists(dev('net'))).toBe(false);
    expect(await hostHasIommu(host)).toBe(false);

    // Unbinding frees the fabricated group and its device node.
    await host.write('/sys/bus/pci/drivers/vfio-pci/unbind', BDF);
    expect(await host.readdir('/sys/kernel/iommu_groups')).toEqual([]);
    expect(await host.readdir('/dev/vfio')).toEqual(['vfio']);
    expect(await host.exists(dev('iommu_group'))).toBe(false);

    for (const [written, shown] of [['n', 'N'], ['on', 'Y'], ['0', 'N'], ['Yes', 'Y'], ['off', 'N']] as const) {
      await host.write(param, written);
      expect(await host.readFile(param)).toBe(`${shown}\n`);
    }
    expect(await errnoOf(host.write(param, 'x'))).toBe('EINVAL');
    expect(await errnoOf(host.write(param, 'o'))).toBe('EINVAL');
  });

  it('with an IOMMU every device has a platform group from boot and vfio creates /dev/vfio/<N>', async () => {
    const host = newHost({ vfio: true, iommu: true });
    expect(await host.readdir('/sys/kernel/iommu_groups')).toEqual(['0', '1']);
    expect(await host.readlink('/sys/bus/pci/devices/0000:00:05.0/iommu_group')).toBe('../../../kernel/iommu_groups/0');
    expect(await host.readlink(dev('iommu_group'))).toBe('../../../kernel/iommu_groups/1');
    expect(await host.exists('/sys/kernel/iommu_groups/1/name')).toBe(false);
    expect(await hostHasIommu(host)).toBe(true);
    await host.write(dev('driver_override'), 'vfio-pci');
    await host.write('/sys/bus/pci/drivers/ena/unbind', BDF);
    await host.write('/sys/bus/pci/drivers_probe', BDF);
    expect(await driverOf(host)).toBe('vfio-pci');
    expect(await host.readdir('/dev/vfio')).toEqual(['1', 'vfio']);
    expect(host.snapshot().vfio.groups).toEqual([
      { id: 0, noiommu: false, devices: ['0000:00:05.0'], vfioDevice: null },
      { id: 1, noiommu: false, devices: [BDF], vfioDevice: '/dev/vfio/1' },
    ]);
    // A hot-plugged device gets the next group.
    host.hotplugEna({ macAddress: '02:aa:bb:cc:dd:07' });
    expect(await host.readlink('/sys/bus/pci/devices/0000:00:07.0/iommu_group')).toBe('../../../kernel/iommu_groups/2');
  });

  it('module files exist only while vfio is loaded; the parameter needs CONFIG_VFIO_NOIOMMU', async () => {
    const host = newHost();
    expect(await host.exists('/sys/bus/pci/drivers/vfio-pci')).toBe(false);
    expect(await host.exists('/sys/module/vfio')).toBe(false);
    expect(await host.exists('/dev/vfio')).toBe(false);
    expect(host.snapshot().vfio).toMatchObject({ loaded: false, noiommuMode: null, iommu: false });
    host.loadVfio({ noiommuMode: true });
    expect(await host.readFile('/sys/module/vfio/parameters/enable_unsafe_noiommu_mode')).toBe('Y\n');
    host.unloadVfio();
    host.loadVfio();
    // Module parameters start over on a reload.
    expect(await host.readFile('/sys/module/vfio/parameters/enable_unsafe_noiommu_mode')).toBe('N\n');

    const old = newHost({ vfio: true, noiommuSupported: false });
    expect(await old.readdir('/sys/module/vfio/parameters')).toEqual([]);
    expect(old.snapshot().vfio.noiommuMode).toBeNull();
  });

  it('an open device blocks the vfio-pci unbind write, and every store on the device, until it is released', async () => {
    const host = newHost({ vfio: { noiommuMode: true } });
    await host.write(dev('driver_override'), 'vfio-pci');
    await host.write('/sys/bus/pci/drivers/ena/unbind', BDF);
    await host.write('/sys/bus/pci/drivers_probe', BDF);
    expect(() => host.setDeviceInUse('0000:00:05.0', true)).toThrow(/not bound to vfio-pci/);
    host.setDeviceInUse(BDF, true);
    expect(host.snapshot().vfio.devicesInUse).toEqual([BDF]);
    expect(() => host.unloadVfio()).toThrow(/EBUSY/);

    const order: string[] = [];
    const unbind = host.write('/sys/bus/pci/drivers/vfio-pci/unbind', BDF).then(() => order.push('unbind'));
    const clear = host.write(dev('driver_override'), '\n').then(() => order.push('override'));
    const probe = host.write('/sys/bus/pci/drivers_probe', BDF).then(() => order.push('probe'));
    await new Promise((r) => setTimeout(r, 50));
    expect(order).toEqual([]);
    // driver_sysfs_remove already ran: the link is gone, the group and its node remain.
    expect(await host.exists(dev('driver'))).toBe(false);
    expect(await host.readdir('/sys/bus/pci/drivers/vfio-pci')).toEqual(['bind', 'unbind']);
    expect(await host.readdir('/dev/vfio')).toEqual(['noiommu-0', 'vfio']);

    host.setDeviceInUse(BDF, false);
    await Promise.all([unbind, clear, probe]);
    expect(order).toEqual(['unbind', 'override', 'probe']);
    expect(await driverOf(host)).toBe('ena');
    expect(await host.readdir('/dev/vfio')).toEqual(['vfio']);
    expect(await host.readFile('/sys/class/net/ens6/address')).toBe(`${ENI_MAC}\n`);
  });

  it('failNextWrite fails exactly the next write to that path, before the store runs', async () => {
    const host = newHost();
    host.failNextWrite(dev('driver_override'), 'EIO');
    host.failNextWrite(dev('driver_override'), 'EPERM');
    const first = await host.write(dev('driver_override'), 'vfio-pci').catch((e: unknown) => e);
    expect(first).toMatchObject({ code: 'EIO', syscall: 'write', path: dev('driver_override') });
    expect(await errnoOf(host.write(dev('driver_override'), 'vfio-pci'))).toBe('EPERM');
    expect(await host.readFile(dev('driver_override'))).toBe('(null)\n');
    await host.write(dev('driver_override'), 'vfio-pci');
    expect(await host.readFile(dev('driver_override'))).toBe('vfio-pci\n');
    expect(() => host.failNextWrite('/sys/../etc', 'EIO')).toThrow(HostUsageError);
  });

  it('renameOnRebind: ena names a rebound device ethN, and the MAC still finds it', async () => {
    const host = newHost({ renameOnRebind: true });
    await host.write('/sys/bus/pci/drivers/ena/unbind', BDF);
    await host.write('/sys/bus/pci/drivers/ena/bind', BDF);
    expect(await host.readdir('/sys/class/net')).toEqual(['ens5', 'eth0', 'lo']);
    expect((await findDeviceByMac(host, ENI_MAC))?.interfaceName).toBe('eth0');
    host.setRenameOnRebind(false);
    await host.write('/sys/bus/pci/drivers/ena/unbind', BDF);
    await host.write('/sys/bus/pci/drivers/ena/bind', BDF);
    expect((await findDeviceByMac(host, ENI_MAC))?.interfaceName).toBe('ens6');
  });

  it('/proc/net/if_inet6 lists ::1, EUI-64 link-local and explicit addresses of up devices', async () => {
    const host = newHost();
    await host.write('/sys/class/net/ens6/flags', '0x1003');
    host.addIpv6Address('ens6', '2001:DB8::6', 64);
    const lines = (await host.readFile('/proc/net/if_inet6')).split('\n').filter((l) => l);
    expect(lines).toEqual([
      '00000000000000000000000000000001 01 80 10 80       lo',
      'fe80000000000000000000fffe000005 02 40 20 80     ens5',
      'fe8000000000000000aabbfffeccdd06 03 40 20 80     ens6',
      '20010db8000000000000000000000006 03 40 00 80     ens6',
    ]);
    expect(() => host.addIpv6Address('ens6', '10.0.0.1')).toThrow(/not an IPv6/);
  });
});

describe('bindToDpdk on the simulated host', () => {
  it('with an IOMMU: override, unbind, probe, then verified (driver link, group node, netdev gone)', async () => {
    const sim = newHost({ vfio: true, iommu: true });
    const host = recording(sim);
    const binding = await bindToDpdk(host, bindOpts());
    expect(binding).toEqual({ pciAddress: BDF, driver: 'vfio-pci', originalDriver: 'ena', interfaceName: 'ens6', macAddress: ENI_MAC, iommuGroup: '1', vfioDevice: '/dev/vfio/1', noIommu: false });
    expect(host.writes).toEqual([`${dev('driver_override')}="vfio-pci"`, `/sys/bus/pci/drivers/ena/unbind="${BDF}"`, `/sys/bus/pci/drivers_probe="${BDF}"`]);
    const snap = sim.snapshot();
    expect(snap.pciDevices.find((d) => d.address === BDF)).toMatchObject({ driver: 'vfio-pci', driverOverride: 'vfio-pci', interfaceName: null });
    expect(snap.vfio.noiommuMode).toBe(false);
    expect(await sim.exists('/sys/class/net/ens6')).toBe(false);

    // Idempotent: the MAC's netdev is gone, the record finds the binding, nothing is written.
    expect(await bindToDpdk(host, bindOpts({ macAddress: ENI_MAC.toUpperCase(), expectedPciAddress: BDF }))).toEqual(binding);
    expect(host.writes).toHaveLength(3);
  });

  it('without an IOMMU: switches on no-IOMMU mode and binds to a fabricated group (/dev/vfio/noiommu-N)', async () => {
    const sim = newHost({ vfio: true });
    const binding = await bindToDpdk(sim, bindOpts());
    expect(binding).toMatchObject({ iommuGroup: '0', vfioDevice: '/dev/vfio/noiommu-0', noIommu: true });
    expect(sim.snapshot().vfio).toMatchObject({ noiommuMode: true, groups: [{ id: 0, noiommu: true, devices: [BDF], vfioDevice: '/dev/vfio/noiommu-0' }] });
  });

  it('refuses before touching anything: driver missing, no-IOMMU off, primary, routes, addresses, another PCI address', async () => {
    const cases: Array<{ name: string; host: SimHost; opts: Partial<BindOptions>; kind: DpdkErrorKind; message: RegExp; prepare?: (h: SimHost) => Promise<void> }> = [
      { name: 'vfio-pci not loaded', host: newHost(), opts: {}, kind: 'DriverMissing', message: /vfio-pci is not loaded/ },
      { name: 'igb_uio not loaded', host: newHost({ vfio: true }), opts: { driver: 'igb_uio' }, kind: 'DriverMissing', message: /igb_uio/ },
      { name: 'no IOMMU, not allowed to enable', host: newHost({ vfio: true }), opts: { enableNoIommu: false }, kind: 'NoIommuDisabled', message: /no IOMMU.*enableNoIommu=false/ },
      { name: 'no IOMMU, no parameter', host: newHost({ vfio: true, noiommuSupported: false }), opts: {}, kind: 'NoIommuDisabled', message: /CONFIG_VFIO_NOIOMMU/ },
      { name: 'primary by MAC', host: newHost({ vfio: true }), opts: { primaryMac: ENI_MAC }, kind: 'InterfaceInUse', message: /primary interface/ },
      { name: 'default route', host: newHost({ vfio: true }), opts: { macAddress: PRIMARY_MAC }, kind: 'InterfaceInUse', message: /ens5 carries the default route/ },
      {
        name: 'a route',
        host: newHost({ vfio: true }),
        opts: {},
        kind: 'InterfaceInUse',
        message: /ens6 carries routes \(10\.0\.2\.0\/255\.255\.255\.0\)/,
        prepare: async (h) => {
          await h.write('/sys/class/net/ens6/flags', '0x1003');
          h.addRoute({ interfaceName: 'ens6', destination: '10.0.2.0/24' });
        },
      },
      {
        name: 'a global IPv6 address',
        host: newHost({ vfio: true }),
        opts: {},
        kind: 'InterfaceInUse',
        message: /ens6 has IPv6 addresses \(2001:0db8:0000:0000:0000:0000:0000:0006\)/,
        prepare: async (h) => {
          await h.write('/sys/class/net/ens6/flags', '0x1003');
          h.addIpv6Address('ens6', '2001:db8::6');
        },
      },
      { name: 'dpdkPCIAddress elsewhere', host: newHost({ vfio: true }), opts: { expectedPciAddress: '0000:00:07.0' }, kind: 'PciAddressMismatch', message: /at PCI address 0000:00:06\.0, not at the expected 0000:00:07\.0/ },
      { name: 'no device yet', host: new SimHost({ primary: { macAddress: PRIMARY_MAC }, vfio: true }), opts: {}, kind: 'NotFound', message: /no interface with MAC/ },
    ];
    for (const c of cases) {
      await c.prepare?.(c.host);
      const before = c.host.snapshot();
      const host = recording(c.host);
      const err = await dpdkErrorOf(bindToDpdk(host, bindOpts(c.opts)), c.kind);
      expect(err.message, c.name).toMatch(c.message);
      expect(host.writes, c.name).toEqual([]);
      expect(c.host.snapshot(), c.name).toEqual(before);
      expect(await c.host.readdir('/run'), c.name).toEqual([]);
    }
  });

  it('an up interface with only its link-local IPv6 address may be bound', async () => {
    const sim = newHost({ vfio: true });
    await sim.write('/sys/class/net/ens6/flags', '0x1003');
    expect(await sim.readFile('/proc/net/if_inet6')).toContain(' ens6\n');
    expect((await bindToDpdk(sim, bindOpts())).interfaceName).toBe('ens6');
  });

  for (const [step, path, code] of [
    ['driver_override', dev('driver_override'), 'EINVAL'],
    ['unbind', '/sys/bus/pci/drivers/ena/unbind', 'EBUSY'],
  ] as const) {
    it(`a failure at ${step} rolls back; the host is exactly as before`, async () => {
      const sim = newHost({ vfio: { noiommuMode: true } });
      const before = sim.snapshot();
      sim.failNextWrite(path, code);
      const err = await dpdkErrorOf(bindToDpdk(sim, bindOpts()), 'BindFailed');
      expect(err.message).toContain(`failed at step ${step}`);
      expect(err.message).toContain(code);
      expect(err.message).toMatch(/rolled back: 0000:00:06\.0 is on ena again as ens6/);
      expect(err.details).toMatchObject({ step, errno: code, rolledBack: true, interfaceName: 'ens6' });
      expect(sim.snapshot()).toEqual(before);
      // The record is released: a new attempt starts from scratch and succeeds.
      expect((await bindToDpdk(sim, bindOpts())).driver).toBe('vfio-pci');
    });
  }

  it('a failure at drivers_probe rolls back to ena; the interface is back, found by MAC under its new name', async () => {
    const sim = newHost({ vfio: { noiommuMode: true }, renameOnRebind: true });
    sim.failNextWrite('/sys/bus/pci/drivers_probe', 'EIO');
    const err = await dpdkErrorOf(bindToDpdk(sim, bindOpts()), 'BindFailed');
    expect(err.message).toMatch(/failed at step drivers_probe: EIO.*rolled back: 0000:00:06\.0 is on ena again as eth0/);
    const snap = sim.snapshot();
    expect(snap.pciDevices.find((d) => d.address === BDF)).toEqual({ address: BDF, vendor: '0x1d0f', device: '0xec20', macAddress: ENI_MAC, driver: 'ena', driverOverride: null, interfaceName: 'eth0' });
    expect(snap.vfio.groups).toEqual([]);
    expect((await findDeviceByMac(sim, ENI_MAC))?.pciAddress).toBe(BDF);
  });

  it('drivers_probe that binds nothing: the bind write gives the reason (EINVAL), then rollback', async () => {
    const sim = newHost({ vfio: true });
    // Someone switches no-IOMMU mode off between the preflight and the probe.
    const host = recording(sim, (p) => {
      if (p !== '/sys/bus/pci/drivers_probe') return;
      sim.unloadVfio();
      sim.loadVfio();
    });
    const err = await dpdkErrorOf(bindToDpdk(host, bindOpts()), 'BindFailed');
    expect(err.details).toMatchObject({ step: 'bind', errno: 'EINVAL', rolledBack: true });
    expect(host.writes).toEqual([
      '/sys/module/vfio/parameters/enable_unsafe_noiommu_mode="1"',
      `${dev('driver_override')}="vfio-pci"`,
      `/sys/bus/pci/drivers/ena/unbind="${BDF}"`,
      `/sys/bus/pci/drivers_probe="${BDF}"`,
      `/sys/bus/pci/drivers/vfio-pci/bind="${BDF}"`,
      `${dev('driver_override')}="\\n"`,
      `/sys/bus/pci/drivers/ena/bind="${BDF}"`,
    ]);
    expect(await driverOf(sim)).toBe('ena');
  });

  it('a failed verification after a successful bind unbinds vfio-pci again', async () => {
    const sim = newHost({ vfio: { noiommuMode: true } });
    // The group's device node cannot be found: the hook hides /dev/vfio from exists().
    const host: Host = { ...recording(sim), exists: async (p) => (p.startsWith('/dev/vfio/') ? false : sim.exists(p)) };
    const err = await dpdkErrorOf(bindToDpdk(host, bindOpts()), 'BindFailed');
    expect(err.message).toMatch(/failed at step verify: .*\/dev\/vfio\/noiommu-0 does not exist/);
    expect(await driverOf(sim)).toBe('ena');
    expect(sim.snapshot().vfio.groups).toEqual([]);
  });

  it('when the rollback fails too: RollbackFailed names both steps and the driver the device is left on', async () => {
    const sim = newHost({ vfio: { noiommuMode: true } });
    sim.failNextWrite('/sys/bus/pci/drivers_probe', 'EIO');
    sim.failNextWrite('/sys/bus/pci/drivers/ena/bind', 'EIO');
    sim.failNextWrite('/sys/bus/pci/drivers_probe', 'EIO');
    const err = await dpdkErrorOf(bindToDpdk(sim, bindOpts()), 'RollbackFailed');
    expect(err.message).toMatch(/failed at step drivers_probe: EIO.*rollback failed at "bind to ena".*now on no driver/);
    expect(err.details).toMatchObject({ rolledBack: false, currentDriver: null });
  });

  it('with one injected failure in the rollback bind, drivers_probe still gets the device back to ena', async () => {
    const sim = newHost({ vfio: { noiommuMode: true } });
    sim.failNextWrite('/sys/bus/pci/drivers_probe', 'EIO');
    sim.failNextWrite('/sys/bus/pci/drivers/ena/bind', 'EIO');
    await dpdkErrorOf(bindToDpdk(sim, bindOpts()), 'BindFailed');
    expect(await driverOf(sim)).toBe('ena');
  });

  it('resumes a bind that stopped after the unbind (worker crash): probe and verify from the record', async () => {
    const sim = newHost({ vfio: { noiommuMode: true } });
    const first = await bindToDpdk(sim, bindOpts());
    // The state a crash between unbind and drivers_probe leaves: no driver, override set, netdev gone.
    await sim.write('/sys/bus/pci/drivers/vfio-pci/unbind', BDF);
    expect(await driverOf(sim)).toBeUndefined();
    const host = recording(sim);
    expect(await bindToDpdk(host, bindOpts())).toEqual(first);
    expect(host.writes).toEqual([`${dev('driver_override')}="vfio-pci"`, `/sys/bus/pci/drivers_probe="${BDF}"`]);
    // Bound to another DPDK driver than asked: refused.
    expect((await dpdkErrorOf(bindToDpdk(sim, bindOpts({ driver: 'igb_uio' })), 'InterfaceInUse')).message).toMatch(/bound to vfio-pci, not igb_uio/);
  });
});

describe('unbindFromDpdk on the simulated host', () => {
  it('teardown: back to ena, found by MAC although renamed, MTU restored, idempotent', async () => {
    const sim = newHost({ vfio: { noiommuMode: true }, renameOnRebind: true });
    const binding = await bindToDpdk(sim, bindOpts());
    const host = recording(sim);
    const back = await unbindFromDpdk(host, { macAddress: ENI_MAC, pciAddress: binding.pciAddress, originalDriver: binding.originalDriver, mtu: 9001, ...FAST });
    expect(back).toEqual({ interfaceName: 'eth0', pciAddress: BDF, driver: 'ena' });
    expect(host.writes).toEqual([`/sys/bus/pci/drivers/vfio-pci/unbind="${BDF}"`, `${dev('driver_override')}="\\n"`, `/sys/bus/pci/drivers/ena/bind="${BDF}"`, '/sys/class/net/eth0/mtu="9001"']);
    expect(sim.snapshot().pciDevices.find((d) => d.address === BDF)).toMatchObject({ driver: 'ena', driverOverride: null, interfaceName: 'eth0' });
    expect(sim.snapshot().vfio.groups).toEqual([]);
    expect(await sim.readFile('/sys/class/net/eth0/mtu')).toBe('9001\n');

    expect(await unbindFromDpdk(host, { macAddress: ENI_MAC, pciAddress: BDF, originalDriver: 'ena', mtu: 9001, ...FAST })).toEqual(back);
    expect(host.writes).toHaveLength(4);
    // The binding record is released: a bind by MAC starts afresh from the netdev.
    expect((await bindToDpdk(sim, bindOpts())).interfaceName).toBe('eth0');
  });

  it('a device at the same address that is not ours (a node re-created on another machine) is left alone', async () => {
    const sim = newHost({ vfio: { noiommuMode: true } });
    // Another ENI (MAC 06) is bound here by someone else; the teardown asks for an ENI with another MAC at the same address.
    await bindToDpdk(sim, bindOpts());
    const host = recording(sim);
    const res = await unbindFromDpdk(host, { macAddress: '02:aa:bb:cc:dd:99', pciAddress: BDF, originalDriver: 'ena', mtu: 9001, ...FAST });
    expect(res).toMatchObject({ pciAddress: BDF, gone: true });
    expect(host.writes).toEqual([]);
    expect(await driverOf(sim)).toBe('vfio-pci');
  });

  it('an open device: the bounded unbind reports DeviceInUse, stacks no second write, then completes after release', async () => {
    const sim = newHost({ vfio: { noiommuMode: true } });
    await bindToDpdk(sim, bindOpts());
    sim.setDeviceInUse(BDF, true);
    const host = recording(sim);
    const input = { macAddress: ENI_MAC, pciAddress: BDF, originalDriver: 'ena', ...FAST };
    const err = await dpdkErrorOf(unbindFromDpdk(host, input), 'DeviceInUse');
    expect(err.message).toMatch(/did not return within 100 ms: the device is in use/);
    // A retry while the first write still hangs does not write again.
    await dpdkErrorOf(unbindFromDpdk(host, input), 'DeviceInUse');
    expect(host.writes).toEqual([`/sys/bus/pci/drivers/vfio-pci/unbind="${BDF}"`]);

    sim.setDeviceInUse(BDF, false);
    expect(await unbindFromDpdk(host, input)).toEqual({ interfaceName: 'ens6', pciAddress: BDF, driver: 'ena' });
    expect(host.writes).toEqual([`/sys/bus/pci/drivers/vfio-pci/unbind="${BDF}"`, `${dev('driver_override')}="\\n"`, `/sys/bus/pci/drivers/ena/bind="${BDF}"`]);
  });

  it('a device with no driver (an earlier unbind left it so) is bound to ena; a non-DPDK driver is left alone', async () => {
    const sim = newHost({ vfio: { noiommuMode: true } });
    await bindToDpdk(sim, bindOpts());
    await sim.write('/sys/bus/pci/drivers/vfio-pci/unbind', BDF);
    expect(await unbindFromDpdk(sim, { macAddress: ENI_MAC, pciAddress: BDF, originalDriver: 'ena', ...FAST })).toMatchObject({ driver: 'ena', interfaceName: 'ens6' });

    await sim.write(dev('driver_override'), 'pci-stub');
    await sim.write('/sys/bus/pci/drivers/ena/unbind', BDF);
    await sim.write('/sys/bus/pci/drivers_probe', BDF);
    const err = await dpdkErrorOf(unbindFromDpdk(sim, { macAddress: ENI_MAC, pciAddress: BDF, originalDriver: 'ena', ...FAST }), 'UnbindFailed');
    expect(err.message).toMatch(/bound to pci-stub, which is neither ena nor a DPDK driver/);
    expect(await driverOf(sim)).toBe('pci-stub');
  });

  it('UnbindFailed when ena cannot take the device back; nothing to do when the PCI device is gone', async () => {
    const sim = newHost({ vfio: { noiommuMode: true } });
    await bindToDpdk(sim, bindOpts());
    sim.unloadDriver('ena');
    const noEna = await dpdkErrorOf(unbindFromDpdk(sim, { macAddress: ENI_MAC, pciAddress: BDF, originalDriver: 'ena', ...FAST }), 'UnbindFailed');
    expect(noEna.message).toMatch(/has no driver and binding it to ena failed/);
    sim.unplug(BDF);
    const gone = await unbindFromDpdk(sim, { macAddress: ENI_MAC, pciAddress: BDF, originalDriver: 'ena', ...FAST });
    expect(gone).toEqual({ interfaceName: '', pciAddress: BDF, driver: '', gone: true });
  });
});

describe('input validation (nothing is read or written for a bad input)', () => {
  const hostile = {
    macAddress: ['../../etc/passwd', '02:aa:bb:cc:dd', 'eni-123', ''],
    driver: ['vfio-pci/../../../etc', '../vfio-pci', 'VFIO-PCI', 'vfio-pci\n', 'ena', 'pci-stub', 'x'.repeat(33), ''],
    pciAddress: ['0000:00:06.0/../../..', '../../../etc', '0000:00:06.0\0', '0000:00:06.8', '00:06.0', ' 0000:00:06.0'],
    originalDriver: ['../ena', 'ena/../../x', 'vfio-pci', 'e na', ''],
    interfaceName: ['../../etc', 'ens6/../..', '', 'a'.repeat(16), 'ens 6'],
  };

  it('bind, unbind and inspection refuse with InvalidInput and leave the host untouched', async () => {
    const sim = newHost({ vfio: true });
    const before = sim.snapshot();
    let reads = 0;
    const host: Host & { writes: string[] } = { ...recording(sim), readFile: (p) => (reads++, sim.readFile(p)), readdir: (p) => (reads++, sim.readdir(p)), readlink: (p) => (reads++, sim.readlink(p)), exists: (p) => (reads++, sim.exists(p)) };
    const attempts: Array<[string, Promise<unknown>]> = [
      ...hostile.macAddress.map((m): [string, Promise<unknown>] => [`mac ${m}`, bindToDpdk(host, bindOpts({ macAddress: m }))]),
      ...hostile.macAddress.map((m): [string, Promise<unknown>] => [`primary ${m}`, bindToDpdk(host, bindOpts({ primaryMac: m }))]),
      ...hostile.driver.map((d): [string, Promise<unknown>] => [`driver ${d}`, bindToDpdk(host, bindOpts({ driver: d }))]),
      ...hostile.pciAddress.map((p): [string, Promise<unknown>] => [`expected ${p}`, bindToDpdk(host, bindOpts({ expectedPciAddress: p }))]),
      ...hostile.pciAddress.map((p): [string, Promise<unknown>] => [`unbind ${p}`, unbindFromDpdk(host, { macAddress: ENI_MAC, pciAddress: p, originalDriver: 'ena', ...FAST })]),
      ...hostile.originalDriver.map((d): [string, Promise<unknown>] => [`original ${d}`, unbindFromDpdk(host, { macAddress: ENI_MAC, pciAddress: BDF, originalDriver: d, ...FAST })]),
      ...hostile.pciAddress.map((p): [string, Promise<unknown>] => [`inspect ${p}`, inspectPciDevice(host, p)]),
      ...hostile.interfaceName.map((n): [string, Promise<unknown>] => [`interface ${n}`, inspectInterface(host, n)]),
      ['mtu', unbindFromDpdk(host, { macAddress: ENI_MAC, pciAddress: BDF, originalDriver: 'ena', mtu: 1500.5, ...FAST })],
    ];
    for (const [what, attempt] of attempts) {
      const err = await dpdkErrorOf(attempt, 'InvalidInput').catch((e: unknown) => {
        throw new Error(`${what}: ${(e as Error).message}`);
      });
      expect(err.message.length, what).toBeGreaterThan(10);
    }
    expect(reads).toBe(0);
    expect(host.writes).toEqual([]);
    expect(sim.snapshot()).toEqual(before);
    expect(await sim.readdir('/run')).toEqual([]);
  });

  it('a tampered binding record (path segments in its fields) is ignored, never used to build a path', async () => {
    const sim = newHost({ vfio: { noiommuMode: true } });
    await bindToDpdk(sim, bindOpts());
    const record = `/run/nodeeni/dpdk/${BDF}.json`;
    const good = JSON.parse(await sim.readFile(record)) as Record<string, string>;
    for (const tamper of [{ originalDriver: '../../../../etc' }, { interfaceName: '../x' }, { pciAddress: '../../..' }, { driver: 'ena' }]) {
      await sim.writeFileAtomic(record, JSON.stringify({ ...good, ...tamper }));
      const host = recording(sim);
      await dpdkErrorOf(bindToDpdk(host, bindOpts()), 'NotFound');
      expect(host.writes).toEqual([]);
    }
  });
});

describe('host/dpdk.ts on a real-fs host root (tmpdir)', () => {
  let base: string;
  let root: string;
  let outside: string;

  /** sysfs-shaped files and relative links for one ENA function at 0000:00:06.0, plus a directory outside the root. */
  beforeEach(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'dpdk-real-'));
    root = path.join(base, 'root');
    outside = path.join(base, 'outside');
    await mkdir(outside);
    await writeFile(path.join(outside, 'unbind'), '');
    const devDir = path.join(root, 'sys/devices/pci0000:00', BDF);
    const netdev = path.join(devDir, 'net/ens6');
    await mkdir(netdev, { recursive: true });
    await writeFile(path.join(devDir, 'driver_override'), '(null)\n');
    await writeFile(path.join(devDir, 'vendor'), '0x1d0f\n');
    await symlink('../../../bus/pci/drivers/ena', path.join(devDir, 'driver'));
    for (const [f, v] of [['address', `${ENI_MAC}\n`], ['mtu', '1500\n'], ['flags', '0x1002\n'], ['operstate', 'down\n']]) await writeFile(path.join(netdev, f!), v!);
    await symlink(`../../../${BDF}`, path.join(netdev, 'device'));
    for (const drv of ['ena', 'vfio-pci']) {
      await mkdir(path.join(root, 'sys/bus/pci/drivers', drv), { recursive: true });
      for (const f of ['bind', 'unbind']) await writeFile(path.join(root, 'sys/bus/pci/drivers', drv, f), '');
    }
    await writeFile(path.join(root, 'sys/bus/pci/drivers_probe'), '');
    await mkdir(path.join(root, 'sys/bus/pci/devices'), { recursive: true });
    await symlink(`../../../devices/pci0000:00/${BDF}`, path.join(root, 'sys/bus/pci/devices', BDF));
    await mkdir(path.join(root, 'sys/class/net'), { recursive: true });
    await symlink(`../../devices/pci0000:00/${BDF}/net/ens6`, path.join(root, 'sys/class/net/ens6'));
    await mkdir(path.join(root, 'sys/kernel/iommu_groups'), { recursive: true });
    await mkdir(path.join(root, 'sys/module/vfio/parameters'), { recursive: true });
    await writeFile(path.join(root, 'sys/module/vfio/parameters/enable_unsafe_noiommu_mode'), 'N\n');
    await mkdir(path.join(root, 'proc/net'), { recursive: true });
    await writeFile(path.join(root, 'proc/net/route'), 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n');
    await mkdir(path.join(root, 'run'));
  });
  afterEach(async () => {
    await rm(base, { recursive: true, force: true });
  });


  it('reads the device by MAC through the relative links', async () => {
    const host = new RealHost(root);
    expect(await findDeviceByMac(host, ENI_MAC)).toEqual({ pciAddress: BDF, driver: 'ena', netdevs: ['ens6'], interfaceName: 'ens6', macAddress: ENI_MAC });
    expect(await hostHasIommu(host)).toBe(false);
  });

  it('hostile inputs write nothing anywhere, inside or outside the root', async () => {
    const host = new RealHost(root);
    const before = await treeFingerprint(base, base);
    for (const driver of ['../../../../outside', 'vfio-pci/../../../../../outside']) {
      await dpdkErrorOf(bindToDpdk(host, bindOpts({ driver })), 'InvalidInput');
    }
    for (const pciAddress of ['../../../../../outside', '0000:00:06.0/../../../../../../outside']) {
      await dpdkErrorOf(unbindFromDpdk(host, { macAddress: ENI_MAC, pciAddress, originalDriver: 'ena', ...FAST }), 'InvalidInput');
    }
    await dpdkErrorOf(unbindFromDpdk(host, { macAddress: ENI_MAC, pciAddress: BDF, originalDriver: '../../../../../outside', ...FAST }), 'InvalidInput');
    await dpdkErrorOf(inspectInterface(host, '../../../outside'), 'InvalidInput');
    expect(await treeFingerprint(base, base)).toBe(before);
  });

  it('refusals read the real files and write nothing: a route, no-IOMMU off, a missing driver', async () => {
    const host = new RealHost(root);
    const before = await treeFingerprint(base, base);
    await writeFile(path.join(root, 'proc/net/route'), `Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\nens6\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n`);
    expect((await dpdkErrorOf(bindToDpdk(host, bindOpts()), 'InterfaceInUse')).message).toMatch(/ens6 carries routes/);
    await writeFile(path.join(root, 'proc/net/route'), 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n');
    await dpdkErrorOf(bindToDpdk(host, bindOpts({ enableNoIommu: false })), 'NoIommuDisabled');
    await dpdkErrorOf(bindToDpdk(host, bindOpts({ driver: 'uio_pci_generic' })), 'DriverMissing');
    expect(await treeFingerprint(base, base)).toBe(before);
  });

  it('a device link that leaves the root is refused before anything is written', async () => {
    await rm(path.join(root, 'sys/bus/pci/devices', BDF));
    await symlink(outside, path.join(root, 'sys/bus/pci/devices', BDF));
    const host = new RealHost(root);
    const before = await treeFingerprint(base, base);
    const err = await unbindFromDpdk(host, { macAddress: ENI_MAC, pciAddress: BDF, originalDriver: 'ena', ...FAST }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HostUsageError);
    expect((err as HostUsageError).code).toBe('ERR_HOST_PATH_ESCAPE');
    expect(await treeFingerprint(base, base)).toBe(before);
  });
});

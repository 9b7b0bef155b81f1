// Drift on the node (issue 10, item 4): SimHost.reboot() resets what a reboot
// resets; verifyInterfaces (read-only) reports it per attachment; the existing
// idempotent steps repair it (configureInterface for mtu/down, bindDpdk for a
// DPDK device back on its kernel driver). Activities run in a
// MockActivityEnvironment against the simulated host.
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import type { ExpectedInterface, VerifyInterfacesInput, VerifyInterfacesResult } from '../common/workflow-api.js';
import { createNodeActivities, type NodeActivities } from '../activities/node/index.js';
import { MAX_EXPECTED_INTERFACES } from '../activities/node/verify-activities.js';
import { errnoError, type Host } from '../host/host.js';
import { ENA_DEVICE_IDS, PCI_CLASS_ETHERNET, PCI_VENDOR_AMAZON } from '../host/sim/drivers.js';
import { ARPHRD_ETHER, IFF } from '../host/sim/net.js';
import { SimHost, type SimHostOptions } from '../host/sim/sim-host.js';
import { nodeAgentWorkerSpec } from '../workers/node-agent-worker.js';
import { failureOf } from './support/host-testing.js';

const NODE = 'node-a';
const PRIMARY_MAC = '02:00:00:00:00:05';
const ENI_MAC = '02:aa:bb:cc:dd:06';
const DPDK_MAC = '02:aa:bb:cc:dd:07';
const OTHER_MAC = '02:aa:bb:cc:dd:08';
const BDF = '0000:00:06.0';
const DPDK_BDF = '0000:00:07.0';

/** Like a typical EC2 instance (sandbox/sim-hypervisor.ts): no IOMMU, vfio loaded with no-IOMMU mode off, rebound netdevs keep the kernel's ethN name. */
function newHost(opts: Omit<SimHostOptions, 'primary'> = {}): SimHost {
  return new SimHost({ primary: { macAddress: PRIMARY_MAC }, vfio: true, renameOnRebind: true, ...opts });
}

function activities(host: Host): NodeActivities {
  return createNodeActivities({ host, nodeName: NODE });
}

/** env.run with the activity's result type (run() cannot infer it from the function). */
function run<P extends unknown[], R>(fn: (...args: P) => Promise<R>, ...args: P): Promise<R> {
  return new MockActivityEnvironment().run(fn, ...args) as Promise<R>;
}

/** A Host that refuses every change and counts every call: verifyInterfaces must never need one, and invalid input must not even read. */
function readOnly(inner: Host): Host & { calls: string[] } {
  const calls: string[] = [];
  const refuse = (op: string) => async (p: string) => {
    calls.push(`${op} ${p}`);
    throw new Error(`verifyInterfaces called ${op}(${p})`);
  };
  const pass =
    <A extends unknown[], R>(op: string, fn: (p: string, ...rest: A) => Promise<R>) =>
    (p: string, ...rest: A) => {
      calls.push(`${op} ${p}`);
      return fn(p, ...rest);
    };
  return {
    root: inner.root,
    calls,
    readFile: pass('readFile', (p) => inner.readFile(p)),
    readdir: pass('readdir', (p) => inner.readdir(p)),
    readlink: pass('readlink', (p) => inner.readlink(p)),
    exists: pass('exists', (p) => inner.exists(p)),
    write: refuse('write'),
    mkdir: refuse('mkdir'),
    rmdir: refuse('rmdir'),
    writeFileAtomic: refuse('writeFileAtomic'),
  };
}

/** verifyInterfaces through a read-only view of the host; the host's state is unchanged afterwards. */
async function verify(host: SimHost, expected: ExpectedInterface[]): Promise<VerifyInterfacesResult> {
  const before = host.snapshot();
  const ro = readOnly(host);
  const result = await run(activities(ro).verifyInterfaces, { expected });
  expect(ro.calls.filter((c) => /^(write|mkdir|rmdir|writeFileAtomic) /.test(c))).toEqual([]);
  expect(host.snapshot()).toEqual(before);
  return result;
}

const PLAIN: ExpectedInterface = { macAddress: ENI_MAC, mtu: 9001 };
const DPDK: ExpectedInterface = { macAddress: DPDK_MAC, mtu: 9001, dpdk: { driver: 'vfio-pci', pciAddress: DPDK_BDF } };

/** What provisionAttachment does on the node: configureInterface, then bindDpdk for a DPDK attachment. */
async function provisioned(host: SimHost): Promise<void> {
  host.hotplugEna({ macAddress: ENI_MAC });
  host.hotplugEna({ macAddress: DPDK_MAC });
  const acts = activities(host);
  await run(acts.configureInterface, { macAddress: ENI_MAC, mtu: 9001 });
  await run(acts.configureInterface, { macAddress: DPDK_MAC, mtu: 9001 });
  await run(acts.bindDpdk, { macAddress: DPDK_MAC, driver: 'vfio-pci', expectedPciAddress: DPDK_BDF });
}

describe('SimHost.reboot()', () => {
  it('keeps the PCI devices and resets MTUs, links, DPDK bindings, vfio state, routes and /run', async () => {
    const host = newHost();
    await provisioned(host);
    // A rebind before the reboot gave a netdev the kernel's name (eth0); a virtual twin, an IPv6 address and a route exist too.
    await run(activities(host).unbindDpdk, { macAddress: DPDK_MAC, pciAddress: DPDK_BDF, originalDriver: 'ena', mtu: 9001 });
    await run(activities(host).bindDpdk, { macAddress: DPDK_MAC, driver: 'vfio-pci' });
    host.net.register({ name: 'br0', macAddress: ENI_MAC, mtu: 1500, minMtu: 68, maxMtu: 65535, flags: IFF.BROADCAST | IFF.MULTICAST, type: ARPHRD_ETHER });
    host.addIpv6Address('ens6', '2001:db8::6');
    host.addRoute({ interfaceName: 'ens6', destination: '10.1.0.0/16' });
    await host.mkdir('/etc/keep');
    expect(await host.readdir('/run/nodeeni/dpdk')).toEqual([`${DPDK_BDF}.json`]);
    const before = host.snapshot();
    expect(before.vfio).toMatchObject({ loaded: true, noiommuMode: true });
    expect(before.pciDevices.find((d) => d.address === DPDK_BDF)).toMatchObject({ driver: 'vfio-pci', driverOverride: 'vfio-pci' });

    host.reboot();

    const after = host.snapshot();
    expect(after.pciDevices.map((d) => [d.address, d.macAddress, d.driver, d.driverOverride, d.interfaceName])).toEqual([
      ['0000:00:05.0', PRIMARY_MAC, 'ena', null, 'ens5'],
      [BDF, ENI_MAC, 'ena', null, 'ens6'],
      [DPDK_BDF, DPDK_MAC, 'ena', null, 'ens7'],
    ]);
    expect(after.interfaces).toEqual([
      { name: 'lo', ifindex: 1, macAddress: '00:00:00:00:00:00', mtu: 65536, up: true, pciAddress: null },
      { name: 'ens5', ifindex: 2, macAddress: PRIMARY_MAC, mtu: 9001, up: true, pciAddress: '0000:00:05.0' },
      { name: 'ens6', ifindex: 3, macAddress: ENI_MAC, mtu: 1500, up: false, pciAddress: BDF },
      { name: 'ens7', ifindex: 4, macAddress: DPDK_MAC, mtu: 1500, up: false, pciAddress: DPDK_BDF },
    ]);
    expect(after.routes).toEqual([{ interfaceName: 'ens5', destination: '0.0.0.0/0', gateway: '10.0.0.1' }]);
    expect(after.ipv6Addresses.map((a) => a.interfaceName)).toEqual(['lo', 'ens5']);
    expect(after.vfio).toEqual({ iommu: false, loaded: true, noiommuMode: false, groups: [], devicesInUse: [] });
    expect(await host.readFile('/sys/module/vfio/parameters/enable_unsafe_noiommu_mode')).toBe('N\n');
    expect(await host.readdir('/run')).toEqual([]);
    expect(await host.exists('/etc/keep')).toBe(true);
    // The host works as before: hot-plug goes on into the next free slot.
    expect(host.hotplugEna({ macAddress: OTHER_MAC })).toEqual({ pciAddress: '0000:00:08.0', interfaceName: 'ens8' });
  });

  it('brings vfio back only as at boot, and a device held open or a blocked unbind does not stop it', async () => {
    const host = newHost({ vfio: { noiommuMode: true } });
    host.hotplugEna({ macAddress: DPDK_MAC });
    await run(activities(host).bindDpdk, { macAddress: DPDK_MAC, driver: 'vfio-pci' });
    host.setDeviceInUse('0000:00:06.0', true);
    const blocked = host.write('/sys/bus/pci/drivers/vfio-pci/unbind', '0000:00:06.0');
    host.reboot();
    await blocked;
    expect(host.snapshot().vfio).toEqual({ iommu: false, loaded: true, noiommuMode: true, groups: [], devicesInUse: [] });
    expect(host.snapshot().pciDevices.find((d) => d.macAddress === DPDK_MAC)).toMatchObject({ driver: 'ena', interfaceName: 'ens6' });

    // Loaded after boot by hand: gone after the reboot (not a boot module).
    const later = new SimHost({ primary: { macAddress: PRIMARY_MAC } });
    later.loadVfio({ noiommuMode: true });
    later.reboot();
    expect(later.snapshot().vfio.loaded).toBe(false);
    expect(await later.exists('/sys/module/vfio')).toBe(false);

    // Platform IOMMU groups are numbered again at boot.
    const metal = newHost({ iommu: true });
    metal.hotplugEna({ macAddress: DPDK_MAC });
    metal.reboot();
    expect(metal.snapshot().vfio.groups.map((g) => [g.id, g.devices])).toEqual([
      [0, ['0000:00:05.0']],
      [1, ['0000:00:06.0']],
    ]);
  });
});

describe('verifyInterfaces', () => {
  it('is served by the node agent on its queue and reports ok for attachments as provisioned', async () => {
    const host = newHost();
    expect(nodeAgentWorkerSpec({ host, nodeName: NODE }).activities).toHaveProperty('verifyInterfaces');
    await provisioned(host);
    expect(await verify(host, [PLAIN, { ...DPDK, macAddress: DPDK_MAC.toUpperCase() }])).toEqual({
      ok: true,
      interfaces: [
        { macAddress: ENI_MAC, ok: true, drift: [], actual: { interfaceName: 'ens6', pciAddress: BDF, mtu: 9001, up: true } },
        { macAddress: DPDK_MAC, ok: true, drift: [], actual: { pciAddress: DPDK_BDF, driver: 'vfio-pci' } },
      ],
    });
    expect(await verify(host, [])).toEqual({ ok: true, interfaces: [] });
  });

  it('after a reboot: mtu and down for a plain ENI, repaired by configureInterface (idempotent from any state)', async () => {
    const host = newHost();
    await provisioned(host);
    host.reboot();
    expect(await verify(host, [PLAIN])).toEqual({
      ok: false,
      interfaces: [{ macAddress: ENI_MAC, ok: false, drift: [{ kind: 'mtu', expected: 9001, actual: 1500 }, { kind: 'down' }], actual: { interfaceName: 'ens6', pciAddress: BDF, mtu: 1500, up: false } }],
    });

    const acts = activities(host);
    expect(await run(acts.configureInterface, { macAddress: ENI_MAC, mtu: 9001 })).toEqual({ interfaceName: 'ens6', pciAddress: BDF, mtu: 9001, up: true });
    expect((await verify(host, [PLAIN])).ok).toBe(true);
    const repaired = host.snapshot();
    expect(await run(acts.configureInterface, { macAddress: ENI_MAC, mtu: 9001 })).toEqual({ interfaceName: 'ens6', pciAddress: BDF, mtu: 9001, up: true });
    expect(host.snapshot()).toEqual(repaired);

    // Only one of the two drifted: each is reported alone and repaired the same way.
    await run(acts.releaseInterface, { macAddress: ENI_MAC });
    expect((await verify(host, [PLAIN])).interfaces[0]!.drift).toEqual([{ kind: 'down' }]);
    await run(acts.configureInterface, { macAddress: ENI_MAC, mtu: 9001 });
    await host.write('/sys/class/net/ens6/mtu', '1280');
    expect((await verify(host, [PLAIN])).interfaces[0]!.drift).toEqual([{ kind: 'mtu', expected: 9001, actual: 1280 }]);
    await run(acts.configureInterface, { macAddress: ENI_MAC, mtu: 9001 });
    expect((await verify(host, [PLAIN])).ok).toBe(true);
  });

  it('after a reboot: driver drift for a DPDK device back on ena, repaired by bindDpdk (idempotent from any state)', async () => {
    const host = newHost();
    await provisioned(host);
    host.reboot();
    expect(await verify(host, [PLAIN, DPDK])).toEqual({
      ok: false,
      interfaces: [
        { macAddress: ENI_MAC, ok: false, drift: [{ kind: 'mtu', expected: 9001, actual: 1500 }, { kind: 'down' }], actual: { interfaceName: 'ens6', pciAddress: BDF, mtu: 1500, up: false } },
        {
          macAddress: DPDK_MAC,
          ok: false,
          drift: [{ kind: 'driver', expected: 'vfio-pci', actual: 'ena', pciAddress: DPDK_BDF }],
          actual: { interfaceName: 'ens7', pciAddress: DPDK_BDF, mtu: 1500, up: false, driver: 'ena' },
        },
      ],
    });

    // The record is gone (tmpfs) and no-IOMMU mode is off again: bindDpdk starts afresh and switches it on.
    const acts = activities(host);
    const input = { macAddress: DPDK_MAC, driver: 'vfio-pci', expectedPciAddress: DPDK_BDF };
    const bound = await run(acts.bindDpdk, input);
    expect(bound).toEqual({ pciAddress: DPDK_BDF, driver: 'vfio-pci', originalDriver: 'ena', interfaceName: 'ens7', macAddress: DPDK_MAC, iommuGroup: '0', vfioDevice: '/dev/vfio/noiommu-0', noIommu: true });
    await run(acts.configureInterface, { macAddress: ENI_MAC, mtu: 9001 });
    expect(await verify(host, [PLAIN, DPDK])).toMatchObject({ ok: true });
    const repaired = host.snapshot();
    expect(await run(acts.bindDpdk, input)).toEqual(bound);
    expect(host.snapshot()).toEqual(repaired);

    // The teardown after a repair gives the device back with its MTU, as before the reboot.
    expect(await run(acts.unbindDpdk, { macAddress: DPDK_MAC, pciAddress: DPDK_BDF, originalDriver: 'ena', mtu: 9001 })).toEqual({ interfaceName: 'eth0', pciAddress: DPDK_BDF, driver: 'ena' });
  });

  it('a drifted attachment can be torn down without a repair: unbindDpdk and releaseInterface after a reboot', async () => {
    const host = newHost();
    await provisioned(host);
    host.reboot();
    const acts = activities(host);
    expect(await run(acts.unbindDpdk, { macAddress: DPDK_MAC, pciAddress: DPDK_BDF, originalDriver: 'ena', mtu: 9001 })).toEqual({ interfaceName: 'ens7', pciAddress: DPDK_BDF, driver: 'ena' });
    expect(host.snapshot().interfaces.find((i) => i.name === 'ens7')).toMatchObject({ mtu: 9001, up: false });
    expect(await run(acts.releaseInterface, { macAddress: ENI_MAC })).toEqual({ interfaceName: 'ens6', released: true });
  });

  it('reports driver drift for a device on no driver or on another DPDK driver, and for a plain ENI still bound to DPDK', async () => {
    const host = newHost();
    await provisioned(host);
    // Expected on igb_uio, bound to vfio-pci.
    expect((await verify(host, [{ ...DPDK, dpdk: { driver: 'igb_uio', pciAddress: DPDK_BDF } }])).interfaces[0]).toEqual({
      macAddress: DPDK_MAC,
      ok: false,
      drift: [{ kind: 'driver', expected: 'igb_uio', actual: 'vfio-pci', pciAddress: DPDK_BDF }],
      actual: { pciAddress: DPDK_BDF, driver: 'vfio-pci' },
    });
    // The spec no longer wants DPDK but the device is still bound: the kernel driver is expected.
    expect((await verify(host, [{ macAddress: DPDK_MAC, mtu: 9001 }])).interfaces[0]).toEqual({
      macAddress: DPDK_MAC,
      ok: false,
      drift: [{ kind: 'driver', expected: 'ena', actual: 'vfio-pci', pciAddress: DPDK_BDF }],
      actual: { pciAddress: DPDK_BDF, driver: 'vfio-pci' },
    });
    // Repaired by unbindDpdk, then configureInterface.
    const acts = activities(host);
    await run(acts.unbindDpdk, { macAddress: DPDK_MAC, pciAddress: DPDK_BDF, originalDriver: 'ena', mtu: 9001 });
    await run(acts.configureInterface, { macAddress: DPDK_MAC, mtu: 9001 });
    expect((await verify(host, [{ macAddress: DPDK_MAC, mtu: 9001 }])).ok).toBe(true);

    // Left on no driver (bind record written, vfio-pci let go, nothing probed since), as a crashed bind can leave it.
    await run(acts.bindDpdk, { macAddress: DPDK_MAC, driver: 'vfio-pci' });
    await host.write('/sys/bus/pci/drivers/vfio-pci/unbind', DPDK_BDF);
    expect((await verify(host, [DPDK])).interfaces[0]!.drift).toEqual([{ kind: 'driver', expected: 'vfio-pci', actual: null, pciAddress: DPDK_BDF }]);
    await run(acts.bindDpdk, { macAddress: DPDK_MAC, driver: 'vfio-pci', expectedPciAddress: DPDK_BDF });
    expect((await verify(host, [DPDK])).ok).toBe(true);
  });

  it('missing: no netdev with the MAC and no device of it at the PCI address', async () => {
    const host = newHost();
    const missing = { ok: false, drift: [{ kind: 'missing' }], actual: {} };
    // Never attached (or not probed yet).
    expect(await verify(host, [PLAIN, DPDK])).toEqual({ ok: false, interfaces: [{ macAddress: ENI_MAC, ...missing }, { macAddress: DPDK_MAC, ...missing }] });
    // The PCI address holds another ENI, as a netdev...
    host.hotplugEna({ macAddress: ENI_MAC });
    host.hotplugEna({ macAddress: OTHER_MAC });
    expect((await verify(host, [DPDK])).interfaces[0]).toEqual({ macAddress: DPDK_MAC, ...missing });
    // ...or bound to DPDK by a bind of another MAC.
    await run(activities(host).bindDpdk, { macAddress: OTHER_MAC, driver: 'vfio-pci' });
    expect((await verify(host, [DPDK])).interfaces[0]).toEqual({ macAddress: DPDK_MAC, ...missing });
    // Detached: gone from the bus, bound or not; a virtual twin with the MAC does not count.
    host.unplug(BDF);
    host.unplug(DPDK_BDF);
    host.net.register({ name: 'br0', macAddress: ENI_MAC, mtu: 9001, minMtu: 68, maxMtu: 65535, flags: IFF.UP | IFF.BROADCAST, type: ARPHRD_ETHER });
    expect(await verify(host, [PLAIN, { ...DPDK, macAddress: OTHER_MAC }])).toEqual({ ok: false, interfaces: [{ macAddress: ENI_MAC, ...missing }, { macAddress: OTHER_MAC, ...missing }] });
  });

  it('ambiguous: two devices with one MAC, reported for that entry only', async () => {
    const host = newHost();
    host.hotplugEna({ macAddress: ENI_MAC });
    host.hotplugEna({ macAddress: OTHER_MAC });
    host.pci.addDevice({ address: '0000:00:09.0', vendor: PCI_VENDOR_AMAZON, device: ENA_DEVICE_IDS.VF, classCode: PCI_CLASS_ETHERNET, macAddress: ENI_MAC });
    await run(activities(host).configureInterface, { macAddress: OTHER_MAC, mtu: 9001 });
    expect(await verify(host, [PLAIN, { macAddress: OTHER_MAC, mtu: 9001 }])).toEqual({
      ok: false,
      interfaces: [
        { macAddress: ENI_MAC, ok: false, drift: [{ kind: 'ambiguous', interfaceNames: ['ens6', 'ens9'] }], actual: {} },
        { macAddress: OTHER_MAC, ok: true, drift: [], actual: { interfaceName: 'ens7', pciAddress: '0000:00:07.0', mtu: 9001, up: true } },
      ],
    });
  });

  it('refuses hostile or malformed input before reading anything on the host', async () => {
    const host = newHost();
    await provisioned(host);
    const cases: Array<{ input: unknown; type: string; message: RegExp }> = [
      ...['../../../etc/passwd', `${ENI_MAC}/../x`, '02:aa:bb:cc:dd', '02:aa:bb:cc:dd:0g', '*', '', `${ENI_MAC}\0`, `${ENI_MAC}:ff`].map((mac) => ({
        input: { expected: [PLAIN, { macAddress: mac, mtu: 9001 }] },
        type: 'InvalidMacAddress',
        message: /expected\[1\]: not a MAC address/,
      })),
      { input: { expected: [{ macAddress: 42, mtu: 9001 }] }, type: 'InvalidMacAddress', message: /not a MAC address: 42/ },
      ...['0000:00:07.0/../../..', '../../../etc', '0000:00:07.0\0', '0000:00:7.0', ''].map((pciAddress) => ({
        input: { expected: [{ ...DPDK, dpdk: { driver: 'vfio-pci', pciAddress } }] },
        type: 'InvalidInput',
        message: /not a PCI address/,
      })),
      { input: { expected: [{ ...DPDK, dpdk: { driver: '../../vfio-pci', pciAddress: DPDK_BDF } }] }, type: 'InvalidInput', message: /not a driver name/ },
      { input: { expected: [{ ...DPDK, dpdk: { driver: 'ena', pciAddress: DPDK_BDF } }] }, type: 'InvalidInput', message: /not a DPDK driver/ },
      { input: { expected: [{ ...DPDK, dpdk: null }] }, type: 'InvalidInput', message: /not a driver name/ },
      ...[1500.5, -1, 0, '9001', undefined].map((mtu) => ({ input: { expected: [{ macAddress: ENI_MAC, mtu }] }, type: 'InvalidMtu', message: /MTU must be a positive integer/ })),
      { input: {}, type: 'InvalidInput', message: /expected must be an array/ },
      { input: { expected: Array.from({ length: MAX_EXPECTED_INTERFACES + 1 }, () => PLAIN) }, type: 'InvalidInput', message: /at most 1024/ },
    ];
    for (const c of cases) {
      const ro = readOnly(host);
      const failure = await failureOf(run(activities(ro).verifyInterfaces, c.input as VerifyInterfacesInput));
      expect(failure.type, JSON.stringify(c.input).slice(0, 200)).toBe(c.type);
      expect(failure.nonRetryable).toBe(true);
      expect(failure.message).toMatch(c.message);
      expect(failure.message).toContain(NODE);
      expect(ro.calls).toEqual([]);
    }
  });

  it('HostPermissionDenied (non-retryable) when sysfs refuses the reads', async () => {
    const host = newHost();
    const denied: Host = { ...readOnly(host), readFile: async (p) => Promise.reject(errnoError('EACCES', 'open', p)) };
    const failure = await failureOf(run(activities(denied).verifyInterfaces, { expected: [PLAIN] }));
    expect(failure).toMatchObject({ type: 'HostPermissionDenied', nonRetryable: true });
  });

  it('the node agent starting on a rebooted host changes nothing there: the repair is the control plane’s', async () => {
    const host = newHost();
    await provisioned(host);
    host.reboot();
    const before = host.snapshot();
    const ro = readOnly(host);
    const spec = nodeAgentWorkerSpec({ host: ro, nodeName: NODE });
    expect(spec.taskQueue).toBe(`node-${NODE}`);
    expect(ro.calls).toEqual([]);
    expect(host.snapshot()).toEqual(before);
    expect((await run((spec.activities as NodeActivities).verifyInterfaces, { expected: [PLAIN, DPDK] })).ok).toBe(false);
  });
});

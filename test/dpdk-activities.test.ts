// bindDpdk/unbindDpdk as the node agent serves them: results, and every
// outcome of host/dpdk.ts as a typed ApplicationFailure with the right
// retryability (MockActivityEnvironment on the simulated host).
import { MockActivityEnvironment } from '@temporalio/testing';
import { failureOf } from './support/host-testing.js';
import { describe, expect, it } from 'vitest';
import { createDpdkActivities, DPDK_FAILURES } from '../activities/node/dpdk-activities.js';
import { createNodeActivities } from '../activities/node/index.js';
import { errnoError, type Host } from '../host/host.js';
import { SimHost, type SimHostOptions } from '../host/sim/sim-host.js';

const NODE = 'node-a';
const PRIMARY_MAC = '02:00:00:00:00:05';
const ENI_MAC = '02:aa:bb:cc:dd:06';
const BDF = '0000:00:06.0';
const FAST = { writeTimeoutMs: 100, netdevTimeoutMs: 300, pollMs: 10 };

function newHost(opts: SimHostOptions = {}, plugEni = true): SimHost {
  const host = new SimHost({ primary: { macAddress: PRIMARY_MAC }, ...opts });
  if (plugEni) host.hotplugEna({ macAddress: ENI_MAC });
  return host;
}

function activities(host: Host, enableNoIommu = true) {
  return createDpdkActivities({ host, nodeName: NODE, enableNoIommu, ...FAST });
}

/** env.run with the activity's result type (run() cannot infer it from the function). */
function typed<P extends unknown[], R>(env: MockActivityEnvironment, fn: (...args: P) => Promise<R>, ...args: P): Promise<R> {
  return env.run(fn, ...args) as Promise<R>;
}


describe('bindDpdk', () => {
  const env = new MockActivityEnvironment();

  it('is served by the node agent (enableNoIommu defaults to true) and binds on a host without an IOMMU', async () => {
    const host = newHost({ vfio: true });
    const acts = createNodeActivities({ host, nodeName: NODE });
    const binding = await env.run(acts.bindDpdk, { macAddress: ENI_MAC, driver: 'vfio-pci', expectedPciAddress: BDF, primaryMac: PRIMARY_MAC });
    expect(binding).toEqual({ pciAddress: BDF, driver: 'vfio-pci', originalDriver: 'ena', interfaceName: 'ens6', macAddress: ENI_MAC, iommuGroup: '0', vfioDevice: '/dev/vfio/noiommu-0', noIommu: true });
    expect(host.snapshot().vfio.noiommuMode).toBe(true);
    // The node agent can be told not to enable it.
    const strict = newHost({ vfio: true });
    const refused = await failureOf(env.run(createNodeActivities({ host: strict, nodeName: NODE, enableNoIommu: false }).bindDpdk, { macAddress: ENI_MAC, driver: 'vfio-pci' }));
    expect(refused).toMatchObject({ type: DPDK_FAILURES.noIommuDisabled, nonRetryable: true });
    expect(refused.message).toContain(NODE);
  });

  it('binds on a host with an IOMMU to /dev/vfio/<group>, and a re-run returns the same binding', async () => {
    const host = newHost({ vfio: true, iommu: true });
    const acts = activities(host, false);
    const first = await env.run(acts.bindDpdk, { macAddress: ENI_MAC, driver: 'vfio-pci' });
    expect(first).toMatchObject({ iommuGroup: '1', vfioDevice: '/dev/vfio/1', noIommu: false });
    expect(await env.run(acts.bindDpdk, { macAddress: ENI_MAC, driver: 'vfio-pci' })).toEqual(first);
  });

  it('InterfaceNotFound (retryable) until the ENI appears', async () => {
    const host = newHost({ vfio: true }, false);
    const acts = activities(host);
    const failure = await failureOf(env.run(acts.bindDpdk, { macAddress: ENI_MAC, driver: 'vfio-pci' }));
    expect(failure).toMatchObject({ type: 'InterfaceNotFound', nonRetryable: false });
    host.hotplugEna({ macAddress: ENI_MAC });
    expect((await typed(env, acts.bindDpdk, { macAddress: ENI_MAC, driver: 'vfio-pci' })).pciAddress).toBe(BDF);
  });

  it('non-retryable refusals: driver missing, interface in use, PCI address mismatch, invalid input', async () => {
    const cases: Array<{ host: SimHost; input: Parameters<ReturnType<typeof activities>['bindDpdk']>[0]; type: string; message: RegExp }> = [
      { host: newHost(), input: { macAddress: ENI_MAC, driver: 'vfio-pci' }, type: 'DpdkDriverMissing', message: /vfio-pci is not loaded/ },
      { host: newHost({ vfio: true }), input: { macAddress: PRIMARY_MAC, driver: 'vfio-pci' }, type: 'InterfaceInUse', message: /default route/ },
      { host: newHost({ vfio: true }), input: { macAddress: ENI_MAC, driver: 'vfio-pci', primaryMac: ENI_MAC }, type: 'InterfaceInUse', message: /primary/ },
      { host: newHost({ vfio: true }), input: { macAddress: ENI_MAC, driver: 'vfio-pci', expectedPciAddress: '0000:00:07.0' }, type: 'PciAddressMismatch', message: /0000:00:06\.0, not at the expected 0000:00:07\.0/ },
      { host: newHost({ vfio: true }), input: { macAddress: ENI_MAC, driver: '../../../etc/vfio-pci' }, type: 'InvalidInput', message: /not a driver name/ },
      { host: newHost({ vfio: true }), input: { macAddress: ENI_MAC, driver: 'ena' }, type: 'InvalidInput', message: /not a DPDK driver/ },
      { host: newHost({ vfio: true }), input: { macAddress: ENI_MAC, driver: 'vfio-pci', expectedPciAddress: '0000:00:06.0/../../..' }, type: 'InvalidInput', message: /not a PCI address/ },
      { host: newHost({ vfio: true }), input: { macAddress: '../../etc', driver: 'vfio-pci' }, type: 'InvalidInput', message: /not a MAC address/ },
    ];
    for (const c of cases) {
      const before = c.host.snapshot();
      const failure = await failureOf(env.run(activities(c.host).bindDpdk, c.input));
      expect(failure.type, c.message.source).toBe(c.type);
      expect(failure.nonRetryable, c.type).toBe(true);
      expect(failure.message).toMatch(c.message);
      expect(c.host.snapshot()).toEqual(before);
    }
  });

  it('DpdkBindFailed after a verified rollback names the step; DpdkRollbackFailed when the rollback fails too', async () => {
    for (const [step, path] of [
      ['driver_override', `/sys/bus/pci/devices/${BDF}/driver_override`],
      ['unbind', '/sys/bus/pci/drivers/ena/unbind'],
      ['drivers_probe', '/sys/bus/pci/drivers_probe'],
    ] as const) {
      const host = newHost({ vfio: { noiommuMode: true }, renameOnRebind: true });
      host.failNextWrite(path, 'EIO');
      const failure = await failureOf(env.run(activities(host).bindDpdk, { macAddress: ENI_MAC, driver: 'vfio-pci' }));
      expect(failure).toMatchObject({ type: DPDK_FAILURES.bindFailed, nonRetryable: true });
      expect(failure.message).toContain(`failed at step ${step}: EIO`);
      expect(failure.message).toContain('rolled back');
      expect(failure.details?.[0]).toMatchObject({ nodeName: NODE, step, errno: 'EIO', rolledBack: true, pciAddress: BDF, originalDriver: 'ena' });
      expect(host.snapshot().pciDevices.find((d) => d.address === BDF)).toMatchObject({ driver: 'ena', driverOverride: null, interfaceName: step === 'drivers_probe' ? 'eth0' : 'ens6' });
    }

    const host = newHost({ vfio: { noiommuMode: true } });
    host.failNextWrite('/sys/bus/pci/drivers_probe', 'EIO');
    host.failNextWrite('/sys/bus/pci/drivers/ena/bind', 'EIO');
    host.failNextWrite('/sys/bus/pci/drivers_probe', 'EIO');
    const failure = await failureOf(env.run(activities(host).bindDpdk, { macAddress: ENI_MAC, driver: 'vfio-pci' }));
    expect(failure).toMatchObject({ type: DPDK_FAILURES.rollbackFailed, nonRetryable: true });
    expect(failure.details?.[0]).toMatchObject({ step: 'drivers_probe', rollbackStep: 'bind to ena', rolledBack: false });
  });
});

describe('unbindDpdk', () => {
  const env = new MockActivityEnvironment();

  it('gives the device back to ena; the interface is found by MAC under its new name, with the MTU restored', async () => {
    const host = newHost({ vfio: true, renameOnRebind: true });
    const acts = activities(host);
    const bound = await typed(env, acts.bindDpdk, { macAddress: ENI_MAC, driver: 'vfio-pci' });
    const back = await env.run(acts.unbindDpdk, { macAddress: ENI_MAC, pciAddress: bound.pciAddress, originalDriver: bound.originalDriver, mtu: 9001 });
    expect(back).toEqual({ interfaceName: 'eth0', pciAddress: BDF, driver: 'ena' });
    expect(host.snapshot().interfaces.find((i) => i.macAddress === ENI_MAC)).toMatchObject({ name: 'eth0', mtu: 9001, pciAddress: BDF });
    expect(host.snapshot().pciDevices.find((d) => d.address === BDF)).toMatchObject({ driver: 'ena', driverOverride: null });
    // Compensation after the teardown already ran: same answer, nothing changes.
    const snap = host.snapshot();
    expect(await env.run(acts.unbindDpdk, { macAddress: ENI_MAC, pciAddress: BDF, originalDriver: 'ena', mtu: 9001 })).toEqual(back);
    expect(host.snapshot()).toEqual(snap);
  });

  it('DeviceInUse (retryable) while userspace holds the device, then success once it is released', async () => {
    const host = newHost({ vfio: true });
    const acts = activities(host);
    await env.run(acts.bindDpdk, { macAddress: ENI_MAC, driver: 'vfio-pci' });
    host.setDeviceInUse(BDF, true);
    const input = { macAddress: ENI_MAC, pciAddress: BDF, originalDriver: 'ena' };
    for (let attempt = 0; attempt < 2; attempt++) {
      const failure = await failureOf(env.run(acts.unbindDpdk, input));
      expect(failure).toMatchObject({ type: DPDK_FAILURES.deviceInUse, nonRetryable: false });
      expect(failure.message).toMatch(/in use/);
    }
    expect(host.snapshot().pciDevices.find((d) => d.address === BDF)?.driver).toBe('vfio-pci');
    host.setDeviceInUse(BDF, false);
    expect(await env.run(acts.unbindDpdk, input)).toEqual({ interfaceName: 'ens6', pciAddress: BDF, driver: 'ena' });
    expect(host.snapshot().vfio.groups).toEqual([]);
  });

  it('InvalidInput for hostile inputs, HostPermissionDenied for EPERM, nothing to do when the device is gone', async () => {
    const host = newHost({ vfio: true });
    const acts = activities(host);
    await env.run(acts.bindDpdk, { macAddress: ENI_MAC, driver: 'vfio-pci' });
    const before = host.snapshot();
    for (const input of [
      { macAddress: ENI_MAC, pciAddress: '../../../etc', originalDriver: 'ena' },
      { macAddress: ENI_MAC, pciAddress: BDF, originalDriver: '../ena' },
      { macAddress: ENI_MAC, pciAddress: BDF, originalDriver: 'vfio-pci' },
      { macAddress: 'x', pciAddress: BDF, originalDriver: 'ena' },
    ]) {
      expect(await failureOf(env.run(acts.unbindDpdk, input))).toMatchObject({ type: DPDK_FAILURES.invalidInput, nonRetryable: true });
    }
    expect(host.snapshot()).toEqual(before);

    const denied: Host = {
      root: host.root,
      readFile: (p) => host.readFile(p),
      readdir: (p) => host.readdir(p),
      readlink: (p) => host.readlink(p),
      exists: (p) => host.exists(p),
      mkdir: (p) => host.mkdir(p),
      rmdir: (p) => host.rmdir(p),
      writeFileAtomic: (p, d, m) => host.writeFileAtomic(p, d, m),
      write: async (p) => Promise.reject(errnoError('EPERM', 'open', p)),
    };
    const failure = await failureOf(env.run(activities(denied).unbindDpdk, { macAddress: ENI_MAC, pciAddress: BDF, originalDriver: 'ena' }));
    expect(failure).toMatchObject({ type: DPDK_FAILURES.permissionDenied, nonRetryable: true });
    expect(host.snapshot()).toEqual(before);

    host.unplug(BDF);
    // Hot-unplugged meanwhile (detached from outside): nothing left to give back, teardown goes on.
    const gone = await env.run(acts.unbindDpdk, { macAddress: ENI_MAC, pciAddress: BDF, originalDriver: 'ena' });
    expect(gone).toMatchObject({ gone: true });
  });
});

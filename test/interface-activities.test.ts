// configureInterface/releaseInterface on the simulated host (kernel rules),
// on a real-fs tmpdir tree, and end to end with moto: an ENI attached in EC2
// is hot-plugged by the simulated instance and then configured by MAC.
import { AttachNetworkInterfaceCommand, CreateNetworkInterfaceCommand, DetachNetworkInterfaceCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { MockActivityEnvironment } from '@temporalio/testing';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInterfaceActivities, DEVICE_APPEAR_WAIT } from '../activities/node/interface-activities.js';
import { errnoError, type Host } from '../host/host.js';
import { RealHost } from '../host/real-host.js';
import { ARPHRD_ETHER, IFF } from '../host/sim/net.js';
import { SimHost } from '../host/sim/sim-host.js';
import { ENA_DEVICE_IDS, PCI_CLASS_ETHERNET, PCI_VENDOR_AMAZON } from '../host/sim/drivers.js';
import { makeEc2Client, randomAccountId } from '../sandbox/ec2/client.js';
import { seedWorld, type World } from '../sandbox/ec2/seed.js';
import { startSimulatedInstance } from '../sandbox/sim-instance.js';
import { getBackends } from './support/backends.js';
import { interceptWrites, failureOf } from './support/host-testing.js';

const PRIMARY_MAC = '02:00:00:00:00:05';
const ENI_MAC = '02:aa:bb:cc:dd:06';
const NODE = 'node-a';

function simHost(): SimHost {
  return new SimHost({ primary: { macAddress: PRIMARY_MAC } });
}


/** A Host that counts writes and can run a hook before each one (to unplug a device mid-call). */
function instrumented(inner: Host, beforeWrite?: (p: string) => void): Host & { writes: string[] } {
  const writes: string[] = [];
  const host = interceptWrites(inner, (p, data) => {
    beforeWrite?.(p);
    writes.push(`${p}=${data}`);
  });
  return Object.assign(host, { writes });
}

describe('configureInterface on the simulated host', () => {
  const env = new MockActivityEnvironment();

  it('finds the ENI by MAC (any case), sets the MTU, brings it up and reports the PCI address', async () => {
    const host = simHost();
    host.hotplugEna({ macAddress: ENI_MAC });
    const acts = createInterfaceActivities({ host, nodeName: NODE });
    const result = await env.run(acts.configureInterface, { macAddress: ENI_MAC.toUpperCase(), mtu: 9001 });
    expect(result).toEqual({ interfaceName: 'ens6', pciAddress: '0000:00:06.0', mtu: 9001, up: true });
    expect(host.snapshot().interfaces.find((i) => i.name === 'ens6')).toMatchObject({ mtu: 9001, up: true, macAddress: ENI_MAC });
    expect(await host.readFile('/sys/class/net/ens6/operstate')).toBe('up\n');
  });

  it('is idempotent: a second run writes nothing and returns the same result', async () => {
    const sim = simHost();
    sim.hotplugEna({ macAddress: ENI_MAC });
    const host = instrumented(sim);
    const acts = createInterfaceActivities({ host, nodeName: NODE });
    const first = await env.run(acts.configureInterface, { macAddress: ENI_MAC, mtu: 9001 });
    expect(host.writes).toEqual(['/sys/class/net/ens6/mtu=9001', '/sys/class/net/ens6/flags=0x1003']);
    const second = await env.run(acts.configureInterface, { macAddress: ENI_MAC, mtu: 9001 });
    expect(second).toEqual(first);
    expect(host.writes).toHaveLength(2);
  });

  it('leaves the MTU alone when none is asked for', async () => {
    const host = simHost();
    host.hotplugEna({ macAddress: ENI_MAC });
    const acts = createInterfaceActivities({ host, nodeName: NODE });
    expect(await env.run(acts.configureInterface, { macAddress: ENI_MAC })).toEqual({ interfaceName: 'ens6', pciAddress: '0000:00:06.0', mtu: 1500, up: true });
  });

  it('InterfaceNotFound (retryable) when the device is still not there after looking for DEVICE_APPEAR_WAIT, then succeeds once it is', async () => {
    const host = simHost();
    const acts = createInterfaceActivities({ host, nodeName: NODE });
    const t0 = Date.now();
    const failure = await failureOf(env.run(acts.configureInterface, { macAddress: ENI_MAC, mtu: 9001 }));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(DEVICE_APPEAR_WAIT.withinMs);
    expect(failure.type).toBe('InterfaceNotFound');
    expect(failure.nonRetryable).toBe(false);
    expect(failure.message).toContain(NODE);
    host.hotplugEna({ macAddress: ENI_MAC });
    expect(await env.run(acts.configureInterface, { macAddress: ENI_MAC, mtu: 9001 })).toMatchObject({ interfaceName: 'ens6' });
  });

  it('a device that appears while it looks is configured in the same attempt, within a poll of its appearing', async () => {
    const host = simHost();
    const acts = createInterfaceActivities({ host, nodeName: NODE });
    const running = env.run(acts.configureInterface, { macAddress: ENI_MAC, mtu: 9001 });
    await new Promise((r) => setTimeout(r, 700));
    const plugged = Date.now();
    host.hotplugEna({ macAddress: ENI_MAC });
    expect(await running).toMatchObject({ interfaceName: 'ens6', mtu: 9001, up: true });
    expect(Date.now() - plugged).toBeLessThan(DEVICE_APPEAR_WAIT.everyMs + 400);
  });

  it('InvalidMtu (non-retryable) when the kernel says EINVAL, before the interface is brought up', async () => {
    const host = simHost();
    host.hotplugEna({ macAddress: ENI_MAC });
    const acts = createInterfaceActivities({ host, nodeName: NODE });
    for (const mtu of [9217, 100]) {
      const failure = await failureOf(env.run(acts.configureInterface, { macAddress: ENI_MAC, mtu }));
      expect(failure.type).toBe('InvalidMtu');
      expect(failure.nonRetryable).toBe(true);
    }
    expect(await host.readFile('/sys/class/net/ens6/flags')).toBe('0x1002\n');
    const fractional = await failureOf(env.run(acts.configureInterface, { macAddress: ENI_MAC, mtu: 1500.5 }));
    expect(fractional.type).toBe('InvalidMtu');
    const badMac = await failureOf(env.run(acts.configureInterface, { macAddress: 'eni-123', mtu: 9001 }));
    expect(badMac).toMatchObject({ type: 'InvalidMacAddress', nonRetryable: true });
  });

  it('a device that vanishes mid-call is InterfaceNotFound (retryable); EPERM is HostPermissionDenied', async () => {
    const sim = simHost();
    const { pciAddress } = sim.hotplugEna({ macAddress: ENI_MAC });
    const vanishing = instrumented(sim, () => sim.unplug(pciAddress));
    const gone = await failureOf(env.run(createInterfaceActivities({ host: vanishing, nodeName: NODE }).configureInterface, { macAddress: ENI_MAC, mtu: 9001 }));
    expect(gone).toMatchObject({ type: 'InterfaceNotFound', nonRetryable: false });

    sim.hotplugEna({ macAddress: ENI_MAC });
    const denied = instrumented(sim, (p) => {
      throw errnoError('EPERM', 'write', p);
    });
    const failure = await failureOf(env.run(createInterfaceActivities({ host: denied, nodeName: NODE }).configureInterface, { macAddress: ENI_MAC }));
    expect(failure).toMatchObject({ type: 'HostPermissionDenied', nonRetryable: true });
  });

  it('ignores a virtual twin (bridge with the same MAC) and refuses two devices with one MAC', async () => {
    const host = simHost();
    host.net.register({ name: 'br0', macAddress: ENI_MAC, mtu: 1500, minMtu: 68, maxMtu: 65535, flags: IFF.BROADCAST | IFF.MULTICAST, type: ARPHRD_ETHER });
    const acts = createInterfaceActivities({ host, nodeName: NODE });
    expect((await failureOf(env.run(acts.configureInterface, { macAddress: ENI_MAC }))).type).toBe('InterfaceNotFound');
    host.hotplugEna({ macAddress: ENI_MAC });
    expect(await env.run(acts.configureInterface, { macAddress: ENI_MAC })).toMatchObject({ interfaceName: 'ens6' });
    expect(host.snapshot().interfaces.find((i) => i.name === 'br0')?.up).toBe(false);

    host.pci.addDevice({ address: '0000:00:08.0', vendor: PCI_VENDOR_AMAZON, device: ENA_DEVICE_IDS.VF, classCode: PCI_CLASS_ETHERNET, macAddress: ENI_MAC });
    expect(await failureOf(env.run(acts.configureInterface, { macAddress: ENI_MAC }))).toMatchObject({ type: 'AmbiguousInterface', nonRetryable: true });
  });
});

describe('releaseInterface on the simulated host', () => {
  const env = new MockActivityEnvironment();

  it('brings the interface down, idempotently; an absent interface is already released', async () => {
    const host = simHost();
    host.hotplugEna({ macAddress: ENI_MAC });
    const acts = createInterfaceActivities({ host, nodeName: NODE });
    await env.run(acts.configureInterface, { macAddress: ENI_MAC, mtu: 9001 });
    expect(await env.run(acts.releaseInterface, { macAddress: ENI_MAC.toUpperCase() })).toEqual({ interfaceName: 'ens6', released: true });
    expect(await host.readFile('/sys/class/net/ens6/flags')).toBe('0x1002\n');
    expect(await env.run(acts.releaseInterface, { macAddress: ENI_MAC })).toEqual({ interfaceName: 'ens6', released: true });

    host.unplug('0000:00:06.0');
    expect(await env.run(acts.releaseInterface, { macAddress: ENI_MAC })).toEqual({ released: true });
  });

  it('refuses to take down the interface that carries the default route', async () => {
    const host = simHost();
    const acts = createInterfaceActivities({ host, nodeName: NODE });
    const failure = await failureOf(env.run(acts.releaseInterface, { macAddress: PRIMARY_MAC }));
    expect(failure).toMatchObject({ type: 'InterfaceCarriesDefaultRoute', nonRetryable: true });
    expect(await host.readFile('/sys/class/net/ens5/flags')).toBe('0x1003\n');
  });
});

describe('interface activities on a real-fs host root', () => {
  const env = new MockActivityEnvironment();
  let base: string;
  let root: string;

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'iface-acts-'));
    root = path.join(base, 'root');
    const netdev = path.join(root, 'sys/devices/pci0000:00/0000:00:06.0/net/ens6');
    await mkdir(netdev, { recursive: true });
    await writeFile(path.join(netdev, 'address'), `${ENI_MAC}\n`);
    await writeFile(path.join(netdev, 'mtu'), '1500\n');
    await writeFile(path.join(netdev, 'flags'), '0x1002\n');
    await symlink('../../../0000:00:06.0', path.join(netdev, 'device'));
    await mkdir(path.join(root, 'sys/class/net'), { recursive: true });
    await symlink('../../devices/pci0000:00/0000:00:06.0/net/ens6', path.join(root, 'sys/class/net/ens6'));
    await mkdir(path.join(root, 'proc/net'), { recursive: true });
    await writeFile(path.join(root, 'proc/net/route'), 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n');
  });
  afterAll(async () => {
    await rm(base, { recursive: true, force: true });
  });

  it('writes mtu and flags through node:fs and reads them back', async () => {
    const acts = createInterfaceActivities({ host: new RealHost(root), nodeName: NODE });
    expect(await env.run(acts.configureInterface, { macAddress: ENI_MAC, mtu: 9001 })).toEqual({ interfaceName: 'ens6', pciAddress: '0000:00:06.0', mtu: 9001, up: true });
    const attr = (name: string) => readFile(path.join(root, 'sys/devices/pci0000:00/0000:00:06.0/net/ens6', name), 'utf8');
    expect(await attr('mtu')).toBe('9001\n');
    expect(await attr('flags')).toBe('0x1003\n');
    expect(await env.run(acts.releaseInterface, { macAddress: ENI_MAC })).toEqual({ interfaceName: 'ens6', released: true });
    expect(await attr('flags')).toBe('0x1002\n');
  });
});

describe('simulated EC2 instance (moto): attach → hot-plug → configure → detach → unplug', () => {
  const env = new MockActivityEnvironment();
  let ec2: EC2Client;
  let world: World;

  beforeAll(async () => {
    ec2 = makeEc2Client({ endpoint: getBackends().motoEndpoint, account: randomAccountId() });
    world = await seedWorld(ec2, { instances: 1 });
  });

  async function createEni(subnetName: string): Promise<{ id: string; mac: string }> {
    const subnet = world.subnets.find((s) => s.name === subnetName)!;
    const out = await ec2.send(new CreateNetworkInterfaceCommand({ SubnetId: subnet.id, Groups: [world.securityGroups[0]!.id] }));
    return { id: out.NetworkInterface!.NetworkInterfaceId!, mac: out.NetworkInterface!.MacAddress! };
  }

  it('plugs attached ENIs by MAC in device-index order and unplugs detached ones', async () => {
    const instance = world.instances[0]!;
    const host = new SimHost({ primary: { macAddress: instance.primaryMac } });
    const first = await createEni('multus-a');
    const second = await createEni('storage-a');
    // Attached before the instance's first poll, in reverse: slots still follow the device index.
    await ec2.send(new AttachNetworkInterfaceCommand({ NetworkInterfaceId: second.id, InstanceId: instance.id, DeviceIndex: 2 }));
    const att1 = await ec2.send(new AttachNetworkInterfaceCommand({ NetworkInterfaceId: first.id, InstanceId: instance.id, DeviceIndex: 1 }));
    const errors: unknown[] = [];
    const sim = startSimulatedInstance({ host, ec2, instanceId: instance.id, pollMs: 50, onError: (e) => errors.push(e) });
    try {
      const acts = createInterfaceActivities({ host, nodeName: NODE });
      await sim.syncNow();
      expect(host.snapshot().pciDevices.map((d) => [d.address, d.macAddress, d.interfaceName])).toEqual([
        ['0000:00:05.0', instance.primaryMac, 'ens5'],
        ['0000:00:06.0', first.mac, 'ens6'],
        ['0000:00:07.0', second.mac, 'ens7'],
      ]);

      expect(await env.run(acts.configureInterface, { macAddress: first.mac, mtu: 9001 })).toEqual({ interfaceName: 'ens6', pciAddress: '0000:00:06.0', mtu: 9001, up: true });

      await env.run(acts.releaseInterface, { macAddress: first.mac });
      await ec2.send(new DetachNetworkInterfaceCommand({ AttachmentId: att1.AttachmentId! }));
      // The poll loop (not syncNow) notices the detach.
      const deadline = Date.now() + 10_000;
      while (host.snapshot().pciDevices.some((d) => d.macAddress === first.mac) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(host.snapshot().pciDevices.map((d) => d.macAddress).sort()).toEqual([instance.primaryMac, second.mac].sort());
      expect(await env.run(acts.releaseInterface, { macAddress: first.mac })).toEqual({ released: true });
      expect((await failureOf(env.run(acts.configureInterface, { macAddress: first.mac }))).type).toBe('InterfaceNotFound');
      expect(errors).toEqual([]);
    } finally {
      await sim.stop();
    }
  });
});

// The benchmark's fleet poller (sandbox/sim-instance.ts startSimulatedFleet)
// against moto: one sweep for every instance plugs and unplugs each host's
// devices like the per-instance poller, a sweep narrowed to the secondary
// subnets keeps the primaries plugged, and a member can be a function (the
// benchmark's node-agent process is fed that way). With the fault proxy's
// attachment changes, a device is plugged and unplugged as the proxy attaches
// and detaches, without waiting for a sweep.
import { AttachNetworkInterfaceCommand, CreateNetworkInterfaceCommand, DescribeNetworkInterfacesCommand, DetachNetworkInterfaceCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeEc2Client, randomAccountId } from '../sandbox/ec2/client.js';
import { FaultProxyClient } from '../sandbox/ec2/fault-client.js';
import { seedWorld, type World } from '../sandbox/ec2/seed.js';
import { startSimulatedFleet, type AttachedEni } from '../sandbox/sim-instance.js';
import { simulatedHost } from '../sandbox/sim-hypervisor.js';
import { getBackends } from './support/backends.js';

let ec2: EC2Client;
let viaProxy: EC2Client;
let world: World;

beforeAll(async () => {
  const account = randomAccountId();
  ec2 = makeEc2Client({ endpoint: getBackends().motoEndpoint, account, maxAttempts: 3 });
  viaProxy = makeEc2Client({ endpoint: getBackends().ec2Endpoint, account, maxAttempts: 3 });
  world = await seedWorld(ec2, { instances: 4 });
});

async function attach(subnetName: string, instanceId: string, deviceIndex: number, client = ec2) {
  const subnet = world.subnets.find((s) => s.name === subnetName)!;
  const eni = (await client.send(new CreateNetworkInterfaceCommand({ SubnetId: subnet.id }))).NetworkInterface!;
  const att = await client.send(new AttachNetworkInterfaceCommand({ NetworkInterfaceId: eni.NetworkInterfaceId!, InstanceId: instanceId, DeviceIndex: deviceIndex }));
  return { mac: eni.MacAddress!, attachmentId: att.AttachmentId! };
}

/** Waits until EC2 (through the proxy, which may keep an attachment `attaching` a while) calls it attached. */
async function attachedViaProxy(attachmentId: string): Promise<void> {
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
    const out = await viaProxy.send(new DescribeNetworkInterfacesCommand({ Filters: [{ Name: 'attachment.attachment-id', Values: [attachmentId] }] }));
    if (out.NetworkInterfaces?.[0]?.Attachment?.Status === 'attached') return;
  }
  throw new Error(`${attachmentId}: not attached within 10 s`);
}

const macs = (host: ReturnType<typeof simulatedHost>) => host.snapshot().pciDevices.map((d) => [d.address, d.macAddress]);

describe('fleet poller', () => {
  it('one sweep updates every member; detaches unplug; narrowed sweeps keep the primaries', async () => {
    const [a, b, c] = world.instances as [World['instances'][0], World['instances'][0], World['instances'][0]];
    const hostA = simulatedHost(a.primaryMac);
    const hostB = simulatedHost(b.primaryMac);
    const fed: AttachedEni[][] = [];
    const errors: unknown[] = [];
    const secondary = world.subnets.filter((s) => !s.name.startsWith('nodes-')).map((s) => s.id);
    const fleet = startSimulatedFleet({ ec2, pollMs: 50, filters: [{ Name: 'subnet-id', Values: secondary }], onError: (e) => errors.push(e) });
    try {
      fleet.add(a.id, hostA, a.primaryMac);
      fleet.add(b.id, hostB, b.primaryMac);
      fleet.add(c.id, (attached) => fed.push([...attached]), c.primaryMac);
      const onA = await attach('multus-a', a.id, 1);
      const onB = await attach('multus-a', b.id, 1);
      const onB2 = await attach('storage-a', b.id, 2);
      const onC = await attach('multus-b', c.id, 1);
      await fleet.syncNow();
      expect(macs(hostA)).toEqual([['0000:00:05.0', a.primaryMac], ['0000:00:06.0', onA.mac]]);
      expect(macs(hostB)).toEqual([['0000:00:05.0', b.primaryMac], ['0000:00:06.0', onB.mac], ['0000:00:07.0', onB2.mac]]);
      expect(fed.at(-1)).toEqual([{ macAddress: c.primaryMac.toLowerCase(), deviceIndex: 0 }, { macAddress: onC.mac.toLowerCase(), deviceIndex: 1 }]);

      await ec2.send(new DetachNetworkInterfaceCommand({ AttachmentId: onB.attachmentId }));
      await fleet.syncNow();
      expect(macs(hostB)).toEqual([['0000:00:05.0', b.primaryMac], ['0000:00:07.0', onB2.mac]]);
      expect(macs(hostA)).toEqual([['0000:00:05.0', a.primaryMac], ['0000:00:06.0', onA.mac]]);

      // A removed member is left as it is.
      fleet.remove(a.id);
      await ec2.send(new DetachNetworkInterfaceCommand({ AttachmentId: onA.attachmentId }));
      await fleet.syncNow();
      expect(macs(hostA)).toEqual([['0000:00:05.0', a.primaryMac], ['0000:00:06.0', onA.mac]]);
      const stats = fleet.stats();
      expect(stats.polls).toBeGreaterThanOrEqual(3);
      // Narrowed to the secondary subnets: the primaries are not listed.
      expect(stats.maxEnis).toBe(4);
      expect(errors).toEqual([]);
    } finally {
      await fleet.stop();
    }
  });
});

describe('fleet fed by the fault proxy', () => {
  it('reports the instances it attached and detached; a position from the future asks for a sweep', async () => {
    const fault = new FaultProxyClient(getBackends().ec2Endpoint);
    const d = world.instances[3]!;
    const start = await fault.attachmentChanges(0);
    const waiting = fault.attachmentChanges(start.seq, 10_000);
    const onD = await attach('multus-a', d.id, 2, viaProxy);
    const changed = await waiting;
    expect(changed.complete).toBe(true);
    expect(changed.seq).toBeGreaterThan(start.seq);
    expect(changed.changes).toContainEqual({ instanceId: d.id, macAddress: onD.mac.toLowerCase(), deviceIndex: 2, attached: true });
    await attachedViaProxy(onD.attachmentId);
    await viaProxy.send(new DetachNetworkInterfaceCommand({ AttachmentId: onD.attachmentId }));
    // A detach lands when the transitional state ends; the long poll waits for it.
    let after = changed.seq;
    const seen: unknown[] = [];
    while (!seen.some((c) => (c as { instanceId: string }).instanceId === d.id)) {
      const next = await fault.attachmentChanges(after, 10_000);
      expect(next.seq).toBeGreaterThan(after);
      seen.push(...next.changes);
      after = next.seq;
    }
    expect(seen).toContainEqual({ instanceId: d.id, macAddress: onD.mac.toLowerCase(), deviceIndex: 2, attached: false });
    expect(await fault.attachmentChanges(after + 1_000_000)).toMatchObject({ complete: false, changes: [] });
  });

  it('plugs and unplugs devices as the proxy attaches and detaches, with no sweep', async () => {
    const fault = new FaultProxyClient(getBackends().ec2Endpoint);
    const a = world.instances[0]!;
    const host = simulatedHost(a.primaryMac);
    const errors: unknown[] = [];
    const fleet = startSimulatedFleet({
      ec2,
      pollMs: 600_000,
      changes: (after, waitMs, signal) => fault.attachmentChanges(after, waitMs, signal),
      onError: (e) => errors.push(e),
    });
    const plugged = (mac: string) => host.snapshot().pciDevices.some((dev) => dev.macAddress === mac.toLowerCase());
    const until = async (what: string, ok: () => boolean) => {
      const deadline = Date.now() + 5_000;
      while (!ok()) {
        if (Date.now() > deadline) throw new Error(`${what}: not within 5 s`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    try {
      fleet.add(a.id, host, a.primaryMac);
      await fleet.syncNow();
      const sweeps = fleet.stats().polls;
      const onA = await attach('storage-a', a.id, 3, viaProxy);
      await until('device plugged', () => plugged(onA.mac));
      await attachedViaProxy(onA.attachmentId);
      await viaProxy.send(new DetachNetworkInterfaceCommand({ AttachmentId: onA.attachmentId }));
      await until('device unplugged', () => !plugged(onA.mac));
      expect(plugged(a.primaryMac)).toBe(true);
      const stats = fleet.stats();
      // Only the feed did it: no sweep since the one before the attach.
      expect(stats.polls).toBe(sweeps);
      expect(stats.changesApplied).toBeGreaterThanOrEqual(2);
      expect(stats.memberReads).toBe(1);
      expect(errors).toEqual([]);
    } finally {
      await fleet.stop();
    }
  });
});

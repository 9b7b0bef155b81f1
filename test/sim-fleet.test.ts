// The benchmark's fleet poller (sandbox/sim-instance.ts startSimulatedFleet)
// against moto: one sweep for every instance plugs and unplugs each host's
// devices like the per-instance poller, a sweep narrowed to the secondary
// subnets keeps the primaries plugged, and a member can be a function (the
// benchmark's node-agent process is fed that way).
import { AttachNetworkInterfaceCommand, CreateNetworkInterfaceCommand, DetachNetworkInterfaceCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeEc2Client, randomAccountId } from '../sandbox/ec2/client.js';
import { seedWorld, type World } from '../sandbox/ec2/seed.js';
import { startSimulatedFleet, type AttachedEni } from '../sandbox/sim-instance.js';
import { simulatedHost } from '../sandbox/sim-hypervisor.js';
import { getBackends } from './support/backends.js';

let ec2: EC2Client;
let world: World;

beforeAll(async () => {
  ec2 = makeEc2Client({ endpoint: getBackends().motoEndpoint, account: randomAccountId(), maxAttempts: 3 });
  world = await seedWorld(ec2, { instances: 3 });
});

async function attach(subnetName: string, instanceId: string, deviceIndex: number) {
  const subnet = world.subnets.find((s) => s.name === subnetName)!;
  const eni = (await ec2.send(new CreateNetworkInterfaceCommand({ SubnetId: subnet.id }))).NetworkInterface!;
  const att = await ec2.send(new AttachNetworkInterfaceCommand({ NetworkInterfaceId: eni.NetworkInterfaceId!, InstanceId: instanceId, DeviceIndex: deviceIndex }));
  return { mac: eni.MacAddress!, attachmentId: att.AttachmentId! };
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

// EC2 calls an activity attempt makes (activities/ec2/ec2-activities.ts), against moto through the
// fault proxy: under throttling every call of an attempt can be refused, so an attempt that needs
// fewer calls gets through sooner. resolveSpec looks every subnet name up in one DescribeSubnets and
// every security-group name in one DescribeSecurityGroups (plus one by Name tag for the names no
// group has), with the same answers as one call per name gave: missing and ambiguous names become
// problems, other VPCs are not looked at. lookUpSpecReferences reads the same across VPCs (the entity
// reads it beside the instances, before it knows their VPCs) and resolveSpecInVpc picks each VPC's
// part with the same answers. attachEni's slow path (a retry) reads the instance and its
// type only when the pass did not know the type's interface limit; a type is asked of EC2 once per process.
import { CreateNetworkInterfaceCommand, CreateSecurityGroupCommand, CreateSubnetCommand, DescribeNetworkInterfacesCommand } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEc2Activities } from '../activities/ec2/ec2-activities.js';
import { resolveSpecInVpc } from '../common/spec-references.js';
import { createTestCluster, type TestCluster } from './support/cluster.js';

let c: TestCluster;
beforeAll(async () => {
  c = await createTestCluster({ instances: 1, controlWorker: false, watcher: false });
});
afterAll(async () => {
  await c?.dispose();
});

describe('resolveSpec', () => {
  it('resolves all names with one call per kind, reporting missing and ambiguous names', async () => {
    const az = c.world.subnets[0]!.az;
    for (const cidr of ['10.0.200.0/24', '10.0.201.0/24']) {
      await c.ec2.send(new CreateSubnetCommand({ VpcId: c.world.vpcId, CidrBlock: cidr, AvailabilityZone: az, TagSpecifications: [{ ResourceType: 'subnet', Tags: [{ Key: 'Name', Value: 'twice' }] }] }));
    }
    const tagged = await c.ec2.send(new CreateSecurityGroupCommand({
      GroupName: 'grp-named-otherwise', Description: 'found by its Name tag', VpcId: c.world.vpcId,
      TagSpecifications: [{ ResourceType: 'security-group', Tags: [{ Key: 'Name', Value: 'by-tag-sg' }] }],
    }));
    const activities = createEc2Activities({ ec2: c.ec2 });
    const before = await c.fault.counts(c.account);
    const resolved = await activities.resolveSpec({
      vpcId: c.world.vpcId,
      spec: {
        nodeSelector: {},
        subnetNames: ['multus-a', 'storage-b', 'multus-a', 'no-such-subnet', 'twice'],
        securityGroupNames: ['storage-sg', 'by-tag-sg', 'no-such-sg'],
      },
    });
    const after = await c.fault.counts(c.account);
    expect((after.DescribeSubnets ?? 0) - (before.DescribeSubnets ?? 0)).toBe(1);
    expect((after.DescribeSecurityGroups ?? 0) - (before.DescribeSecurityGroups ?? 0)).toBe(2);

    const byName = (n: string) => c.world.subnets.find((s) => s.name === n)!.id;
    expect(resolved.subnets.map((s) => s.id)).toEqual([byName('multus-a'), byName('storage-b')]);
    expect(resolved.securityGroupIds).toEqual([c.world.securityGroups.find((g) => g.name === 'storage-sg')!.id, tagged.GroupId!].sort());
    expect(resolved.problems).toEqual([
      { reason: 'SubnetNotFound', message: `no subnet named "no-such-subnet" in ${c.world.vpcId}` },
      { reason: 'SubnetNameAmbiguous', message: `2 subnets named "twice" in ${c.world.vpcId}` },
      { reason: 'SecurityGroupNotFound', message: `no security group named "no-such-sg" in ${c.world.vpcId}` },
    ]);
  });

  it('needs no Name-tag lookup when every security-group name is a group name', async () => {
    const activities = createEc2Activities({ ec2: c.ec2 });
    const before = await c.fault.counts(c.account);
    const resolved = await activities.resolveSpec({ vpcId: c.world.vpcId, spec: { nodeSelector: {}, subnetNames: ['multus-b'], securityGroupNames: ['multus-sg', 'storage-sg'] } });
    const after = await c.fault.counts(c.account);
    expect((after.DescribeSecurityGroups ?? 0) - (before.DescribeSecurityGroups ?? 0)).toBe(1);
    expect(resolved.problems).toEqual([]);
    expect(resolved.securityGroupIds).toHaveLength(2);
  });
});

describe('lookUpSpecReferences', () => {
  it('reads every VPC in one call per kind; each VPC resolves to what resolveSpec gives there, or asks for its own look', async () => {
    // The seeded other VPC has a subnet named "multus-a" too.
    const other = c.world.otherVpcId;
    const otherSubnet = c.world.otherVpcSubnet.id;
    // In the other VPC "multus-sg" is only a Name tag; in the nodes' VPC it is a group name.
    const otherGroup = (await c.ec2.send(new CreateSecurityGroupCommand({
      GroupName: 'other-vpc-group', Description: 'named by tag', VpcId: other,
      TagSpecifications: [{ ResourceType: 'security-group', Tags: [{ Key: 'Name', Value: 'multus-sg' }] }],
    }))).GroupId!;
    // "tag-only-sg" is no group's name anywhere: looked up by tag at once.
    const tagOnly = (await c.ec2.send(new CreateSecurityGroupCommand({
      GroupName: 'grp-tagged-only', Description: 'named by tag', VpcId: c.world.vpcId,
      TagSpecifications: [{ ResourceType: 'security-group', Tags: [{ Key: 'Name', Value: 'tag-only-sg' }] }],
    }))).GroupId!;
    const spec = {
      nodeSelector: {},
      subnetIDs: [c.world.subnets.find((s) => s.name === 'storage-a')!.id, otherSubnet],
      subnetNames: ['multus-a', 'no-such-subnet'],
      securityGroupIDs: [otherGroup],
      securityGroupNames: ['multus-sg', 'tag-only-sg'],
    };
    const activities = createEc2Activities({ ec2: c.ec2 });
    const before = await c.fault.counts(c.account);
    const refs = await activities.lookUpSpecReferences({ spec });
    const after = await c.fault.counts(c.account);
    // Subnets by ID and by name; groups by ID, by group name, and by Name tag for the name no group has.
    expect((after.DescribeSubnets ?? 0) - (before.DescribeSubnets ?? 0)).toBe(2);
    expect((after.DescribeSecurityGroups ?? 0) - (before.DescribeSecurityGroups ?? 0)).toBe(3);
    expect(refs.namesLookedUpByTag).toEqual(['tag-only-sg']);

    const here = resolveSpecInVpc(spec, refs, c.world.vpcId)!;
    expect(here).toEqual(await activities.resolveSpec({ spec, vpcId: c.world.vpcId }));
    expect(here.subnets.map((s) => s.name)).toEqual(['storage-a', 'multus-a']);
    expect(here.securityGroupIds).toEqual([c.world.securityGroups.find((g) => g.name === 'multus-sg')!.id, tagOnly].sort());
    expect(here.problems.map((p) => p.reason)).toEqual(['SubnetInOtherVPC', 'SubnetNotFound', 'SecurityGroupNotFound']);

    // "multus-sg" is no group name in the other VPC and was not looked up by tag: that VPC needs its own look.
    expect(resolveSpecInVpc(spec, refs, other)).toBeUndefined();
    const there = await activities.resolveSpec({ spec, vpcId: other });
    expect(there.subnets.map((s) => s.id)).toEqual([otherSubnet]);
    expect(there.securityGroupIds).toEqual([otherGroup]);
    expect(there.problems.map((p) => p.reason)).toEqual(['SubnetInOtherVPC', 'SubnetNotFound', 'SecurityGroupNotFound']);
  });
});

describe('attachEni, slow path', () => {
  it('with the limit the pass knew: reads the ENI and the instance\'s interfaces, not the instance or its type', async () => {
    const instance = c.world.instances[0]!;
    const subnet = c.world.subnets.find((s) => s.az === instance.az && s.name.startsWith('multus'))!;
    const eni = await c.ec2.send(new CreateNetworkInterfaceCommand({ SubnetId: subnet.id }));
    const eniId = eni.NetworkInterface!.NetworkInterfaceId!;
    const activities = createEc2Activities({ ec2: c.ec2 });
    const before = await c.fault.counts(c.account);
    // The pass counted the instance full, so attachEni checks against EC2 instead of attaching at once.
    const out = await activities.attachEni({ eniId, instanceId: instance.id, preferredDeviceIndex: 1, planned: { deviceIndex: 1, usedInterfaces: 4, maxInterfaces: 4 } });
    const after = await c.fault.counts(c.account);
    const delta = (action: string) => (after[action] ?? 0) - (before[action] ?? 0);
    expect(out).toMatchObject({ deviceIndex: 1, attachedNow: true });
    expect({ describeEnis: delta('DescribeNetworkInterfaces'), instances: delta('DescribeInstances'), types: delta('DescribeInstanceTypes'), attach: delta('AttachNetworkInterface') })
      .toEqual({ describeEnis: 2, instances: 0, types: 0, attach: 1 });
    const attached = await c.ec2.send(new DescribeNetworkInterfacesCommand({ NetworkInterfaceIds: [eniId] }));
    expect(attached.NetworkInterfaces?.[0]?.Attachment?.InstanceId).toBe(instance.id);
  });

  it('without it: reads the instance and its type too', async () => {
    const instance = c.world.instances[0]!;
    const subnet = c.world.subnets.find((s) => s.az === instance.az && s.name.startsWith('storage'))!;
    const eniId = (await c.ec2.send(new CreateNetworkInterfaceCommand({ SubnetId: subnet.id }))).NetworkInterface!.NetworkInterfaceId!;
    const activities = createEc2Activities({ ec2: c.ec2 });
    const before = await c.fault.counts(c.account);
    const out = await activities.attachEni({ eniId, instanceId: instance.id, preferredDeviceIndex: 1 });
    const after = await c.fault.counts(c.account);
    expect(out.deviceIndex).toBe(2);
    expect((after.DescribeInstances ?? 0) - (before.DescribeInstances ?? 0)).toBe(1);
    expect((after.DescribeInstanceTypes ?? 0) - (before.DescribeInstanceTypes ?? 0)).toBe(1);
  });
});

describe('instance types', () => {
  it('are asked of EC2 once per process: a second pass that did not know the type, and a slow attach, read no type', async () => {
    const instance = c.world.instances[0]!;
    const activities = createEc2Activities({ ec2: c.ec2 });
    const types = async () => (await c.fault.counts(c.account)).DescribeInstanceTypes ?? 0;
    const before = await types();
    const first = await activities.describeInstancesForPass({ instanceIds: [instance.id], knownTypes: [] });
    expect(await types()).toBe(before + 1);
    const [type, max] = Object.entries(first.maxInterfaces)[0]!;
    expect(type).toBe(first.instances[0]!.instanceType);
    expect(max).toBeGreaterThan(1);

    // Another NodeENI's first pass, on the same worker: the limit comes from what EC2 said before.
    expect((await activities.describeInstancesForPass({ instanceIds: [instance.id], knownTypes: [] })).maxInterfaces).toEqual({ [type]: max });
    // A pass that knows the type is not told it again.
    expect((await activities.describeInstancesForPass({ instanceIds: [instance.id], knownTypes: [type] })).maxInterfaces).toEqual({});
    const subnet = c.world.subnets.find((s) => s.az === instance.az && s.name.startsWith('multus'))!;
    const eniId = (await c.ec2.send(new CreateNetworkInterfaceCommand({ SubnetId: subnet.id }))).NetworkInterface!.NetworkInterfaceId!;
    await activities.attachEni({ eniId, instanceId: instance.id, preferredDeviceIndex: 1 });
    expect(await types()).toBe(before + 1);
  });
});

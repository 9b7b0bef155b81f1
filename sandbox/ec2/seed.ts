// Seeds an EC2 world (in moto) shaped like a small multi-AZ cluster: one VPC
// with per-AZ node, multus and storage subnets, two security groups, a second
// VPC reusing a subnet name (so name lookups must filter by VPC), and running
// instances standing in for Kubernetes nodes.
import {
  CreateSecurityGroupCommand,
  CreateSubnetCommand,
  CreateVpcCommand,
  RunInstancesCommand,
  type EC2Client,
  type Tag,
} from '@aws-sdk/client-ec2';

/** One of moto's built-in AMIs, so seeding also works with AMI validation on. */
export const SEED_IMAGE_ID = 'ami-1e749f67';
export const SEED_INSTANCE_TYPE = 'm5.xlarge';

export interface SeededSubnet {
  id: string;
  name: string;
  az: string;
  cidr: string;
}

export interface SeededInstance {
  id: string;
  az: string;
  subnetId: string;
  primaryEniId: string;
  primaryMac: string;
  privateIp: string;
}

export interface World {
  region: string;
  vpcId: string;
  otherVpcId: string;
  /** Subnets of the main VPC. */
  subnets: SeededSubnet[];
  /** The second VPC's subnet, named like the main VPC's `<prefix>multus-a`. */
  otherVpcSubnet: SeededSubnet;
  securityGroups: { id: string; name: string }[];
  instances: SeededInstance[];
}

export interface SeedOptions {
  /** Instances to launch (default 3): index i goes to zone b when i % 3 === 2, else zone a. */
  instances?: number;
  /** Prepended to every Name tag and security-group name. */
  prefix?: string;
  /**
   * Prefix length of the main VPC's subnets (default 24). Subnet j of the
   * list (nodes-a, nodes-b, then each secondary name's -a and -b) gets the
   * j-th block of that size from 10.0.0.0; a thousand nodes need /21 or larger.
   */
  subnetPrefixLength?: number;
  /** Secondary-ENI subnets: one per zone for each name, `<name>-a` and `<name>-b` (default multus and storage). */
  secondarySubnets?: string[];
  /**
   * Launch the instances of a zone this many per RunInstances call (default 1:
   * one call each, Name tag `node-<i>`); batched instances share the Name tag `node`.
   */
  launchBatch?: number;
}

const nameTag = (name: string): Tag[] => [{ Key: 'Name', Value: name }];

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`EC2 response lacks ${what}`);
  return value;
}

export async function seedWorld(ec2: EC2Client, opts: SeedOptions = {}): Promise<World> {
  const prefix = opts.prefix ?? '';
  const instanceCount = opts.instances ?? 3;
  const region = await ec2.config.region();
  const [azA, azB] = [`${region}a`, `${region}b`];

  const createVpc = async (cidr: string, name: string) => {
    const out = await ec2.send(new CreateVpcCommand({
      CidrBlock: cidr,
      TagSpecifications: [{ ResourceType: 'vpc', Tags: nameTag(name) }],
    }));
    return required(out.Vpc?.VpcId, 'Vpc.VpcId');
  };
  const createSubnet = async (vpcId: string, name: string, az: string, cidr: string): Promise<SeededSubnet> => {
    const out = await ec2.send(new CreateSubnetCommand({
      VpcId: vpcId,
      CidrBlock: cidr,
      AvailabilityZone: az,
      TagSpecifications: [{ ResourceType: 'subnet', Tags: nameTag(name) }],
    }));
    return { id: required(out.Subnet?.SubnetId, 'Subnet.SubnetId'), name, az, cidr };
  };

  const vpcId = await createVpc('10.0.0.0/16', `${prefix}vpc`);
  const otherVpcId = await createVpc('10.1.0.0/16', `${prefix}other-vpc`);

  // Node (primary ENI) subnets are separate from the secondary-ENI subnets, so
  // the multus/storage subnets start out empty.
  const subnets: SeededSubnet[] = [];
  const prefixLength = opts.subnetPrefixLength ?? 24;
  const layout: Array<[string, string]> = [[`${prefix}nodes-a`, azA], [`${prefix}nodes-b`, azB]];
  for (const name of opts.secondarySubnets ?? ['multus', 'storage']) layout.push([`${prefix}${name}-a`, azA], [`${prefix}${name}-b`, azB]);
  const block = 2 ** (24 - prefixLength);
  if (prefixLength < 16 || prefixLength > 24 || layout.length * block > 256) {
    throw new Error(`${layout.length} subnets of /${prefixLength} do not fit in the VPC's 10.0.0.0/16`);
  }
  for (const [j, [name, az]] of layout.entries()) {
    subnets.push(await createSubnet(vpcId, name, az, `10.0.${j * block}.0/${prefixLength}`));
  }
  const otherVpcSubnet = await createSubnet(otherVpcId, `${prefix}multus-a`, azA, '10.1.2.0/24');

  const securityGroups: World['securityGroups'] = [];
  for (const name of [`${prefix}multus-sg`, `${prefix}storage-sg`]) {
    const out = await ec2.send(new CreateSecurityGroupCommand({
      GroupName: name,
      Description: `${name} (seeded)`,
      VpcId: vpcId,
      TagSpecifications: [{ ResourceType: 'security-group', Tags: nameTag(name) }],
    }));
    securityGroups.push({ id: required(out.GroupId, 'GroupId'), name });
  }

  const nodeSubnet = { [azA]: subnets[0]!, [azB]: subnets[1]! };
  const launch = async (az: string, count: number, name: string): Promise<SeededInstance[]> => {
    const subnet = required(nodeSubnet[az], `node subnet for ${az}`);
    const out = await ec2.send(new RunInstancesCommand({
      ImageId: SEED_IMAGE_ID,
      InstanceType: SEED_INSTANCE_TYPE,
      MinCount: count,
      MaxCount: count,
      SubnetId: subnet.id,
      TagSpecifications: [{ ResourceType: 'instance', Tags: nameTag(name) }],
    }));
    const launched = out.Instances ?? [];
    if (launched.length !== count) throw new Error(`RunInstances launched ${launched.length} of ${count} instances`);
    return launched.map((instance) => {
      const primary = required(instance.NetworkInterfaces?.find((n) => n.Attachment?.DeviceIndex === 0), 'primary network interface');
      return {
        id: required(instance.InstanceId, 'InstanceId'),
        az,
        subnetId: subnet.id,
        primaryEniId: required(primary.NetworkInterfaceId, 'NetworkInterfaceId'),
        primaryMac: required(primary.MacAddress, 'MacAddress'),
        privateIp: required(primary.PrivateIpAddress, 'PrivateIpAddress'),
      };
    });
  };
  const zoneOf = (i: number) => (i % 3 === 2 ? azB : azA);
  const instances: SeededInstance[] = [];
  const batch = opts.launchBatch ?? 1;
  if (batch <= 1) {
    for (let i = 0; i < instanceCount; i++) instances.push(...(await launch(zoneOf(i), 1, `${prefix}node-${i}`)));
  } else {
    // Per zone in batches, then back into index order (instance i in zoneOf(i)).
    const launched = new Map<string, SeededInstance[]>();
    for (const az of [azA, azB]) {
      const count = Array.from({ length: instanceCount }, (_, i) => i).filter((i) => zoneOf(i) === az).length;
      const list: SeededInstance[] = [];
      for (let done = 0; done < count; done += batch) list.push(...(await launch(az, Math.min(batch, count - done), `${prefix}node`)));
      launched.set(az, list);
    }
    for (let i = 0; i < instanceCount; i++) instances.push(required(launched.get(zoneOf(i))!.shift(), `instance ${i}`));
  }

  return { region, vpcId, otherVpcId, subnets, otherVpcSubnet, securityGroups, instances };
}

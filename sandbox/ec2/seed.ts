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
  for (const [name, az, cidr] of [
    [`${prefix}nodes-a`, azA, '10.0.0.0/24'],
    [`${prefix}nodes-b`, azB, '10.0.1.0/24'],
    [`${prefix}multus-a`, azA, '10.0.2.0/24'],
    [`${prefix}multus-b`, azB, '10.0.3.0/24'],
    [`${prefix}storage-a`, azA, '10.0.4.0/24'],
    [`${prefix}storage-b`, azB, '10.0.5.0/24'],
  ] as const) {
    subnets.push(await createSubnet(vpcId, name, az, cidr));
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
  const instances: SeededInstance[] = [];
  for (let i = 0; i < instanceCount; i++) {
    const az = i % 3 === 2 ? azB : azA;
    const subnet = required(nodeSubnet[az], `node subnet for ${az}`);
    const out = await ec2.send(new RunInstancesCommand({
      ImageId: SEED_IMAGE_ID,
      InstanceType: SEED_INSTANCE_TYPE,
      MinCount: 1,
      MaxCount: 1,
      SubnetId: subnet.id,
      TagSpecifications: [{ ResourceType: 'instance', Tags: nameTag(`${prefix}node-${i}`) }],
    }));
    const instance = required(out.Instances?.[0], 'Instances[0]');
    const primary = required(instance.NetworkInterfaces?.find((n) => n.Attachment?.DeviceIndex === 0), 'primary network interface');
    instances.push({
      id: required(instance.InstanceId, 'InstanceId'),
      az,
      subnetId: subnet.id,
      primaryEniId: required(primary.NetworkInterfaceId, 'NetworkInterfaceId'),
      primaryMac: required(primary.MacAddress, 'MacAddress'),
      privateIp: required(primary.PrivateIpAddress, 'PrivateIpAddress'),
    });
  }

  return { region, vpcId, otherVpcId, subnets, otherVpcSubnet, securityGroups, instances };
}

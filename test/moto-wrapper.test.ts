// The benchmark's moto (bench/moto-indexed-tags.py) answers what stock moto
// answers: tags looked up by resource id, and DescribeNetworkInterfaces by
// network-interface-id narrowed by a set lookup, give the same records in the
// same order. Checked against the same calls made to stock moto.
import path from 'node:path';
import { CreateNetworkInterfaceCommand, CreateSubnetCommand, CreateVpcCommand, DescribeNetworkInterfacesCommand, type EC2Client, type Filter } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMoto, type MotoServer } from '../sandbox/backends/moto.js';
import { makeEc2Client } from '../sandbox/ec2/client.js';

const WRAPPER = path.join(import.meta.dirname, '..', 'bench', 'moto-indexed-tags.py');
const ENIS = 30;

interface Side {
  moto: MotoServer;
  ec2: EC2Client;
  /** The ENIs in creation order. */
  ids: string[];
}

async function seed(moto: MotoServer): Promise<Side> {
  const ec2 = makeEc2Client({ endpoint: moto.endpoint, account: '123456789012' });
  const vpc = (await ec2.send(new CreateVpcCommand({ CidrBlock: '10.0.0.0/16' }))).Vpc!.VpcId!;
  const subnet = (await ec2.send(new CreateSubnetCommand({ VpcId: vpc, CidrBlock: '10.0.0.0/20' }))).Subnet!.SubnetId!;
  const ids: string[] = [];
  for (let i = 0; i < ENIS; i++) {
    const eni = await ec2.send(new CreateNetworkInterfaceCommand({
      SubnetId: subnet,
      TagSpecifications: [{ ResourceType: 'network-interface', Tags: [{ Key: 'owner', Value: i % 3 === 0 ? 'a' : 'b' }, { Key: 'n', Value: String(i) }] }],
    }));
    ids.push(eni.NetworkInterface!.NetworkInterfaceId!);
  }
  return { moto, ec2, ids };
}

let stock: Side;
let wrapped: Side;

beforeAll(async () => {
  [stock, wrapped] = await Promise.all([startMoto().then(seed), startMoto({ wrapper: WRAPPER }).then(seed)]);
}, 120_000);

afterAll(async () => {
  await Promise.all([stock?.moto.stop(), wrapped?.moto.stop()]);
});

/** A query in terms of ENI positions, so both servers (whose ids differ) are asked the same. */
type Query = (ids: string[]) => Filter[];

/** What a server answers, as ENI positions and tags. */
async function answer(side: Side, query: Query): Promise<Array<{ at: number; tags: string }>> {
  const res = await side.ec2.send(new DescribeNetworkInterfacesCommand({ Filters: query(side.ids) }));
  return (res.NetworkInterfaces ?? []).map((ni) => ({
    at: side.ids.indexOf(ni.NetworkInterfaceId!),
    tags: (ni.TagSet ?? []).map((t) => `${t.Key}=${t.Value}`).sort().join(','),
  }));
}

describe('the benchmark moto answers as stock moto', () => {
  const queries: Record<string, Query> = {
    'ids asked out of order, one unknown': (ids) => [{ Name: 'network-interface-id', Values: [ids[17]!, ids[2]!, 'eni-0123456789abcdef0', ids[29]!, ids[2]!] }],
    'ids and a tag': (ids) => [{ Name: 'network-interface-id', Values: ids.slice(0, 12) }, { Name: 'tag:owner', Values: ['a'] }],
    'an id pattern': () => [{ Name: 'network-interface-id', Values: ['eni-*'] }],
    'a tag only': () => [{ Name: 'tag:owner', Values: ['b'] }],
    'no filter': () => [],
  };
  for (const [name, query] of Object.entries(queries)) {
    it(name, async () => {
      const [s, w] = await Promise.all([answer(stock, query), answer(wrapped, query)]);
      expect(s.length).toBeGreaterThan(0);
      expect(w).toEqual(s);
    });
  }

  it('ids asked: exactly the known ones, in creation order', async () => {
    const got = await answer(wrapped, (ids) => [{ Name: 'network-interface-id', Values: [ids[17]!, ids[2]!, 'eni-0123456789abcdef0', ids[29]!] }]);
    expect(got.map((g) => g.at)).toEqual([2, 17, 29]);
  });
});

// ENIs by their NodeENI UID tag, many NodeENIs per call: what `nodeeni status`
// shows next to each NodeENI. Here with the other EC2 calls, so the IAM policy
// check (test/iam-policy.test.ts) sees every EC2 action the code sends.
import { DescribeNetworkInterfacesCommand, type EC2Client, type NetworkInterface } from '@aws-sdk/client-ec2';
import { TAG } from '../../common/names.js';
import { ec2Call } from './errors.js';

/** Every ENI tagged with one of these NodeENI UIDs, by UID; 200 UIDs per call (EC2 takes at most 200 values per filter). */
export async function enisByNodeEniUid(ec2: EC2Client, uids: string[]): Promise<Map<string, NetworkInterface[]>> {
  const out = new Map<string, NetworkInterface[]>(uids.map((u) => [u, []]));
  for (let i = 0; i < uids.length; i += 200) {
    let next: string | undefined;
    do {
      const res = await ec2Call('DescribeNetworkInterfaces (by NodeENI)', () =>
        ec2.send(new DescribeNetworkInterfacesCommand({ Filters: [{ Name: `tag:${TAG.nodeEniUid}`, Values: uids.slice(i, i + 200) }], MaxResults: 1000, NextToken: next })),
      );
      for (const ni of res.NetworkInterfaces ?? []) out.get(ni.TagSet?.find((t) => t.Key === TAG.nodeEniUid)?.Value ?? '')?.push(ni);
      next = res.NextToken;
    } while (next);
  }
  return out;
}

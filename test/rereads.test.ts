// A pass that re-read only the reported ENIs merges them into its last listing.
import { describe, expect, it } from 'vitest';
import type { ManagedEni } from '../activities/ec2/ec2-activities.js';
import { mergeRereads } from '../workflows/rereads.js';

const eni = (id: string, status = 'in-use'): ManagedEni => ({ eniId: id, status, subnetId: 'subnet-1', macAddress: `02:00:00:00:00:${id.slice(-2)}`, leaked: false });

describe('mergeRereads', () => {
  const last = [eni('eni-01'), eni('eni-02', 'available'), eni('eni-03')];

  it('replaces what was re-read, drops what EC2 no longer has, keeps the rest, in id order', () => {
    const merged = mergeRereads(last, ['eni-02', 'eni-03', 'eni-05'], [eni('eni-05'), eni('eni-02')]);
    expect(merged.map((e) => [e.eniId, e.status])).toEqual([['eni-01', 'in-use'], ['eni-02', 'in-use'], ['eni-05', 'in-use']]);
  });

  it('an answer listing every ENI (an older worker ignores the ids) yields each ENI once, as EC2 said', () => {
    const everything = [eni('eni-01', 'available'), eni('eni-02'), eni('eni-03'), eni('eni-04')];
    const merged = mergeRereads(last, ['eni-04'], everything);
    expect(merged).toEqual(everything);
  });
});

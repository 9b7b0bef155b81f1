// Migration from the Go controller, without servers: which of its ENIs a NodeENI adopts
// (planGoAdoption), which it leaves and why, and how its status rows are recognised.
import { describe, expect, it } from 'vitest';
import type { GoControllerEni, ManagedEni, ResolvedSpec } from '../activities/ec2/ec2-activities.js';
import type { ObservedNodeENI } from '../activities/kube/kube-activities.js';
import type { ENIAttachmentStatus } from '../common/types.js';
import { emptyEntityState } from '../common/workflow-api.js';
import { goControllerRows, planGoAdoption, planReconcile, type GoAdoptionInput } from '../workflows/plan.js';

const uid = 'u-1';
const name = 'multus';
const SUBNET_A = 'subnet-aaaaaaaa';
const SUBNET_A2 = 'subnet-a2a2a2a2';
const SUBNET_B = 'subnet-bbbbbbbb';
const STORAGE_A = 'subnet-5a5a5a5a';

/** A status row as the Go controller wrote it, read back through our CRD (no phase). */
const goRow = (eniID: string, nodeID: string, instanceID: string, subnetID: string) =>
  ({ nodeID, instanceID, eniID, attachmentID: `att-${eniID}`, subnetID, deviceIndex: 2 }) as unknown as ENIAttachmentStatus;

const observed = (over: Partial<ObservedNodeENI> = {}): ObservedNodeENI => ({
  exists: true,
  generation: 3,
  deleting: false,
  hasFinalizer: true,
  spec: { nodeSelector: { ng: 'x' }, subnetNames: ['a', 'a2', 'b'], securityGroupNames: ['sg'], deviceIndex: 2 },
  status: {},
  nodes: [
    { name: 'n1', uid: 'n1u', labels: { ng: 'x' }, instanceId: 'i-00000001', zone: 'us-east-1a' },
    { name: 'n2', uid: 'n2u', labels: { ng: 'x' }, instanceId: 'i-00000002', zone: 'us-east-1b' },
  ],
  ...over,
});
const resolved = (problems: ResolvedSpec['problems'] = []): ResolvedSpec[] => [{
  vpcId: 'vpc-1',
  subnets: [
    { id: SUBNET_A, name: 'a', az: 'us-east-1a' },
    { id: SUBNET_A2, name: 'a2', az: 'us-east-1a' },
    { id: SUBNET_B, name: 'b', az: 'us-east-1b' },
  ],
  securityGroupIds: ['sg-11111111'],
  problems,
}];
const instances = [
  { instanceId: 'i-00000001', az: 'us-east-1a', vpcId: 'vpc-1', state: 'running' },
  { instanceId: 'i-00000002', az: 'us-east-1b', vpcId: 'vpc-1', state: 'running' },
];

interface GoEniOptions {
  subnet?: string;
  node?: string | null;
  nodeEni?: string | null;
  managedBy?: boolean;
  instance?: string | null;
  deviceIndex?: number;
  owner?: GoControllerEni['owner'];
  requesterManaged?: boolean;
}
/** An ENI as the Go controller left it: its tags, attached to node n1's instance at index 2 unless told otherwise. */
const goEni = (id: string, o: GoEniOptions = {}): GoControllerEni => {
  const instance = o.instance === undefined ? 'i-00000001' : o.instance;
  return {
    eniId: id, status: instance ? 'in-use' : 'available', subnetId: o.subnet ?? SUBNET_A, macAddress: '02:00:00:00:00:0a', leaked: false,
    securityGroupIds: ['sg-11111111'],
    attachment: instance ? { attachmentId: `att-${id}`, instanceId: instance, deviceIndex: o.deviceIndex ?? 2, status: 'attached', deleteOnTermination: true } : undefined,
    go: { managedBy: o.managedBy ?? true, nodeEni: o.nodeEni === null ? undefined : (o.nodeEni ?? name), node: o.node === null ? undefined : (o.node ?? 'n1'), subnetId: o.subnet ?? SUBNET_A },
    owner: o.owner ?? {},
    requesterManaged: o.requesterManaged ?? false,
  };
};
const ours = (id: string, key: string): ManagedEni => ({
  eniId: id, status: 'in-use', subnetId: key.split('/')[3]!, macAddress: '02:00:00:00:00:01', attachmentKey: key, nodeName: key.split('/')[1], instanceId: key.split('/')[2], leaked: false,
  attachment: { attachmentId: `att-${id}`, instanceId: key.split('/')[2]!, deviceIndex: 2, status: 'attached', deleteOnTermination: true },
});
const input = (over: Partial<GoAdoptionInput> = {}): GoAdoptionInput => ({
  uid, nodeEniName: name, observed: observed(), instances, resolved: resolved(), managed: [], candidates: [], ...over,
});
const keyOf = (node: string, instance: string, subnet: string) => `${uid}/${node}/${instance}/${subnet}`;
const refusals = (plan: ReturnType<typeof planGoAdoption>) => plan.refuse.map((r) => [r.eniId, r.reason]);

describe('goControllerRows', () => {
  it('recognises the rows the Go controller wrote (no phase) and ignores ours', () => {
    const rows = goControllerRows({
      attachments: [
        goRow('eni-go', 'n1', 'i-00000001', SUBNET_A),
        { nodeID: 'n2', instanceID: 'i-00000002', subnetID: SUBNET_B, eniID: 'eni-ours', phase: 'Ready' },
        { nodeID: 'n2', instanceID: 'i-00000002', subnetID: SUBNET_B, phase: 'Pending' },
      ],
    });
    expect(rows).toEqual([{ nodeID: 'n1', instanceID: 'i-00000001', eniID: 'eni-go', subnetID: SUBNET_A }]);
    expect(goControllerRows(undefined)).toEqual([]);
    expect(goControllerRows({})).toEqual([]);
  });
});

describe('planGoAdoption', () => {
  it('adopts the Go controller\'s ENIs attached to their node\'s instance in a subnet the spec wants there, with the key the planner uses', () => {
    const plan = planGoAdoption(input({
      candidates: [
        goEni('eni-a', { subnet: SUBNET_A, deviceIndex: 2 }),
        goEni('eni-b', { subnet: SUBNET_B, node: 'n2', instance: 'i-00000002', deviceIndex: 3 }),
      ],
    }));
    expect(plan.refuse).toEqual([]);
    expect(plan.adopt.map((a) => [a.eni.eniId, a.keyString])).toEqual([
      ['eni-a', keyOf('n1', 'i-00000001', SUBNET_A)],
      ['eni-b', keyOf('n2', 'i-00000002', SUBNET_B)],
    ]);
    // The planner then serves those keys with them: nothing to create for n1/a and n2/b.
    const managed = plan.adopt.map((a) => ({ ...a.eni, attachmentKey: a.keyString, nodeName: a.key.nodeName, instanceId: a.key.instanceId }));
    const reconcile = planReconcile({ uid, observed: observed(), instances, resolved: resolved(), managed, state: emptyEntityState(), busyKeys: new Set(), busyEnis: new Set(), now: 0 });
    expect(reconcile.removing).toEqual([]);
    expect(reconcile.eniByKey.get(keyOf('n1', 'i-00000001', SUBNET_A))?.eniId).toBe('eni-a');
    expect(reconcile.eniByKey.get(keyOf('n2', 'i-00000002', SUBNET_B))?.eniId).toBe('eni-b');
    // Provisioned (configured on the node) as any ENI of ours without a configured record; only n1/a2 gets a new one.
    expect(reconcile.provision.map((d) => [d.key.nodeName, d.subnet.id, reconcile.eniByKey.get(d.keyString)?.eniId])).toEqual([
      ['n1', SUBNET_A, 'eni-a'], ['n1', SUBNET_A2, undefined], ['n2', SUBNET_B, 'eni-b'],
    ]);
  });

  it('takes the node from the status row when the ENI lacks the Node tag', () => {
    const plan = planGoAdoption(input({
      observed: observed({ status: { attachments: [goRow('eni-a', 'n1', 'i-00000001', SUBNET_A)] } }),
      candidates: [goEni('eni-a', { node: null })],
    }));
    expect(plan.adopt.map((a) => a.key.nodeName)).toEqual(['n1']);
  });

  it('refuses an ENI attached to another instance than its node\'s (a node re-created under the same name)', () => {
    const plan = planGoAdoption(input({ candidates: [goEni('eni-x', { instance: 'i-0000000f' })] }));
    expect(plan.adopt).toEqual([]);
    expect(refusals(plan)).toEqual([['eni-x', 'AttachedToOtherInstance']]);
    expect(plan.refuse[0]!.message).toContain('attached to i-0000000f, not to i-00000001');
  });

  it('refuses an ENI in a subnet the spec does not want on that node, and waits while subnets do not resolve', () => {
    expect(refusals(planGoAdoption(input({ candidates: [goEni('eni-s', { subnet: STORAGE_A })] })))).toEqual([['eni-s', 'SubnetNotInSpec']]);
    // A subnet of the spec in another zone than the node: not wanted there either.
    expect(refusals(planGoAdoption(input({ candidates: [goEni('eni-z', { subnet: SUBNET_B })] })))).toEqual([['eni-z', 'SubnetNotInSpec']]);
    const unresolved = resolved([{ reason: 'SubnetNotFound', message: 'no subnet named "c"' }]);
    expect(refusals(planGoAdoption(input({ resolved: unresolved, candidates: [goEni('eni-s', { subnet: STORAGE_A })] })))).toEqual([['eni-s', 'SpecUnresolved']]);
  });

  it('never adopts an ENI carrying our tags for another NodeENI or cluster, and skips one already ours', () => {
    const plan = planGoAdoption(input({
      candidates: [
        goEni('eni-other-cluster', { owner: { managedBy: 'nodeeni-controller', uid: 'u-2', cluster: 'prod-2' } }),
        goEni('eni-ours', { owner: { managedBy: 'nodeeni-controller', uid, cluster: 'c' } }),
      ],
    }));
    expect(plan.adopt).toEqual([]);
    expect(refusals(plan)).toEqual([['eni-other-cluster', 'OwnedByOther']]);
  });

  it('ignores ENIs of another NodeENI, and refuses one the status lists that the Go tags give to another NodeENI or node', () => {
    expect(planGoAdoption(input({ candidates: [goEni('eni-o', { nodeEni: 'other' })] }))).toEqual({ adopt: [], refuse: [] });
    const listed = observed({ status: { attachments: [goRow('eni-o', 'n1', 'i-00000001', SUBNET_A), goRow('eni-n', 'n1', 'i-00000001', SUBNET_A)] } });
    const plan = planGoAdoption(input({ observed: listed, candidates: [goEni('eni-o', { nodeEni: 'other' }), goEni('eni-n', { node: 'n2' })] }));
    expect(refusals(plan)).toEqual([['eni-n', 'NodeMismatch'], ['eni-o', 'OtherNodeENI']]);
  });

  it('refuses an ENI listed in the status without the Go controller\'s tags (the IAM policy would not let us tag it)', () => {
    const listed = observed({ status: { attachments: [goRow('eni-u', 'n1', 'i-00000001', SUBNET_A)] } });
    const plan = planGoAdoption(input({ observed: listed, candidates: [goEni('eni-u', { managedBy: false, nodeEni: null, node: null })] }));
    expect(refusals(plan)).toEqual([['eni-u', 'NotGoControllerTagged']]);
  });

  it('refuses ENIs of nodes the NodeENI no longer selects, the primary interface and AWS-managed interfaces', () => {
    const plan = planGoAdoption(input({
      candidates: [
        goEni('eni-gone', { node: 'n9', instance: 'i-00000009' }),
        goEni('eni-primary', { deviceIndex: 0 }),
        goEni('eni-trunk', { requesterManaged: true, deviceIndex: 3 }),
      ],
    }));
    expect(refusals(plan)).toEqual([['eni-primary', 'NotSecondary'], ['eni-gone', 'NodeNotSelected'], ['eni-trunk', 'NotSecondary']]);
  });

  it('adopts an unattached ENI only when the Go status lists it for that node and instance', () => {
    expect(refusals(planGoAdoption(input({ candidates: [goEni('eni-free', { instance: null })] })))).toEqual([['eni-free', 'NotAttached']]);
    const listedElsewhere = observed({ status: { attachments: [goRow('eni-free', 'n1', 'i-0000000e', SUBNET_A)] } });
    expect(refusals(planGoAdoption(input({ observed: listedElsewhere, candidates: [goEni('eni-free', { instance: null })] })))).toEqual([['eni-free', 'ListedForOtherInstance']]);
    const listed = observed({ status: { attachments: [goRow('eni-free', 'n1', 'i-00000001', SUBNET_A)] } });
    const plan = planGoAdoption(input({ observed: listed, candidates: [goEni('eni-free', { instance: null })] }));
    expect(plan.adopt.map((a) => [a.eni.eniId, a.keyString])).toEqual([['eni-free', keyOf('n1', 'i-00000001', SUBNET_A)]]);
  });

  it('adopts one ENI per (node, subnet): the one the status lists, else attached, else lower index; never beside one of ours', () => {
    const twins = [goEni('eni-1', { deviceIndex: 4 }), goEni('eni-2', { deviceIndex: 2 }), goEni('eni-3', { instance: null })];
    const byIndex = planGoAdoption(input({ candidates: twins }));
    expect(byIndex.adopt.map((a) => a.eni.eniId)).toEqual(['eni-2']);
    expect(refusals(byIndex)).toEqual([['eni-1', 'Duplicate'], ['eni-3', 'NotAttached']]);

    const listed = observed({ status: { attachments: [goRow('eni-1', 'n1', 'i-00000001', SUBNET_A)] } });
    const byStatus = planGoAdoption(input({ observed: listed, candidates: twins }));
    expect(byStatus.adopt.map((a) => a.eni.eniId)).toEqual(['eni-1']);
    expect(refusals(byStatus)).toEqual([['eni-2', 'Duplicate'], ['eni-3', 'NotAttached']]);

    const served = planGoAdoption(input({ managed: [ours('eni-ours', keyOf('n1', 'i-00000001', SUBNET_A))], candidates: [goEni('eni-2')] }));
    expect(served.adopt).toEqual([]);
    expect(refusals(served)).toEqual([['eni-2', 'Duplicate']]);
  });

  it('while the NodeENI is being deleted, adopts its ENIs on its nodes whatever the subnet, to tear them down', () => {
    const plan = planGoAdoption(input({
      observed: observed({ deleting: true }),
      instances: [],
      resolved: [],
      candidates: [goEni('eni-s', { subnet: STORAGE_A }), goEni('eni-a'), goEni('eni-x', { instance: 'i-0000000f' })],
    }));
    expect(plan.adopt.map((a) => [a.eni.eniId, a.keyString])).toEqual([
      ['eni-a', keyOf('n1', 'i-00000001', SUBNET_A)],
      ['eni-s', keyOf('n1', 'i-00000001', STORAGE_A)],
    ]);
    expect(refusals(plan)).toEqual([['eni-x', 'AttachedToOtherInstance']]);
    // Not desired: the planner tears them down.
    const managed = plan.adopt.map((a) => ({ ...a.eni, attachmentKey: a.keyString, nodeName: a.key.nodeName, instanceId: a.key.instanceId }));
    const reconcile = planReconcile({ uid, observed: observed({ deleting: true }), instances: [], resolved: [], managed, state: emptyEntityState(), busyKeys: new Set(), busyEnis: new Set(), now: 0 });
    expect(reconcile.teardown.map((e) => e.eniId).sort()).toEqual(['eni-a', 'eni-s']);
  });

  it('adopts nothing for an object that is gone', () => {
    expect(planGoAdoption(input({ observed: observed({ exists: false }), candidates: [goEni('eni-a')] }))).toEqual({ adopt: [], refuse: [] });
  });
});

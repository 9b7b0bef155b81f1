// Reconcile planning, without servers: what to provision, what to tear down, what to keep.
import { describe, expect, it } from 'vitest';
import type { ManagedEni, ResolvedSpec } from '../activities/ec2/ec2-activities.js';
import type { ObservedNodeENI } from '../activities/kube/kube-activities.js';
import { emptyEntityState } from '../common/workflow-api.js';
import { planReconcile, type PlanInput } from '../workflows/plan.js';
import { buildStatus, conditionReason } from '../workflows/status.js';

const uid = 'u-1';
const observed = (over: Partial<ObservedNodeENI> = {}): ObservedNodeENI => ({
  exists: true,
  generation: 1,
  deleting: false,
  hasFinalizer: true,
  spec: { nodeSelector: { ng: 'x' }, subnetNames: ['a', 'b'], securityGroupNames: ['sg'], deviceIndex: 2 },
  status: {},
  nodes: [
    { name: 'n1', uid: 'n1u', labels: { ng: 'x' }, instanceId: 'i-00000001', zone: 'us-east-1a' },
    { name: 'n2', uid: 'n2u', labels: { ng: 'x' }, instanceId: 'i-00000002', zone: 'us-east-1b' },
  ],
  ...over,
});
const resolved: ResolvedSpec[] = [{
  vpcId: 'vpc-1',
  subnets: [
    { id: 'subnet-aaaaaaaa', name: 'a', az: 'us-east-1a' },
    { id: 'subnet-a2a2a2a2', name: 'a2', az: 'us-east-1a' },
    { id: 'subnet-bbbbbbbb', name: 'b', az: 'us-east-1b' },
  ],
  securityGroupIds: ['sg-11111111'],
  problems: [],
}];
const instances = [
  { instanceId: 'i-00000001', az: 'us-east-1a', vpcId: 'vpc-1', state: 'running' },
  { instanceId: 'i-00000002', az: 'us-east-1b', vpcId: 'vpc-1', state: 'running' },
];
const eni = (id: string, key: string, node: string, attached = true): ManagedEni => ({
  eniId: id, status: attached ? 'in-use' : 'available', subnetId: key.split('/')[3]!, macAddress: '02:00:00:00:00:01',
  attachmentKey: key, nodeName: node, instanceId: key.split('/')[2], leaked: false,
  attachment: attached ? { attachmentId: `att-${id}`, instanceId: key.split('/')[2]!, deviceIndex: 2, status: 'attached', deleteOnTermination: true } : undefined,
});
const base = (over: Partial<PlanInput> = {}): PlanInput => ({
  uid, observed: observed(), instances, resolved, managed: [], state: emptyEntityState(), busyKeys: new Set(), busyEnis: new Set(), now: 1000, ...over,
});

describe('planReconcile', () => {
  it('wants one ENI per node per subnet in the node zone, indices from the spec base', () => {
    const plan = planReconcile(base());
    expect(plan.desired.map((d) => [d.key.nodeName, d.subnet.id, d.preferredDeviceIndex])).toEqual([
      ['n1', 'subnet-aaaaaaaa', 2], ['n1', 'subnet-a2a2a2a2', 3], ['n2', 'subnet-bbbbbbbb', 2],
    ]);
    expect(plan.skipped.filter((p) => p.reason === 'SubnetZoneMismatch')).toHaveLength(3);
    expect(plan.problems).toEqual([]);
    expect(plan.provision).toHaveLength(3);
  });

  it('tears down ENIs whose node left the selector, and duplicates of a key', () => {
    const k1 = `${uid}/n1/i-00000001/subnet-aaaaaaaa`;
    const gone = `${uid}/n9/i-00000009/subnet-aaaaaaaa`;
    const plan = planReconcile(base({ managed: [eni('eni-1', k1, 'n1'), eni('eni-2', k1, 'n1'), eni('eni-9', gone, 'n9')] }));
    expect(plan.teardown.map((e) => e.eniId)).toEqual(['eni-2', 'eni-9']);
    expect(plan.eniByKey.get(k1)?.eniId).toBe('eni-1');
  });

  it('skips keys already being worked on and failures still backing off', () => {
    const k1 = `${uid}/n1/i-00000001/subnet-aaaaaaaa`;
    const state = emptyEntityState();
    state.failures[`${uid}/n2/i-00000002/subnet-bbbbbbbb`] = { reason: 'X', message: 'm', generation: 1, retryAt: 5000, attempts: 1 };
    const plan = planReconcile(base({ busyKeys: new Set([k1]), state }));
    expect(plan.provision.map((d) => d.key.subnetId)).toEqual(['subnet-a2a2a2a2']);
    // A new generation retries at once.
    expect(planReconcile(base({ busyKeys: new Set([k1]), state, observed: observed({ generation: 2 }) })).provision).toHaveLength(2);
  });

  it('does not re-provision a configured attachment of the same generation', () => {
    const k1 = `${uid}/n1/i-00000001/subnet-aaaaaaaa`;
    const state = emptyEntityState();
    state.configured[k1] = { eniId: 'eni-1', attachmentId: 'att-eni-1', deviceIndex: 2, macAddress: 'm', interfaceName: 'ens6', mtu: 9001, generation: 1 };
    const plan = planReconcile(base({ managed: [eni('eni-1', k1, 'n1')], state }));
    expect(plan.provision.map((d) => d.keyString)).not.toContain(k1);
    const status = buildStatus({ plan, state, spec: observed().spec, generation: 1, deleting: false, inFlight: [], previous: [], now: 't' });
    expect(status.attachments?.find((a) => a.eniID === 'eni-1')?.phase).toBe('Ready');
    expect(status.readyCount).toBe(1);
    expect(status.desiredCount).toBe(3);
  });

  it('keeps ENIs of selected nodes while a subnet name stops resolving', () => {
    const k1 = `${uid}/n1/i-00000001/subnet-aaaaaaaa`;
    const broken = [{ ...resolved[0]!, subnets: resolved[0]!.subnets.slice(1), problems: [{ reason: 'SubnetNotFound', message: 'no subnet named "a"' }] }];
    const plan = planReconcile(base({ resolved: broken, managed: [eni('eni-1', k1, 'n1')] }));
    expect(plan.teardown).toEqual([]);
    expect(plan.retained.map((e) => e.eniId)).toEqual(['eni-1']);
  });

  it('wants nothing while deleting, and everything owned goes', () => {
    const k1 = `${uid}/n1/i-00000001/subnet-aaaaaaaa`;
    const plan = planReconcile(base({ observed: observed({ deleting: true }), managed: [eni('eni-1', k1, 'n1')] }));
    expect(plan.desired).toEqual([]);
    expect(plan.teardown.map((e) => e.eniId)).toEqual(['eni-1']);
  });

  it('condition reasons are valid metav1 reasons', () => {
    expect(conditionReason('InvalidSubnetID.NotFound')).toBe('InvalidSubnetIDNotFound');
    expect(conditionReason('404')).toBe('Error404');
  });

  it('keeps lastTransitionTime while a condition holds', () => {
    const plan = planReconcile(base({ observed: observed({ nodes: [] }) }));
    const first = buildStatus({ plan, state: emptyEntityState(), spec: observed().spec, generation: 1, deleting: false, inFlight: [], previous: [], now: 'T1' });
    const second = buildStatus({ plan, state: emptyEntityState(), spec: observed().spec, generation: 1, deleting: false, inFlight: [], previous: first.conditions!, now: 'T2' });
    expect(second).toEqual(first);
  });
});

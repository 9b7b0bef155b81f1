// The NodeENI lifecycle end to end on the real backends: Temporal dev server,
// moto behind the fault proxy, kube-apiserver + etcd, simulated hosts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPayloadConverter } from '@temporalio/common';
import type { ManagedEni } from '../activities/ec2/ec2-activities.js';
import { entityWorkflowId, FINALIZER, TAG } from '../common/names.js';
import { childFinishedSignal } from '../common/workflow-api.js';
import type { NodeENIObject } from '../common/types.js';
import { createTestCluster, eventually, type TestCluster } from './support/cluster.js';
import { conditionOf, enisOf, eventsFor, isReady, tagOf } from './support/inspect.js';

let c: TestCluster;
beforeAll(async () => {
  c = await createTestCluster();
  // Nodes 0 (zone a) and 2 (zone b) are selected; node 1 (zone a) is not.
  await c.labelNode(c.nodes[0]!.name, { ng: 'multi-eni' });
  await c.labelNode(c.nodes[2]!.name, { ng: 'multi-eni' });
});
afterAll(async () => {
  await c?.dispose();
});

const plainSpec = {
  nodeSelector: { ng: 'multi-eni' },
  subnetNames: ['multus-a', 'multus-b'],
  securityGroupNames: ['multus-sg'],
  deviceIndex: 2,
  mtu: 9001,
};

describe('NodeENI lifecycle', () => {
  let obj: NodeENIObject;

  it('gives exactly the two selected nodes one ENI each, attached, tagged, configured on the host', async () => {
    obj = await c.createNodeEni('plain', { ...plainSpec, nodeSelector: { 'nodeeni-test': c.runId, ...plainSpec.nodeSelector } });
    const ready = await eventually('NodeENI Ready with 2 attachments', async () => {
      const o = await c.getNodeEni('plain');
      return isReady(o, 2) && o;
    }, 90_000);
    expect(ready.metadata.finalizers).toContain(FINALIZER);

    const enis = await enisOf(c.ec2, obj.metadata.uid);
    expect(enis).toHaveLength(2);
    const [n0, , n2] = c.nodes;
    const byInstance = new Map(enis.map((e) => [e.Attachment?.InstanceId, e]));
    for (const [node, inst, subnetName] of [[n0!, c.world.instances[0]!, 'multus-a'], [n2!, c.world.instances[2]!, 'multus-b']] as const) {
      const eni = byInstance.get(inst.id);
      expect(eni, `ENI on ${node.name}`).toBeDefined();
      expect(eni!.Attachment?.DeviceIndex).toBe(2);
      expect(eni!.Attachment?.Status).toBe('attached');
      expect(eni!.Attachment?.DeleteOnTermination).toBe(true);
      expect(eni!.SubnetId).toBe(c.world.subnets.find((s) => s.name === subnetName)!.id);
      expect(eni!.Groups?.map((g) => g.GroupId)).toEqual([c.world.securityGroups.find((g) => g.name === 'multus-sg')!.id]);
      expect(tagOf(eni!, TAG.node)).toBe(node.name);
      expect(tagOf(eni!, TAG.instanceId)).toBe(inst.id);
      expect(tagOf(eni!, TAG.cluster)).toBe(c.runId);
      expect(tagOf(eni!, TAG.vpcCniNoManage)).toBe('true');

      const iface = node.host.snapshot().interfaces.find((i) => i.macAddress === eni!.MacAddress);
      expect(iface, `interface with ${eni!.MacAddress} on ${node.name}`).toBeDefined();
      expect(iface!.mtu).toBe(9001);
      expect(iface!.up).toBe(true);
      const row = ready.status!.attachments!.find((a) => a.nodeID === node.name)!;
      expect(row).toMatchObject({ eniID: eni!.NetworkInterfaceId, phase: 'Ready', interfaceName: iface!.name, pciAddress: iface!.pciAddress, mtu: 9001, deviceIndex: 2 });
    }
    // Node 1 is not selected: only its primary interface.
    expect(c.nodes[1]!.host.snapshot().interfaces.filter((i) => i.name !== 'lo')).toHaveLength(1);
    expect(conditionOf(ready, 'Degraded')?.status).toBe('False');
    expect(conditionOf(ready, 'Ready')?.message).toContain('skipped (other zone)');

    const reasons = (await eventsFor(c.core, obj.metadata.uid)).map((e) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(['ENICreated', 'ENIAttached', 'InterfaceConfigured']));

    // Each child reported its ENI as EC2 shows it, and a pass its reports woke took them and read
    // nothing before its status write (REPORTS_TRUSTED_PATCH): no observe, no listing.
    const history = (await c.client.workflow.getHandle(entityWorkflowId(obj.metadata.name, obj.metadata.uid)).fetchHistory()).events ?? [];
    const scheduled = history.map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name);
    const reports = history.flatMap((e, i) => {
      const signal = e.workflowExecutionSignaledEventAttributes;
      return signal?.signalName === childFinishedSignal.name ? [{ i, outcome: defaultPayloadConverter.fromPayload<{ op: string; ok: boolean; eni?: ManagedEni }>(signal.input!.payloads![0]!) }] : [];
    });
    expect(reports.map((r) => r.outcome.eni?.eniId).sort()).toEqual(enis.map((e) => e.NetworkInterfaceId).sort());
    for (const { outcome } of reports) {
      const eni = enis.find((e) => e.NetworkInterfaceId === outcome.eni!.eniId)!;
      expect(outcome.eni).toMatchObject({
        status: eni.Status, subnetId: eni.SubnetId, macAddress: eni.MacAddress, leaked: false,
        nodeName: tagOf(eni, TAG.node), instanceId: tagOf(eni, TAG.instanceId), attachmentKey: tagOf(eni, TAG.attachmentKey),
        securityGroupIds: eni.Groups!.map((g) => g.GroupId!).sort(),
        attachment: { attachmentId: eni.Attachment!.AttachmentId, instanceId: eni.Attachment!.InstanceId, deviceIndex: 2, status: 'attached', deleteOnTermination: true },
      });
    }
    const readsNothing = reports.filter(({ i }) => {
      const after = scheduled.slice(i + 1).filter((n): n is string => n !== undefined);
      const write = after.indexOf('writeStatus');
      return write >= 0 && !after.slice(0, write).some((n) => n === 'observeNodeEni' || n === 'listManagedEnis');
    });
    expect(readsNothing.length, 'passes woken by reports that read nothing').toBeGreaterThan(0);
  });

  it('detaches and deletes the ENI of a node relabelled out, and provisions a node labelled in', async () => {
    const n2 = c.nodes[2]!;
    const before = await enisOf(c.ec2, obj.metadata.uid);
    const n2Eni = before.find((e) => e.Attachment?.InstanceId === c.world.instances[2]!.id)!;
    await c.labelNode(n2.name, { ng: null });
    const after = await eventually('node 2 ENI gone and status updated', async () => {
      const o = await c.getNodeEni('plain');
      const enis = await enisOf(c.ec2, obj.metadata.uid);
      return isReady(o, 1) && enis.length === 1 && o!.status!.attachments!.length === 1 && o;
    }, 60_000);
    expect(after.status!.attachments!.map((a) => a.nodeID)).toEqual([c.nodes[0]!.name]);
    expect(n2.host.snapshot().interfaces.some((i) => i.macAddress === n2Eni.MacAddress)).toBe(false);

    await c.labelNode(c.nodes[1]!.name, { ng: 'multi-eni' });
    const grown = await eventually('node 1 provisioned', async () => {
      const o = await c.getNodeEni('plain');
      return isReady(o, 2) && o;
    }, 60_000);
    expect(grown.status!.attachments!.map((a) => a.nodeID).sort()).toEqual([c.nodes[0]!.name, c.nodes[1]!.name].sort());
    expect(await enisOf(c.ec2, obj.metadata.uid)).toHaveLength(2);
  });

  it('deleting the NodeENI removes every ENI, then the finalizer, then the object', async () => {
    await c.deleteNodeEni('plain');
    await eventually('object gone', async () => (await c.getNodeEni('plain')) === undefined, 60_000);
    expect(await enisOf(c.ec2, obj.metadata.uid)).toEqual([]);
    // The hosts see the hot-unplug, and the entity records its last Event, right after.
    await eventually('devices unplugged', async () => c.nodes.every((n) => n.host.snapshot().interfaces.filter((i) => i.name !== 'lo').length === 1));
    const reasons = await eventually('cleanup Events', async () => {
      const r = (await eventsFor(c.core, obj.metadata.uid)).map((e) => e.reason ?? '');
      return r.includes('CleanupComplete') && r;
    });
    expect(reasons).toEqual(expect.arrayContaining(['ENIDetached', 'ENIDeleted', 'CleanupComplete']));
  });
});

describe('failures', () => {
  it('compensates a non-retryable attach failure: the created ENI is deleted, Degraded says why', async () => {
    await c.fault.addRules({ action: 'AttachNetworkInterface', account: c.account, code: 'InvalidParameterValue', message: 'injected: attach refused', count: 1 });
    const node = c.nodes[0]!;
    const obj = await c.createNodeEni('comp', { nodeSelector: { 'nodeeni-test': c.runId, 'kubernetes.io/hostname': node.name }, subnetNames: ['storage-a'], securityGroupNames: ['storage-sg'] });
    const degraded = await eventually('Degraded with the reason', async () => {
      const o = await c.getNodeEni('comp');
      return conditionOf(o, 'Degraded')?.status === 'True' && o!.status?.attachments?.[0]?.phase === 'Failed' && o;
    });
    expect(conditionOf(degraded, 'Degraded')!.reason).toBe('InvalidParameterValue');
    expect(conditionOf(degraded, 'Degraded')!.message).toContain('injected: attach refused');
    expect(conditionOf(degraded, 'Ready')!.status).toBe('False');
    expect(await enisOf(c.ec2, obj.metadata.uid)).toEqual([]);
    const counts = await c.fault.counts(c.account);
    expect(counts.CreateNetworkInterface).toBeGreaterThanOrEqual(1);
    expect(counts.DeleteNetworkInterface).toBeGreaterThanOrEqual(1);
    expect((await eventsFor(c.core, obj.metadata.uid)).map((e) => e.reason)).toContain('ProvisioningFailed');
    await c.fault.clear();
    await c.deleteNodeEni('comp');
    await eventually('comp deleted', async () => (await c.getNodeEni('comp')) === undefined);
  });

  it('reports references that do not resolve as conditions with reasons, and creates nothing', async () => {
    const obj = await c.createNodeEni('unresolved', {
      nodeSelector: { 'nodeeni-test': c.runId, ng: 'multi-eni' },
      subnetNames: ['no-such-subnet'],
      securityGroupNames: ['multus-sg', 'no-such-sg'],
    });
    const o = await eventually('Degraded', async () => {
      const x = await c.getNodeEni('unresolved');
      return conditionOf(x, 'Degraded')?.status === 'True' && x;
    });
    const degraded = conditionOf(o, 'Degraded')!;
    expect(degraded.reason).toBe('SubnetNotFound');
    expect(degraded.message).toContain('no subnet named "no-such-subnet"');
    expect(degraded.message).toContain('no security group named "no-such-sg"');
    expect(o.status!.desiredCount).toBe(0);
    expect(conditionOf(o, 'Ready')).toMatchObject({ status: 'False', reason: 'NothingToAttach' });
    expect(await enisOf(c.ec2, obj.metadata.uid)).toEqual([]);
    await c.deleteNodeEni('unresolved');
    await eventually('deleted', async () => (await c.getNodeEni('unresolved')) === undefined);
  });
});

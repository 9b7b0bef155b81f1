// Migration from the Go controller, end to end on the real backends: the world the Go
// "AWS Multi-ENI Controller" leaves behind (its ENIs with its tags and description,
// attached at the device indices it picks, a NodeENI with its finalizer and the status
// it wrote, stored as its CRD stored it), then our system is started on it. It must
// adopt exactly the ENIs that are this NodeENI's on its nodes (no new ENI), add our
// tags, configure them on the hosts, leave everything else alone and say why, and
// tear the adopted ENIs down when the NodeENI is deleted.
import {
  AttachNetworkInterfaceCommand,
  CreateNetworkInterfaceCommand,
  DescribeNetworkInterfacesCommand,
  ModifyNetworkInterfaceAttributeCommand,
  type EC2Client,
  type NetworkInterface,
  type Tag,
} from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_GROUP, API_VERSION, FINALIZER, GO_CONTROLLER_MANAGED_BY_VALUE, GO_CONTROLLER_NAME, GO_CONTROLLER_TAG, MANAGED_BY_VALUE, NODEENI_PLURAL, TAG } from '../common/names.js';
import type { NodeENIObject } from '../common/types.js';
import { makeEc2Client } from '../sandbox/ec2/client.js';
import { createTestCluster, eventually, type TestCluster } from './support/cluster.js';
import { conditionOf, enisOf, eventsFor, isReady, tagOf } from './support/inspect.js';

let c: TestCluster;
/** moto directly: the Go controller's calls are not the system's, so the fault proxy does not count them. */
let goEc2: EC2Client;

beforeAll(async () => {
  // Our system is installed after the Go controller was scaled to 0: the control worker
  // runs, but nothing starts an entity until the watcher does.
  c = await createTestCluster({ watcher: false });
  goEc2 = makeEc2Client({ endpoint: c.backends.motoEndpoint, account: c.account, maxAttempts: 3 });
  // Nodes 0 (zone a) and 2 (zone b) are selected; node 1 (zone a) is not.
  await c.labelNode(c.nodes[0]!.name, { ng: 'go-migrated' });
  await c.labelNode(c.nodes[2]!.name, { ng: 'go-migrated' });
});
afterAll(async () => {
  await c?.dispose();
});

const subnetId = (name: string) => c.world.subnets.find((s) => s.name === name)!.id;
const sgId = (name: string) => c.world.securityGroups.find((g) => g.name === name)!.id;

/** What the Go controller's createENIInSubnet + attachENI leave: tags (nodeeni_controller.go), description, attachment, DeleteOnTermination. */
async function goControllerEni(o: { nodeEni: string; node: string; subnet: string; instanceId: string; deviceIndex: number; extraTags?: Tag[] }): Promise<NetworkInterface> {
  const subnet = subnetId(o.subnet);
  const created = await goEc2.send(new CreateNetworkInterfaceCommand({
    SubnetId: subnet,
    Groups: [sgId(o.subnet.startsWith('storage') ? 'storage-sg' : 'multus-sg')],
    Description: `ENI created by nodeeni-controller for node ${o.node}`,
    TagSpecifications: [{
      ResourceType: 'network-interface',
      Tags: [
        { Key: 'Name', Value: `nodeeni-${o.nodeEni}-${o.node}-${subnet.slice(-8)}` },
        { Key: GO_CONTROLLER_TAG.nodeEni, Value: o.nodeEni },
        { Key: GO_CONTROLLER_TAG.node, Value: o.node },
        { Key: GO_CONTROLLER_TAG.subnetId, Value: subnet },
        { Key: GO_CONTROLLER_TAG.managedBy, Value: GO_CONTROLLER_MANAGED_BY_VALUE },
        { Key: TAG.vpcCniNoManage, Value: 'true' },
        ...(o.extraTags ?? []),
      ],
    }],
  }));
  const eniId = created.NetworkInterface!.NetworkInterfaceId!;
  const att = await goEc2.send(new AttachNetworkInterfaceCommand({ NetworkInterfaceId: eniId, InstanceId: o.instanceId, DeviceIndex: o.deviceIndex }));
  await goEc2.send(new ModifyNetworkInterfaceAttributeCommand({ NetworkInterfaceId: eniId, Attachment: { AttachmentId: att.AttachmentId, DeleteOnTermination: true } }));
  return describe1(eniId) as Promise<NetworkInterface>;
}

async function describe1(eniId: string): Promise<NetworkInterface | undefined> {
  const res = await goEc2.send(new DescribeNetworkInterfacesCommand({ Filters: [{ Name: 'network-interface-id', Values: [eniId] }] }));
  return res.NetworkInterfaces?.[0];
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
/**
 * Stores the object's status straight in etcd, as the Go controller's CRD (no
 * `phase`, its own `status` and `lastUpdated` fields) let it be written: our
 * CRD would reject such rows through the API. The API server reads it from there.
 */
async function storeAsGoControllerLeftIt(name: string, status: unknown): Promise<void> {
  const etcd = c.backends.kube.etcdUrl;
  expect(etcd, 'the global setup provides the etcd URL').toBeDefined();
  const key = b64(`/registry/${API_GROUP}/${NODEENI_PLURAL}/${name}`);
  const range = (await (await fetch(`${etcd}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key }) })).json()) as { kvs?: Array<{ value: string }> };
  expect(range.kvs, `etcd holds ${name}`).toHaveLength(1);
  const stored = JSON.parse(Buffer.from(range.kvs![0]!.value, 'base64').toString('utf8')) as Record<string, unknown>;
  stored.status = status;
  const put = await fetch(`${etcd}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key, value: b64(JSON.stringify(stored)) }) });
  expect(put.ok).toBe(true);
}

describe('taking over NodeENIs the Go controller served', () => {
  const name = () => `${c.runId}-migrated`;
  let nodeEni: NodeENIObject;
  let goA: NetworkInterface;
  let goB: NetworkInterface;
  const notAdopted: Record<'otherNodeEni' | 'wrongInstance' | 'wrongSubnet' | 'otherCluster', NetworkInterface> = {} as never;
  let otherVpc: NetworkInterface;

  it('adopts exactly the Go controller\'s ENIs of this NodeENI on its nodes: no new ENI, our tags added, configured on the hosts, Ready', async () => {
    const [n0, n1, n2] = c.nodes;
    const [i0, i1, i2] = c.world.instances;
    // The Go controller's work for NodeENI "migrated" (subnets multus-a, multus-b from deviceIndex 2):
    // node 0 got multus-a at 2; node 2 (zone b) multus-b at 2 + its position in the list = 3.
    goA = await goControllerEni({ nodeEni: name(), node: n0!.name, subnet: 'multus-a', instanceId: i0!.id, deviceIndex: 2 });
    goB = await goControllerEni({ nodeEni: name(), node: n2!.name, subnet: 'multus-b', instanceId: i2!.id, deviceIndex: 3 });
    // And ENIs that must not be adopted:
    notAdopted.otherNodeEni = await goControllerEni({ nodeEni: `${c.runId}-other`, node: n0!.name, subnet: 'multus-a', instanceId: i0!.id, deviceIndex: 1 });
    notAdopted.wrongInstance = await goControllerEni({ nodeEni: name(), node: n0!.name, subnet: 'multus-a', instanceId: i1!.id, deviceIndex: 2 });
    notAdopted.wrongSubnet = await goControllerEni({ nodeEni: name(), node: n0!.name, subnet: 'storage-a', instanceId: i0!.id, deviceIndex: 3 });
    notAdopted.otherCluster = await goControllerEni({
      nodeEni: name(), node: n2!.name, subnet: 'multus-b', instanceId: i2!.id, deviceIndex: 1,
      extraTags: [{ Key: TAG.managedBy, Value: MANAGED_BY_VALUE }, { Key: TAG.cluster, Value: 'another-cluster' }, { Key: TAG.nodeEniUid, Value: 'another-uid' }],
    });
    void n1;
    // The same NodeENI name's Go ENI in another VPC (another cluster's): the look reads every VPC beside
    // the instances (EARLY_REFERENCES_PATCH) and must drop it as a look in the nodes' VPCs never saw it.
    otherVpc = (await goEc2.send(new CreateNetworkInterfaceCommand({
      SubnetId: c.world.otherVpcSubnet.id,
      TagSpecifications: [{
        ResourceType: 'network-interface',
        Tags: [
          { Key: GO_CONTROLLER_TAG.nodeEni, Value: name() },
          { Key: GO_CONTROLLER_TAG.node, Value: n0!.name },
          { Key: GO_CONTROLLER_TAG.subnetId, Value: c.world.otherVpcSubnet.id },
          { Key: GO_CONTROLLER_TAG.managedBy, Value: GO_CONTROLLER_MANAGED_BY_VALUE },
        ],
      }],
    }))).NetworkInterface!;

    // The NodeENI as the Go controller kept it: its finalizer (the same name as ours), its status rows.
    nodeEni = (await c.custom.createClusterCustomObject({
      group: API_GROUP, version: API_VERSION, plural: NODEENI_PLURAL,
      body: {
        apiVersion: `${API_GROUP}/${API_VERSION}`, kind: 'NodeENI',
        metadata: { name: name(), labels: { 'nodeeni-test': c.runId }, finalizers: [FINALIZER] },
        spec: { nodeSelector: { 'nodeeni-test': c.runId, ng: 'go-migrated' }, subnetNames: ['multus-a', 'multus-b'], securityGroupNames: ['multus-sg'], deviceIndex: 2, mtu: 9001 },
      },
    })) as NodeENIObject;
    const lastUpdated = new Date().toISOString();
    const goRow = (eni: NetworkInterface, node: string, instanceID: string, subnet: string, cidr: string) => ({
      nodeID: node, instanceID, eniID: eni.NetworkInterfaceId, attachmentID: eni.Attachment!.AttachmentId, subnetID: subnetId(subnet), subnetCIDR: cidr,
      mtu: 9001, deviceIndex: eni.Attachment!.DeviceIndex, status: 'attached', lastUpdated,
    });
    const cidrOf = (subnet: string) => c.world.subnets.find((s) => s.name === subnet)!.cidr;
    await storeAsGoControllerLeftIt(name(), {
      attachments: [goRow(goA, n0!.name, i0!.id, 'multus-a', cidrOf('multus-a')), goRow(goB, n2!.name, i2!.id, 'multus-b', cidrOf('multus-b'))],
    });
    // Read through our CRD: the rows are there without a phase; the Go controller's own fields are pruned.
    const asRead = await eventually('the Go status visible through the API', async () => {
      const o = await c.getNodeEni('migrated');
      return (o?.status?.attachments?.length ?? 0) === 2 && o;
    });
    for (const row of asRead.status!.attachments!) {
      expect(row).not.toHaveProperty('phase');
      expect(row).not.toHaveProperty('status');
      expect(row).not.toHaveProperty('lastUpdated');
    }

    // Switch-over: install ours (the watcher starts the entities).
    const before = await c.fault.counts(c.account);
    const started = Date.now();
    await c.startWatcher();
    const ready = await eventually('NodeENI Ready with the 2 adopted ENIs', async () => {
      const o = await c.getNodeEni('migrated');
      return isReady(o, 2) && o;
    }, 90_000);
    const tookOverMs = Date.now() - started;
    console.log(`[migration] Go controller's NodeENI taken over: Ready ${tookOverMs} ms after the watcher started`);
    const after = await c.fault.counts(c.account);
    const delta = (action: string) => (after[action] ?? 0) - (before[action] ?? 0);
    expect(delta('CreateNetworkInterface'), 'no ENI created').toBe(0);
    expect(delta('AttachNetworkInterface'), 'nothing attached').toBe(0);
    expect(delta('DeleteNetworkInterface'), 'nothing deleted').toBe(0);
    expect(delta('DetachNetworkInterface'), 'nothing detached').toBe(0);
    expect(delta('CreateTags'), 'one CreateTags per adopted ENI').toBe(2);

    // Exactly the Go controller's two ENIs are ours now, at the device indices it chose.
    const enis = await enisOf(c.ec2, nodeEni.metadata.uid);
    expect(enis.map((e) => e.NetworkInterfaceId).sort()).toEqual([goA.NetworkInterfaceId, goB.NetworkInterfaceId].sort());
    for (const [eni, node, inst, subnet, index] of [[goA, n0!, i0!, 'multus-a', 2], [goB, n2!, i2!, 'multus-b', 3]] as const) {
      const now = enis.find((e) => e.NetworkInterfaceId === eni.NetworkInterfaceId)!;
      expect(now.Attachment).toMatchObject({ InstanceId: inst.id, DeviceIndex: index, Status: 'attached', DeleteOnTermination: true });
      expect(tagOf(now, TAG.managedBy)).toBe(MANAGED_BY_VALUE);
      expect(tagOf(now, TAG.cluster)).toBe(c.runId);
      expect(tagOf(now, TAG.nodeEniName)).toBe(name());
      expect(tagOf(now, TAG.nodeEniUid)).toBe(nodeEni.metadata.uid);
      expect(tagOf(now, TAG.node)).toBe(node.name);
      expect(tagOf(now, TAG.instanceId)).toBe(inst.id);
      expect(tagOf(now, TAG.subnetId)).toBe(subnetId(subnet));
      expect(tagOf(now, TAG.attachmentKey)).toBe(`${nodeEni.metadata.uid}/${node.name}/${inst.id}/${subnetId(subnet)}`);
      expect(Date.parse(tagOf(now, TAG.createdAt) ?? '')).not.toBeNaN();
      expect(tagOf(now, TAG.adoptedFrom)).toBe(GO_CONTROLLER_NAME);
      // Theirs are kept, and so is the description.
      for (const t of eni.TagSet ?? []) expect(tagOf(now, t.Key!), `tag ${t.Key} kept`).toBe(t.Value);
      expect(now.Description).toBe(eni.Description);

      const iface = node.host.snapshot().interfaces.find((i) => i.macAddress === eni.MacAddress);
      expect(iface, `interface with ${eni.MacAddress} on ${node.name}`).toBeDefined();
      expect(iface!.mtu).toBe(9001);
      expect(iface!.up).toBe(true);
      const row = ready.status!.attachments!.find((a) => a.nodeID === node.name)!;
      expect(row).toMatchObject({ eniID: eni.NetworkInterfaceId, phase: 'Ready', deviceIndex: index, interfaceName: iface!.name, mtu: 9001 });
    }
    // Our rows replaced the Go controller's.
    expect(ready.status!.attachments!.every((a) => a.phase !== undefined)).toBe(true);

    // Everything else is left as it was, without our tags.
    for (const [what, eni] of Object.entries(notAdopted)) {
      const now = (await describe1(eni.NetworkInterfaceId!))!;
      expect(now, `${what} still exists`).toBeDefined();
      expect(now.Attachment?.InstanceId, `${what} still attached where it was`).toBe(eni.Attachment!.InstanceId);
      expect(tagOf(now, TAG.nodeEniUid), `${what} not tagged ours`).toBe(what === 'otherCluster' ? 'another-uid' : undefined);
      expect(tagOf(now, TAG.adoptedFrom), `${what} not adopted`).toBeUndefined();
    }
    // ... and the ones that look like this NodeENI's are reported, with why; the other NodeENI's is none of its business.
    const degraded = conditionOf(ready, 'Degraded')!;
    expect(degraded).toMatchObject({ status: 'True', reason: 'ENINotAdopted' });
    expect(degraded.message).toContain(`${notAdopted.wrongInstance.NetworkInterfaceId} (node ${n0!.name}) not adopted: AttachedToOtherInstance`);
    expect(degraded.message).toContain(`${notAdopted.wrongSubnet.NetworkInterfaceId} (node ${n0!.name}) not adopted: SubnetNotInSpec`);
    expect(degraded.message).toContain(`${notAdopted.otherCluster.NetworkInterfaceId} (node ${n2!.name}) not adopted: OwnedByOther`);
    expect(degraded.message).not.toContain(notAdopted.otherNodeEni.NetworkInterfaceId!);
    expect(degraded.message).not.toContain(otherVpc.NetworkInterfaceId!);
    expect(tagOf((await describe1(otherVpc.NetworkInterfaceId!))!, TAG.nodeEniUid), 'the other VPC\'s not tagged ours').toBeUndefined();

    const events = await eventually('adoption Events', async () => {
      const e = await eventsFor(c.core, nodeEni.metadata.uid);
      return e.filter((x) => x.reason === 'ENINotAdopted').length >= 3 && e;
    });
    const adoptedEvents = events.filter((e) => e.reason === 'ENIAdopted');
    expect(adoptedEvents.map((e) => e.message!.split(' ')[0]).sort()).toEqual([goA.NetworkInterfaceId, goB.NetworkInterfaceId].sort());
    expect(events.filter((e) => e.reason === 'ENINotAdopted').map((e) => e.type)).toEqual(['Warning', 'Warning', 'Warning']);
    expect(events.map((e) => e.reason)).toContain('InterfaceConfigured');
    expect(events.map((e) => e.reason)).not.toContain('ENICreated');
  });

  it('deleting the NodeENI tears the adopted ENIs down and leaves the others', async () => {
    await c.deleteNodeEni('migrated');
    await eventually('object gone', async () => (await c.getNodeEni('migrated')) === undefined, 60_000);
    for (const eni of [goA, goB]) expect(await describe1(eni.NetworkInterfaceId!), `${eni.NetworkInterfaceId} deleted`).toBeUndefined();
    await eventually('adopted devices unplugged', async () =>
      !c.nodes[0]!.host.snapshot().interfaces.some((i) => i.macAddress === goA.MacAddress) &&
      !c.nodes[2]!.host.snapshot().interfaces.some((i) => i.macAddress === goB.MacAddress));
    for (const [what, eni] of Object.entries(notAdopted)) {
      const now = await describe1(eni.NetworkInterfaceId!);
      expect(now?.Attachment?.InstanceId, `${what} untouched`).toBe(eni.Attachment!.InstanceId);
    }
  });
});

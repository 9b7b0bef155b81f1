// Spec changes on a live NodeENI converge, on the real backends: security
// groups changed in place, MTU re-applied on the node, subnets added and
// removed, DPDK switched on and off with the device plugin following (the
// plugin lets go of a device before it changes drivers).
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_GROUP, API_VERSION, devicePluginWorkflowId, NODEENI_PLURAL } from '../common/names.js';
import { parseDevicePluginConfig } from '../common/device-plugin.js';
import type { NodeENISpec } from '../common/types.js';
import { devicePluginStateQuery } from '../common/workflow-api.js';
import { createTestCluster, eventually, type TestCluster } from './support/cluster.js';
import { enisOf, eventsFor, isReady } from './support/inspect.js';

let c: TestCluster;
beforeAll(async () => {
  // Node 0 runs an SR-IOV device plugin (a fake kubelet plays it); nodes 1 and 2 do not.
  c = await createTestCluster({ devicePlugins: [{ namespace: 'kube-system', labels: { app: 'sriovdp' } }] });
});
afterAll(async () => {
  await c?.dispose();
});

const onNode = (i: number) => ({ 'nodeeni-test': c.runId, 'kubernetes.io/hostname': c.nodes[i]!.name });

async function patchSpec(name: string, spec: { [K in keyof NodeENISpec]?: NodeENISpec[K] | null }): Promise<number> {
  const o = (await c.custom.patchClusterCustomObject(
    { group: API_GROUP, version: API_VERSION, plural: NODEENI_PLURAL, name: `${c.runId}-${name}`, body: { spec } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  )) as { metadata: { generation: number } };
  return o.metadata.generation;
}

async function readyAt(name: string, generation: number, count: number) {
  return eventually(`${name} Ready at generation ${generation}`, async () => {
    const o = await c.getNodeEni(name);
    return o?.status?.observedGeneration === generation && isReady(o, count) && o;
  }, 90_000);
}

const sgId = (name: string) => c.world.securityGroups.find((g) => g.name === name)!.id;
const subnetId = (name: string) => c.world.subnets.find((s) => s.name === name)!.id;

describe('spec changes on a live NodeENI', () => {
  it('changes security groups in place and re-applies the MTU on the node, keeping the ENI', async () => {
    const obj = await c.createNodeEni('sg-mtu', { nodeSelector: onNode(1), subnetNames: ['multus-a'], securityGroupNames: ['multus-sg'], mtu: 1500 });
    await readyAt('sg-mtu', 1, 1);
    const [before] = await enisOf(c.ec2, obj.metadata.uid);

    const gen = await patchSpec('sg-mtu', { securityGroupNames: ['storage-sg'], mtu: 9001 });
    const ready = await readyAt('sg-mtu', gen, 1);
    const [after] = await enisOf(c.ec2, obj.metadata.uid);
    expect(after!.NetworkInterfaceId).toBe(before!.NetworkInterfaceId);
    expect(after!.Groups?.map((g) => g.GroupId)).toEqual([sgId('storage-sg')]);
    const iface = c.nodes[1]!.host.snapshot().interfaces.find((i) => i.macAddress === after!.MacAddress)!;
    expect(iface.mtu).toBe(9001);
    expect(iface.up).toBe(true);
    expect(ready.status!.attachments![0]!.mtu).toBe(9001);
  });

  it('adds and removes subnets: one ENI per subnet, the others untouched', async () => {
    const obj = await c.createNodeEni('subnets', { nodeSelector: onNode(1), subnetNames: ['storage-a'], securityGroupNames: ['storage-sg'] });
    await readyAt('subnets', 1, 1);
    const [storage] = await enisOf(c.ec2, obj.metadata.uid);

    let gen = await patchSpec('subnets', { subnetNames: ['storage-a', 'multus-a'] });
    await readyAt('subnets', gen, 2);
    const both = await enisOf(c.ec2, obj.metadata.uid);
    expect(both.map((e) => e.SubnetId).sort()).toEqual([subnetId('storage-a'), subnetId('multus-a')].sort());

    gen = await patchSpec('subnets', { subnetNames: ['multus-a'] });
    await readyAt('subnets', gen, 1);
    const left = await eventually('storage ENI deleted', async () => {
      const enis = await enisOf(c.ec2, obj.metadata.uid);
      return enis.length === 1 && enis;
    }, 60_000);
    expect(left[0]!.SubnetId).toBe(subnetId('multus-a'));
    expect(left[0]!.NetworkInterfaceId).not.toBe(storage!.NetworkInterfaceId);
    expect(both.some((e) => e.NetworkInterfaceId === left[0]!.NetworkInterfaceId)).toBe(true);
  });

  it('switches DPDK on and off on the same ENI; the device plugin lets go first, then follows', async () => {
    const node = c.nodes[0]!;
    const resource = 'intel.com/sriov_toggle';
    const hostConfig = async () => parseDevicePluginConfig(await node.host.readFile('/etc/pcidp/config.json'));
    const restarts = async () => (await c.client.workflow.getHandle(devicePluginWorkflowId(node.name)).query(devicePluginStateQuery)).restarts;
    const published = (driver: string) => eventually(`published on ${driver}`, async () => {
      const sel = (await hostConfig())?.resourceList.find((r) => `${r.resourcePrefix}/${r.resourceName}` === resource)?.selectors[0];
      return sel?.drivers?.[0] === driver && sel;
    }, 60_000);

    const obj = await c.createNodeEni('toggle', { nodeSelector: onNode(0), subnetNames: ['multus-a'], securityGroupNames: ['multus-sg'], mtu: 9001, dpdkResourceName: resource });
    const kernel = await readyAt('toggle', 1, 1);
    const row = kernel.status!.attachments![0]!;
    await published('ena');
    const [eni] = await enisOf(c.ec2, obj.metadata.uid);

    let before = await restarts();
    let gen = await patchSpec('toggle', { enableDPDK: true, dpdkDriver: 'vfio-pci' });
    const bound = await eventually('DPDK-bound and published again', async () => {
      const o = await c.getNodeEni('toggle');
      const a = o?.status?.attachments?.[0];
      return o?.status?.observedGeneration === gen && isReady(o, 1) && a?.dpdkBound === true && a.dpdkResourceName === resource && o;
    }, 90_000);
    const sel = await published('vfio-pci');
    expect(sel.pciAddresses).toEqual([row.pciAddress]);
    expect(node.host.snapshot().pciDevices.find((d) => d.address === row.pciAddress)!.driver).toBe('vfio-pci');
    expect(bound.status!.attachments![0]!.eniID).toBe(eni!.NetworkInterfaceId);
    // Withdrawn (one restart), then published on the new driver (another).
    expect(await restarts()).toBe(before + 2);

    before = await restarts();
    // The CRD allows dpdkDriver only with enableDPDK: a merge patch removes it with null.
    gen = await patchSpec('toggle', { enableDPDK: false, dpdkDriver: null });
    await eventually('back on ena, published again', async () => {
      const o = await c.getNodeEni('toggle');
      const a = o?.status?.attachments?.[0];
      return o?.status?.observedGeneration === gen && isReady(o, 1) && a?.dpdkBound === undefined && a?.dpdkResourceName === resource && o;
    }, 90_000);
    await published('ena');
    const iface = node.host.snapshot().interfaces.find((i) => i.macAddress === row.macAddress)!;
    expect(iface.mtu).toBe(9001);
    expect(iface.up).toBe(true);
    expect(await restarts()).toBe(before + 2);
    expect((await enisOf(c.ec2, obj.metadata.uid)).map((e) => e.NetworkInterfaceId)).toEqual([eni!.NetworkInterfaceId]);
    const reasons = (await eventsFor(c.core, obj.metadata.uid)).map((e) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(['DPDKBound', 'DPDKUnbound']));
  });
});

// DPDK binding and the SR-IOV device plugin end to end: NodeENIs on the real
// kube-apiserver, EC2 in moto, Temporal workflows, simulated hosts with the
// vfio model, and a "kubelet" that restarts the plugin pod and publishes
// allocatable from the config on the host.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devicePluginWorkflowId } from '../common/names.js';
import { parseDevicePluginConfig, resourcesOf } from '../common/device-plugin.js';
import { devicePluginStateQuery } from '../common/workflow-api.js';
import { createTestCluster, eventually, type TestCluster } from './support/cluster.js';
import { conditionOf, enisOf, eventsFor, isReady } from './support/inspect.js';

let c: TestCluster;
beforeAll(async () => {
  // node 0: plugin in kube-system (app=sriovdp); node 1: no plugin at all; node 2: plugin in another namespace and label.
  c = await createTestCluster({
    devicePlugins: [
      { namespace: 'kube-system', labels: { app: 'sriovdp', name: 'sriov-device-plugin' } },
      undefined,
      { namespace: 'sriov-network-operator', labels: { app: 'sriov-device-plugin' } },
    ],
  });
});
afterAll(async () => {
  await c?.dispose();
});

const onNode = (i: number) => ({ 'nodeeni-test': c.runId, 'kubernetes.io/hostname': c.nodes[i]!.name });
const sg = { securityGroupNames: ['multus-sg'] };

async function hostConfig(i: number) {
  return parseDevicePluginConfig(await c.nodes[i]!.host.readFile('/etc/pcidp/config.json'));
}
async function allocatable(i: number): Promise<Record<string, string>> {
  return (await c.core.readNode({ name: c.nodes[i]!.name })).status?.allocatable ?? {};
}
async function restarts(i: number): Promise<number> {
  return (await c.client.workflow.getHandle(devicePluginWorkflowId(c.nodes[i]!.name)).query(devicePluginStateQuery)).restarts;
}

describe('SR-IOV device plugin', () => {
  it('publishes a kernel (non-DPDK) ENI, restarts the plugin once, and withdraws it on delete (seed 000)', async () => {
    const obj = await c.createNodeEni('kernel', { nodeSelector: onNode(0), subnetNames: ['multus-a'], ...sg, dpdkResourceName: 'intel.com/sriov_kernel_1' });
    const ready = await eventually('Ready with the resource published', async () => {
      const o = await c.getNodeEni('kernel');
      return isReady(o, 1) && o!.status!.attachments![0]!.dpdkResourceName === 'intel.com/sriov_kernel_1' && o;
    }, 90_000);
    const pci = ready.status!.attachments![0]!.pciAddress!;
    const cfg = await hostConfig(0);
    expect(cfg?.resourceList).toEqual([{ resourcePrefix: 'intel.com', resourceName: 'sriov_kernel_1', selectors: [{ drivers: ['ena'], pciAddresses: [pci] }] }]);
    expect((await allocatable(0))['intel.com/sriov_kernel_1']).toBe('1');
    expect(await restarts(0)).toBe(1);
    // Mirrored into the ConfigMap the upstream plugin DaemonSet can mount (key = node name).
    const cm = await c.core.readNamespacedConfigMap({ namespace: 'kube-system', name: 'nodeeni-sriovdp-config' });
    expect(cm.data?.[c.nodes[0]!.name]).toBe(await c.nodes[0]!.host.readFile('/etc/pcidp/config.json'));

    await c.deleteNodeEni('kernel');
    await eventually('deleted', async () => (await c.getNodeEni('kernel')) === undefined, 90_000);
    const after = await hostConfig(0);
    expect(resourcesOf(after!)).toEqual({});
    expect(after!.resourceList).toHaveLength(1); // the placeholder keeps the plugin alive
    expect((await allocatable(0))['intel.com/sriov_kernel_1']).toBe('0');
    expect(await restarts(0)).toBe(2);
    expect(await enisOf(c.ec2, obj.metadata.uid)).toEqual([]);
  });

  it('two NodeENIs on one node share one config and one restart; deleting one keeps the other', async () => {
    const before = await restarts(0);
    await Promise.all([
      c.createNodeEni('two-a', { nodeSelector: onNode(0), subnetNames: ['multus-a'], ...sg, dpdkResourceName: 'intel.com/sriov_a' }),
      c.createNodeEni('two-b', { nodeSelector: onNode(0), subnetNames: ['storage-a'], securityGroupNames: ['storage-sg'], deviceIndex: 3, dpdkResourceName: 'sriov_b' }),
    ]);
    await eventually('both Ready', async () => isReady(await c.getNodeEni('two-a'), 1) && isReady(await c.getNodeEni('two-b'), 1), 90_000);
    expect(resourcesOf((await hostConfig(0))!)).toEqual({ 'intel.com/sriov_a': 1, 'intel.com/sriov_b': 1 });
    expect(await restarts(0)).toBe(before + 1);
    const alloc = await allocatable(0);
    expect([alloc['intel.com/sriov_a'], alloc['intel.com/sriov_b']]).toEqual(['1', '1']);

    await c.deleteNodeEni('two-a');
    await eventually('two-a deleted', async () => (await c.getNodeEni('two-a')) === undefined, 90_000);
    expect(resourcesOf((await hostConfig(0))!)).toEqual({ 'intel.com/sriov_b': 1 });
    expect((await allocatable(0))['intel.com/sriov_a']).toBe('0');
    expect((await allocatable(0))['intel.com/sriov_b']).toBe('1');
    await c.deleteNodeEni('two-b');
    await eventually('two-b deleted', async () => (await c.getNodeEni('two-b')) === undefined, 90_000);
  });

  it('an agent killed while a change is pending converges after restart: nothing lost or duplicated', async () => {
    await c.stopAgent(0);
    const obj = await c.createNodeEni('restart', { nodeSelector: onNode(0), subnetNames: ['multus-a'], ...sg, dpdkResourceName: 'intel.com/sriov_restart' });
    await new Promise((r) => setTimeout(r, 3000));
    await c.startAgent(0);
    const o = await eventually('Ready after the agent came back', async () => {
      const x = await c.getNodeEni('restart');
      return isReady(x, 1) && x!.status!.attachments![0]!.dpdkResourceName !== undefined && x;
    }, 90_000);
    const cfg = (await hostConfig(0))!;
    expect(cfg.resourceList).toEqual([{ resourcePrefix: 'intel.com', resourceName: 'sriov_restart', selectors: [{ drivers: ['ena'], pciAddresses: [o.status!.attachments![0]!.pciAddress] }] }]);
    expect((await allocatable(0))['intel.com/sriov_restart']).toBe('1');
    expect(await enisOf(c.ec2, obj.metadata.uid)).toHaveLength(1);
    await c.deleteNodeEni('restart');
    await eventually('deleted', async () => (await c.getNodeEni('restart')) === undefined, 90_000);
  });

  it('finds a plugin pod in another namespace and label (node 2)', async () => {
    await c.createNodeEni('ns', { nodeSelector: onNode(2), subnetNames: ['multus-b'], ...sg, dpdkResourceName: 'intel.com/sriov_ns' });
    await eventually('Ready on node 2', async () => isReady(await c.getNodeEni('ns'), 1), 90_000);
    expect((await allocatable(2))['intel.com/sriov_ns']).toBe('1');
    await c.deleteNodeEni('ns');
    await eventually('deleted', async () => (await c.getNodeEni('ns')) === undefined, 90_000);
  });

  it('says once, as a condition, that no plugin pod runs on a node (seed 001)', async () => {
    const obj = await c.createNodeEni('nopod', { nodeSelector: onNode(1), subnetNames: ['multus-a'], ...sg, dpdkResourceName: 'intel.com/sriov_nopod' });
    const o = await eventually('Degraded: DevicePluginNotFound', async () => {
      const x = await c.getNodeEni('nopod');
      return conditionOf(x, 'Degraded')?.reason === 'DevicePluginNotFound' && x;
    }, 90_000);
    expect(conditionOf(o, 'Degraded')!.message).toContain(c.nodes[1]!.name);
    // The config is still written for when a plugin comes; nothing retries in a loop.
    expect(resourcesOf((await hostConfig(1))!)).toEqual({ 'intel.com/sriov_nopod': 1 });
    await c.client.workflow.getHandle(`nodeeni/${obj.metadata.name}/${obj.metadata.uid}`).signal('reconcile');
    await new Promise((r) => setTimeout(r, 3000));
    const view = await c.client.workflow.getHandle(devicePluginWorkflowId(c.nodes[1]!.name)).query(devicePluginStateQuery);
    expect(view.restarts).toBe(0);
    expect(view.lastResult).toMatchObject({ podFound: false });
    await c.deleteNodeEni('nopod');
    await eventually('deleted', async () => (await c.getNodeEni('nopod')) === undefined, 90_000);
  });
});

describe('DPDK', () => {
  it('binds to vfio-pci, verified, records it in status, publishes it; teardown gives the device back to ena by MAC', async () => {
    const node = c.nodes[0]!;
    const obj = await c.createNodeEni('dpdk', { nodeSelector: onNode(0), subnetNames: ['multus-a'], ...sg, enableDPDK: true, dpdkDriver: 'vfio-pci', dpdkResourceName: 'intel.com/sriov_dpdk_1' });
    const ready = await eventually('Ready and DPDK-bound', async () => {
      const o = await c.getNodeEni('dpdk');
      return isReady(o, 1) && o!.status!.attachments![0]!.dpdkBound === true && o;
    }, 90_000);
    const row = ready.status!.attachments![0]!;
    expect(row).toMatchObject({ dpdkDriver: 'vfio-pci', dpdkResourceName: 'intel.com/sriov_dpdk_1' });
    const dev = node.host.snapshot().pciDevices.find((d) => d.address === row.dpdkPCIAddress)!;
    expect(dev.driver).toBe('vfio-pci');
    expect(dev.interfaceName).toBeNull();
    expect(node.host.snapshot().interfaces.some((i) => i.macAddress === row.macAddress)).toBe(false);
    expect((await hostConfig(0))!.resourceList).toEqual([{ resourcePrefix: 'intel.com', resourceName: 'sriov_dpdk_1', selectors: [{ drivers: ['vfio-pci'], pciAddresses: [row.dpdkPCIAddress] }] }]);

    await c.deleteNodeEni('dpdk');
    await eventually('deleted', async () => (await c.getNodeEni('dpdk')) === undefined, 90_000);
    const unbound = await eventually('DPDKUnbound event', async () => (await eventsFor(c.core, obj.metadata.uid)).find((e) => e.reason === 'DPDKUnbound'));
    expect(unbound.message).toContain(`back on ena`);
    expect(unbound.message).toContain(row.macAddress!);
    expect(await enisOf(c.ec2, obj.metadata.uid)).toEqual([]);
  });

  it('a bind failing halfway is rolled back and verified; the status says why', async () => {
    const node = c.nodes[2]!;
    node.host.failNextWrite('/sys/bus/pci/drivers_probe', 'EIO');
    const obj = await c.createNodeEni('badbind', { nodeSelector: onNode(2), subnetNames: ['multus-b'], ...sg, enableDPDK: true, dpdkResourceName: 'intel.com/sriov_bad' });
    const o = await eventually('Degraded DpdkBindFailed', async () => {
      const x = await c.getNodeEni('badbind');
      return conditionOf(x, 'Degraded')?.reason === 'DpdkBindFailed' && x;
    }, 90_000);
    expect(conditionOf(o, 'Degraded')!.message).toMatch(/drivers_probe|probe/);
    expect(conditionOf(o, 'Degraded')!.message).toMatch(/rolled back|rollback/i);
    // Compensation detached and deleted the first ENI; the retry after the back-off (the write failed once) binds a new one.
    const retried = await eventually('Ready after the retry', async () => {
      const x = await c.getNodeEni('badbind');
      return isReady(x, 1) && x?.status?.attachments?.[0]?.dpdkBound === true && x;
    }, 90_000);
    const enis = await enisOf(c.ec2, obj.metadata.uid);
    expect(enis.map((e) => e.NetworkInterfaceId)).toEqual([retried.status!.attachments![0]!.eniID]);
    expect((await eventsFor(c.core, obj.metadata.uid)).filter((e) => e.reason === 'ENICreated')).toHaveLength(2);
    expect(node.host.snapshot().pciDevices.filter((d) => d.driver === 'vfio-pci').map((d) => d.address)).toEqual([retried.status!.attachments![0]!.dpdkPCIAddress]);
    await c.deleteNodeEni('badbind');
    await eventually('deleted', async () => (await c.getNodeEni('badbind')) === undefined, 90_000);
  });
});

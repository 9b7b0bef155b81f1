// Drift repair end to end: a node "reboots" (its simulated host loses MTUs,
// link state and DPDK bindings; the ENIs stay attached in EC2), the NodeENI goes
// not-Ready saying why, and the entity re-applies the node steps: Ready again
// with the same ENI.
import { Watch } from '@kubernetes/client-node';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_GROUP, API_VERSION, entityWorkflowId, NODEENI_PLURAL } from '../common/names.js';
import type { NodeENIObject } from '../common/types.js';
import { stateQuery } from '../common/workflow-api.js';
import { REPAIRS_KEPT_PATCH } from '../workflows/nodeeni-entity.js';
import { dataConverter } from '../workers/payload-codec.js';
import { createTestCluster, eventually, workflowBundle, type TestCluster } from './support/cluster.js';
import { conditionOf, enisOf, eventsFor, isReady, patchesIn } from './support/inspect.js';

let c: TestCluster;
beforeAll(async () => {
  // A short resync: the nodes are asked about drift on every full pass.
  c = await createTestCluster({
    instances: 2,
    entityOptions: { resyncSeconds: 3, childCheckSeconds: 1 },
    devicePlugins: [undefined, { namespace: 'kube-system', labels: { app: 'sriovdp' } }],
  });
});
afterAll(async () => {
  await c?.dispose();
});

const onNode = (i: number) => ({ nodeSelector: { 'nodeeni-test': c.runId, 'kubernetes.io/hostname': c.nodes[i]!.name } });

/**
 * Waits for the Events the entity records about the repair. They are written
 * after the repairing provisioning has finished, so they may trail the host
 * state and the Ready condition by a moment.
 */
async function repairedEvent(core: TestCluster['core'], uid: string, reasons: string[]): Promise<void> {
  const seen = await eventually(`Events ${reasons.join(', ')}`, async () => {
    const have = (await eventsFor(core, uid)).map((e) => e.reason);
    return reasons.every((r) => have.includes(r)) && have;
  }, 15_000);
  for (const r of reasons) expect(seen).toContain(r);
}

/** A NodeENI with MTU 9001 on node 0, Ready; its ENI and that ENI's interface on the simulated host. */
async function readyAtMtu9001(name: string) {
  const obj = await c.createNodeEni(name, { ...onNode(0), subnetNames: ['multus-a', 'multus-b'], securityGroupNames: ['multus-sg'], mtu: 9001 });
  await eventually('Ready', async () => isReady(await c.getNodeEni(name), 1), 60_000);
  const [eni] = await enisOf(c.ec2, obj.metadata.uid);
  const host = c.nodes[0]!.host;
  const iface = () => host.snapshot().interfaces.find((i) => i.macAddress === eni!.MacAddress);
  return { obj, eni: eni!, host, iface };
}

/** What the entity believes and which Events it recorded: for a failure's message. */
async function entityStory(o: Awaited<ReturnType<TestCluster['getNodeEni']>>): Promise<string> {
  if (!o) return 'no NodeENI';
  const reasons = (await eventsFor(c.core, o.metadata.uid)).map((e) => e.reason);
  try {
    const view = await c.client.workflow.getHandle(entityWorkflowId(o.metadata.name, o.metadata.uid)).query(stateQuery);
    const { drift, driftRound, failures } = view.state;
    return `events ${JSON.stringify(reasons)}; entity: drift ${JSON.stringify(drift)}, round ${JSON.stringify(driftRound)}, failures ${JSON.stringify(failures)}, in flight ${JSON.stringify(view.inFlight)}`;
  } catch (err) {
    return `events ${JSON.stringify(reasons)}; entity not queried: ${String(err)}`;
  }
}

/**
 * Watches the NodeENI until it is Ready again after having been not Ready for drift; returns when
 * and what it said. A watch, not polling: a repair can take under 100 ms, and so can its not-Ready.
 */
async function throughDrift(name: string): Promise<{ notReadyMessage: string; readyAfterMs: number }> {
  const started = Date.now();
  const current = await c.getNodeEni(name);
  if (!current) throw new Error(`NodeENI ${name} not found`);
  let last: NodeENIObject = current;
  let notReadyMessage: string | undefined;
  let settle!: (v: { notReadyMessage: string; readyAfterMs: number }) => void;
  let fail!: (err: unknown) => void;
  const roundTrip = new Promise<{ notReadyMessage: string; readyAfterMs: number }>((resolve, reject) => {
    settle = resolve;
    fail = reject;
  });
  const see = (o: NodeENIObject) => {
    last = o;
    const row = o.status?.attachments?.[0];
    if (conditionOf(o, 'Ready')?.status === 'False' && !notReadyMessage) notReadyMessage = `${conditionOf(o, 'Degraded')?.message ?? ''} | ${row?.phase}: ${row?.message ?? ''}`;
    if (notReadyMessage && isReady(o, 1)) settle({ notReadyMessage, readyAfterMs: Date.now() - started });
  };
  see(current);
  // Every update after the version just read.
  const watching = new Watch(c.kc).watch(
    `/apis/${API_GROUP}/${API_VERSION}/${NODEENI_PLURAL}`,
    { fieldSelector: `metadata.name=${current.metadata.name}`, resourceVersion: current.metadata.resourceVersion },
    (_phase: string, o: NodeENIObject) => see(o),
    (err: unknown) => {
      if (err && !(err instanceof Error && err.name === 'AbortError')) fail(err);
    },
  );
  const timer = setTimeout(() => {
    void entityStory(last).then((story) => fail(new Error(`no drift round trip within 60 s (last: ${JSON.stringify(last.status?.conditions)}; ${story})`)));
  }, 60_000);
  try {
    return await roundTrip;
  } finally {
    clearTimeout(timer);
    (await watching).abort();
  }
}

describe('drift after a node reboot', () => {
  it('a plain ENI back at MTU 1500 and down is re-applied: not Ready, then Ready with the same ENI', async () => {
    const { obj, eni, host, iface } = await readyAtMtu9001('plain');

    host.reboot();
    expect(iface()).toMatchObject({ mtu: 1500, up: false });
    const { notReadyMessage, readyAfterMs } = await throughDrift('plain');
    console.log(`[drift] plain ENI: Ready again ${readyAfterMs} ms after the reboot; said: ${notReadyMessage}`);
    expect(notReadyMessage).toMatch(/MTU 1500 \(want 9001\)|down|Configuring/);
    expect(iface()).toMatchObject({ mtu: 9001, up: true });
    expect((await enisOf(c.ec2, obj.metadata.uid)).map((e) => e.NetworkInterfaceId)).toEqual([eni.NetworkInterfaceId]);
    await repairedEvent(c.core, obj.metadata.uid, ['DriftDetected', 'DriftRepaired']);

    await c.deleteNodeEni('plain');
    await eventually('gone', async () => (await c.getNodeEni('plain')) === undefined, 60_000);
  });

  it('a repair that has to retry still ends with DriftRepaired (the entity keeps the drift while the repair runs)', async () => {
    const { obj, host, iface } = await readyAtMtu9001('retried');

    host.reboot();
    // The repair's MTU write fails twice (retried by the activity's policy): its child runs for seconds, across passes.
    for (let i = 0; i < 2; i++) host.failNextWrite(`/sys/class/net/${iface()!.name}/mtu`, 'EBUSY');
    const { readyAfterMs } = await throughDrift('retried');
    console.log(`[drift] repair retried twice: Ready again ${readyAfterMs} ms after the reboot`);
    // 9001 only after both injected failures were met.
    expect(iface()).toMatchObject({ mtu: 9001, up: true });
    await repairedEvent(c.core, obj.metadata.uid, ['DriftDetected', 'DriftRepaired']);

    await c.deleteNodeEni('retried');
    await eventually('gone', async () => (await c.getNodeEni('retried')) === undefined, 60_000);
  });

  it('a repair that fails for good is tried again only after its back-off', async () => {
    const { obj, host, iface } = await readyAtMtu9001('refused');

    host.reboot();
    // EINVAL: the MTU is refused, not retried by the activity; each of three repairs fails as a whole.
    for (let i = 0; i < 3; i++) host.failNextWrite(`/sys/class/net/${iface()!.name}/mtu`, 'EINVAL');
    await throughDrift('refused');
    expect(iface()).toMatchObject({ mtu: 9001, up: true });

    // The last repair reports before it completes (Ready may come first): wait until every run has closed.
    const runs = await eventually('the repairs closed', async () => {
      const out: { start: number; close: number; status: string }[] = [];
      for await (const wf of c.client.workflow.list({ query: `NodeENI = '${obj.metadata.name}' AND WorkflowType = 'provisionAttachment'` })) {
        out.push({ start: wf.startTime.getTime(), close: wf.closeTime?.getTime() ?? Number.NaN, status: wf.status.name });
      }
      return out.every((r) => r.status !== 'RUNNING') && out.sort((a, b) => a.start - b.start);
    }, 15_000);
    const repairs = runs.slice(1);
    console.log(`[drift] refused repairs: ${repairs.map((r, i) => `${r.status}${i > 0 ? ` after ${r.start - repairs[i - 1]!.close} ms` : ''}`).join(', ')}`);
    expect(repairs.map((r) => r.status)).toEqual(['FAILED', 'FAILED', 'FAILED', 'COMPLETED']);
    // failureBackoffSeconds 2 here, doubling: a repair starts no sooner than 2 s, 4 s, 8 s after the failure before it.
    for (const [i, backoff] of [2_000, 4_000, 8_000].entries()) {
      expect(repairs[i + 1]!.start - repairs[i]!.close).toBeGreaterThanOrEqual(backoff - 250);
    }
    await repairedEvent(c.core, obj.metadata.uid, ['DriftRepaired']);
    // The entity's history, with the patch recorded where it kept the drift and waited, replays.
    const handle = c.client.workflow.getHandle(entityWorkflowId(obj.metadata.name, obj.metadata.uid));
    const history = await handle.fetchHistory();
    expect(patchesIn(history)).toContain(REPAIRS_KEPT_PATCH);
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle(), dataConverter }, history, handle.workflowId);

    await c.deleteNodeEni('refused');
    await eventually('gone', async () => (await c.getNodeEni('refused')) === undefined, 60_000);
  });

  it('a DPDK device back on its kernel driver is bound again', async () => {
    const obj = await c.createNodeEni('dpdk', { ...onNode(1), subnetNames: ['multus-a', 'multus-b'], securityGroupNames: ['multus-sg'], enableDPDK: true, dpdkResourceName: 'intel.com/drift_dpdk' });
    const ready = await eventually('Ready and bound', async () => {
      const o = await c.getNodeEni('dpdk');
      return isReady(o, 1) && o?.status?.attachments?.[0]?.dpdkBound && o;
    }, 60_000);
    const pci = ready.status!.attachments![0]!.dpdkPCIAddress!;
    const host = c.nodes[1]!.host;
    const device = () => host.snapshot().pciDevices.find((d) => d.address === pci);
    expect(device()?.driver).toBe('vfio-pci');

    host.reboot();
    expect(device()?.driver).not.toBe('vfio-pci');
    const { notReadyMessage, readyAfterMs } = await throughDrift('dpdk');
    console.log(`[drift] DPDK ENI: bound again ${readyAfterMs} ms after the reboot; said: ${notReadyMessage}`);
    expect(device()?.driver).toBe('vfio-pci');
    expect((await enisOf(c.ec2, obj.metadata.uid)).map((e) => e.NetworkInterfaceId)).toEqual([ready.status!.attachments![0]!.eniID]);

    await c.deleteNodeEni('dpdk');
    await eventually('gone', async () => (await c.getNodeEni('dpdk')) === undefined, 60_000);
  });
});

describe('drift after a reboot the kubelet reports', () => {
  let k: TestCluster;
  beforeAll(async () => {
    // A resync far beyond the test: only the watcher's signal can start the check.
    k = await createTestCluster({ instances: 1, entityOptions: { resyncSeconds: 3600, childCheckSeconds: 1 } });
  });
  afterAll(async () => {
    await k?.dispose();
  });

  it('a new bootID on the Node makes the entity check the node at once', async () => {
    const node = k.nodes[0]!;
    const obj = await k.createNodeEni('boot', { nodeSelector: { 'nodeeni-test': k.runId }, subnetNames: ['multus-a', 'multus-b'], securityGroupNames: ['multus-sg'], mtu: 9001 });
    await eventually('Ready', async () => isReady(await k.getNodeEni('boot'), 1), 60_000);
    const [eni] = await enisOf(k.ec2, obj.metadata.uid);

    node.host.reboot();
    const rebootedAt = Date.now();
    // What the kubelet does when it starts again after the reboot.
    const current = await k.core.readNodeStatus({ name: node.name });
    current.status = { ...current.status, nodeInfo: { ...(current.status?.nodeInfo ?? {}), bootID: `boot-${rebootedAt}` } as never };
    await k.core.replaceNodeStatus({ name: node.name, body: current });

    await eventually('re-applied', async () => {
      const iface = node.host.snapshot().interfaces.find((i) => i.macAddress === eni!.MacAddress);
      return iface?.mtu === 9001 && iface.up && isReady(await k.getNodeEni('boot'), 1);
    }, 30_000);
    console.log(`[drift] reboot reported by bootID: re-applied ${Date.now() - rebootedAt} ms after the reboot (resync 3600 s)`);
    await repairedEvent(k.core, obj.metadata.uid, ['DriftRepaired']);

    await k.deleteNodeEni('boot');
    await eventually('gone', async () => (await k.getNodeEni('boot')) === undefined, 60_000);
  });

  it('a node agent that starts again has its node verified at once (no reboot reported, resync an hour away)', async () => {
    const node = k.nodes[0]!;
    const obj = await k.createNodeEni('agent', { nodeSelector: { 'nodeeni-test': k.runId }, subnetNames: ['multus-a', 'multus-b'], securityGroupNames: ['multus-sg'], mtu: 9001 });
    await eventually('Ready', async () => isReady(await k.getNodeEni('agent'), 1), 60_000);
    const [eni] = await enisOf(k.ec2, obj.metadata.uid);
    const iface = () => node.host.snapshot().interfaces.find((i) => i.macAddress === eni!.MacAddress);

    // While the agent is away its interface is reset (by hand, another tool, a reboot nobody reported).
    await k.stopAgent(0);
    node.host.reboot();
    expect(iface()).toMatchObject({ mtu: 1500, up: false });
    const startedAt = Date.now();
    await k.startAgent(0);
    await eventually('re-applied', async () => iface()?.mtu === 9001 && iface()!.up && isReady(await k.getNodeEni('agent'), 1), 30_000);
    console.log(`[drift] node agent start: re-applied ${Date.now() - startedAt} ms after the agent started (resync 3600 s)`);
    await repairedEvent(k.core, obj.metadata.uid, ['DriftRepaired']);
    expect((await enisOf(k.ec2, obj.metadata.uid)).map((e) => e.NetworkInterfaceId)).toEqual([eni!.NetworkInterfaceId]);

    await k.deleteNodeEni('agent');
    await eventually('gone', async () => (await k.getNodeEni('agent')) === undefined, 60_000);
  });
});


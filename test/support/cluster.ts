// A complete system for one test file on the shared real backends: a seeded
// EC2 world in its own moto account, Node objects, a simulated host per node,
// the control worker, one node agent per node, and the watcher.
import { rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Runtime, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { DataConverter } from '@temporalio/common';
import { API_GROUP, API_VERSION, NODEENI_PLURAL } from '../../common/names.js';
import type { NodeENIObject, NodeENISpec } from '../../common/types.js';
import { installRuntime, startWorkers, type RunningWorkers, type WorkerSpec } from '../../workers/bootstrap.js';
import { controlWorkerSpecs } from '../../workers/control-worker.js';
import { nodeAgentWorkerSpec } from '../../workers/node-agent-worker.js';
import { announceNodeAgentStart } from '../../workers/node-agent-announce.js';
import { makeJsonLogger } from '../../workers/logger.js';
import { WORKFLOWS_DIR } from '../../workers/workflow-source.js';
import { startWatcher, type Watcher } from '../../watcher/watcher.js';
import type { DevicePluginOptions, EntityOptions, ResctrlOptions } from '../../common/workflow-api.js';
import type { SimHostOptions } from '../../host/sim/sim-host.js';
import { makeEc2Client, randomAccountId } from '../../sandbox/ec2/client.js';
import { FaultProxyClient } from '../../sandbox/ec2/fault-client.js';
import { seedWorld, type SeedOptions, type World } from '../../sandbox/ec2/seed.js';
import { registerNodes } from '../../sandbox/kube-nodes.js';
import { startFakeKubelet } from '../../sandbox/fake-kubelet.js';
import { createSimulatedNode, type SimulatedNode } from '../../sandbox/simulated-node.js';
import { startSimulatedFleet, type SimulatedFleet } from '../../sandbox/sim-instance.js';
import { getBackends, kubeConfigFor, type ProvidedBackends } from './backends.js';
import { installDeployment, serviceAccountKubeConfig, serviceAccountKubeConfigFile, type Component } from '../../sandbox/kube-install.js';
import { PROJECT_ROOT } from '../../sandbox/backends/tools.js';
import path from 'node:path';
import { dataConverter } from '../../workers/payload-codec.js';

/** Production semantics with short clocks: failures are retried within a test's horizon. */
export const TEST_ENTITY_OPTIONS: Partial<EntityOptions> = {
  resyncSeconds: 20,
  detachTimeoutMs: 3000,
  nodeAgentStartTimeoutMs: 8000,
  failureBackoffSeconds: 2,
  provisionDeadlineSeconds: 120,
};

/** EC2's transitional states, as real EC2 shows them (attaching, detaching), on in every end-to-end test. */
export const TEST_EC2_TRANSITIONS = { attachDelayMs: 600, detachDelayMs: 900 };

export const TEST_DEVICE_PLUGIN_OPTIONS: DevicePluginOptions = {
  namespaces: ['kube-system', 'sriov-network-operator', 'default'],
  labelSelectors: ['app=sriovdp', 'name=sriov-device-plugin', 'app=sriov-device-plugin'],
  debounceMs: 500,
  maxDelayMs: 5000,
  nodeAgentStartTimeoutMs: 8000,
  restartTimeoutMs: 30_000,
  maxHistoryLength: 2000,
  // The mirror ConfigMap the shipped component creates (and grants get/update on, nothing more).
  configMap: { namespace: 'kube-system', name: 'nodeeni-sriovdp-config' },
};

/** The tests' install: the shipped deploy/ with both components, device-plugin Roles in the tests' plugin namespaces. */
export const TEST_INSTALL_OVERLAY = path.join(PROJECT_ROOT, 'test', 'deploy');

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;
/** Bundle the workflows once per test file (bundling per worker is slow). */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath: WORKFLOWS_DIR, logger: makeJsonLogger('WARN') });
  return bundle;
}

export interface TestNode extends SimulatedNode {
  name: string;
}

export interface TestCluster {
  runId: string;
  account: string;
  taskQueue: string;
  backends: ProvidedBackends;
  /** A kubeconfig file with a token of a shipped ServiceAccount, for components started as processes. */
  kubeconfigFileFor(component: Component): Promise<string>;
  ec2: EC2Client;
  world: World;
  kc: KubeConfig;
  core: CoreV1Api;
  custom: CustomObjectsApi;
  client: Client;
  connection: NativeConnection;
  fault: FaultProxyClient;
  nodes: TestNode[];
  /** The fleet poller, when the cluster simulates its instances with one (`simulation.fleet`). */
  fleet?: SimulatedFleet;
  /** The label every node of this cluster has; NodeENIs of this test select with it. */
  selectorLabel: string;
  startControlWorker(): Promise<void>;
  stopControlWorker(): Promise<void>;
  startWatcher(): Promise<void>;
  stopWatcher(): Promise<void>;
  createNodeEni(name: string, spec: Omit<NodeENISpec, 'nodeSelector'> & { nodeSelector?: Record<string, string> }): Promise<NodeENIObject>;
  getNodeEni(name: string): Promise<NodeENIObject | undefined>;
  deleteNodeEni(name: string): Promise<void>;
  labelNode(node: string, labels: Record<string, string | null>): Promise<void>;
  /** Stops node i's agent worker (as a killed agent would), and starts a fresh one on the same host. */
  stopAgent(i: number): Promise<void>;
  startAgent(i: number): Promise<void>;
  dispose(): Promise<void>;
}

export interface DevicePluginPod {
  namespace: string;
  labels: Record<string, string>;
}

export interface ClusterOptions {
  /** moto account; a fresh random one by default. */
  account?: string;
  /** The servers to use; the test run's shared ones by default (benchmarks pass their own). */
  backends?: ProvidedBackends;
  /** EC2 instances, one node each (3 by default: two in zone a, one in zone b). */
  instances?: number;
  /** Watch pods and keep per-pod resctrl groups, with these options; `host` configures every simulated node's resctrl/cgroups. */
  resctrl?: { options: ResctrlOptions; host?: Pick<SimHostOptions, 'resctrl' | 'cgroupDriver'> };
  /** Per node: where its SR-IOV device plugin pod runs (a fake kubelet serves it), or undefined for none. */
  devicePlugins?: Array<DevicePluginPod | undefined>;
  entityOptions?: Partial<EntityOptions>;
  /** The control worker's data converter instead of the system's (e.g. a lower compression threshold). */
  controlDataConverter?: DataConverter;
  controlWorker?: boolean;
  watcher?: boolean;
  /**
   * Seeding beyond the instance count (subnet sizes, more secondary subnets,
   * batched launches), and `direct`: seed straight in moto rather than through
   * the fault proxy, so no fault, count or throttle applies to it.
   */
  seed?: Omit<SeedOptions, 'instances'> & { direct?: boolean };
  /**
   * How the simulated instances follow EC2: each one polls moto for its own
   * ENIs (default, every 200 ms), or with `fleet` one fleet updates all hosts:
   * it reads an instance as soon as the fault proxy reports its attachments
   * changed, and sweeps every ENI as a backstop (`pollMs`, default 10 s): the
   * benchmark's way to simulate many nodes. `secondaryOnly`: the fleet's
   * sweeps list only the ENIs in the world's other subnets than the nodes'
   * own, leaving out the primaries (which never change) and half of moto's work.
   */
  simulation?: { fleet?: boolean; pollMs?: number; secondaryOnly?: boolean };
  /**
   * The in-process node agents: options merged into each one's Worker (a
   * benchmark's small pollers and slots), and nodes to start no agent for
   * (served by a process of their own; startAgent(i) still starts one).
   */
  agents?: { worker?: Partial<WorkerSpec>; skip?: (i: number) => boolean };
}

export async function createTestCluster(opts: ClusterOptions = {}): Promise<TestCluster> {
  installRuntime({ logLevel: 'WARN' });
  const backends = opts.backends ?? getBackends();
  const runId = `t${randomBytes(3).toString('hex')}`;
  const account = opts.account ?? randomAccountId();
  const taskQueue = `control-${runId}`;
  const ec2 = makeEc2Client({ endpoint: backends.ec2Endpoint, account, maxAttempts: 3 });
  const controlEc2 = makeEc2Client({ endpoint: backends.ec2Endpoint, account, maxAttempts: 1 });
  const platformEc2 = makeEc2Client({ endpoint: backends.motoEndpoint, account, maxAttempts: 3 });
  const { direct, ...seedOptions } = opts.seed ?? {};
  const world = await seedWorld(direct ? platformEc2 : ec2, { ...seedOptions, instances: opts.instances ?? 3 });
  // The test itself acts as the cluster admin; the components run as the ServiceAccounts deploy/ ships.
  const kc = kubeConfigFor(backends);
  await installDeployment(kc, TEST_INSTALL_OVERLAY);
  const controlKc = await serviceAccountKubeConfig(kc, 'nodeeni-control-worker');
  const watcherKc = await serviceAccountKubeConfig(kc, 'nodeeni-watcher');
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const selectorLabel = `${runId}`;
  const nodes: TestNode[] = [];
  // The simulated instances watch moto directly: their polling is the platform's, not the system's EC2 traffic.
  const nodeSubnets = new Set(world.instances.map((i) => i.subnetId));
  const secondarySubnets = world.subnets.filter((s) => !nodeSubnets.has(s.id)).map((s) => s.id);
  const fault = new FaultProxyClient(backends.ec2Endpoint);
  const fleet = opts.simulation?.fleet
    ? startSimulatedFleet({
        ec2: platformEc2,
        pollMs: opts.simulation.pollMs,
        // Devices appear as the proxy attaches, as on a Nitro host; the sweeps are the backstop.
        changes: (after, waitMs, signal) => fault.attachmentChanges(after, waitMs, signal),
        filters: opts.simulation.secondaryOnly ? [{ Name: 'subnet-id', Values: secondarySubnets }] : undefined,
      })
    : undefined;
  for (const [i, inst] of world.instances.entries()) {
    const name = `${runId}-node-${i}`;
    const follow = fleet ? { fleet } : { ec2: platformEc2, pollMs: opts.simulation?.pollMs ?? 200 };
    const sim = await createSimulatedNode({ ...follow, instanceId: inst.id, primaryMac: inst.primaryMac, host: opts.resctrl?.host });
    nodes.push({ ...sim, name });
  }
  await registerNodes(kc, world.instances.map((inst, i) => ({ name: nodes[i]!.name, instanceId: inst.id, az: inst.az, labels: { 'nodeeni-test': runId } })));

  const connection = await NativeConnection.connect({ address: backends.temporalAddress });
  const clientConnection = await Connection.connect({ address: backends.temporalAddress });
  const client = new Client({ connection: clientConnection, namespace: backends.temporalNamespace, dataConverter });
  await fault.setFidelity({ enabled: true, ...TEST_EC2_TRANSITIONS });
  const entityOptions = { ...TEST_ENTITY_OPTIONS, clusterName: runId, ...opts.entityOptions };

  const agents: Array<RunningWorkers | undefined> = [];
  // Restarts announce themselves as the agent's process does; the first starts have no entity of this cluster to tell.
  let announce = false;
  const startAgent = async (i: number) => {
    const n = nodes[i]!;
    if (agents[i]) return;
    agents[i] = await startWorkers(connection, backends.temporalNamespace, [{ ...nodeAgentWorkerSpec({ host: n.host, nodeName: n.name }), ...opts.agents?.worker }]);
    // As the agent's process does (workers/node-agent-main.ts).
    if (announce) await announceNodeAgentStart({ connection, namespace: backends.temporalNamespace, nodeName: n.name, logger: Runtime.instance().logger, retryDelayMs: 200 });
  };
  const stopAgent = async (i: number) => {
    const a = agents[i];
    agents[i] = undefined;
    if (a) for (const w of a.workers) w.shutdown();
    await a?.done;
  };
  for (let i = 0; i < nodes.length; i++) if (!opts.agents?.skip?.(i)) await startAgent(i);
  announce = true;
  const kubelets = await Promise.all(
    (opts.devicePlugins ?? []).map((pod, i) =>
      pod ? startFakeKubelet({ kc, nodeName: nodes[i]!.name, host: nodes[i]!.host, namespace: pod.namespace, labels: pod.labels, pollMs: 200 }) : undefined,
    ),
  );
  let control: RunningWorkers | undefined;
  let watcher: Watcher | undefined;

  // The components' kubeconfigs (ServiceAccount tokens) for this run; removed with the cluster.
  const kubeconfigDir = path.join(PROJECT_ROOT, '.tmp', `kube-${runId}`);
  const cluster: TestCluster = {
    runId, account, taskQueue, backends, ec2, world, kc, core, custom, client, connection, fault, nodes, fleet, selectorLabel,
    kubeconfigFileFor: (component) => serviceAccountKubeConfigFile(kc, component, kubeconfigDir),
    async startControlWorker() {
      if (control) return;
      control = await startWorkers(connection, backends.temporalNamespace,
        controlWorkerSpecs({
          // One attempt per call, as in production: Temporal is the one retry layer.
          taskQueue, ec2: controlEc2, kc: controlKc, workflows: { workflowBundle: await workflowBundle() }, ec2PollMs: 200,
          devicePlugin: TEST_DEVICE_PLUGIN_OPTIONS,
          dataConverter: opts.controlDataConverter,
        }),
      );
    },
    async stopControlWorker() {
      const c = control;
      control = undefined;
      if (c) for (const w of c.workers) w.shutdown();
      await c?.done;
    },
    async startWatcher() {
      watcher ??= await startWatcher({
        kc: watcherKc, client, taskQueue, entityOptions, nodeEniLabelSelector: `nodeeni-test=${runId}`, logger: makeJsonLogger('WARN'), resctrl: opts.resctrl?.options,
      });
    },
    async stopWatcher() {
      await watcher?.stop();
      watcher = undefined;
    },
    async createNodeEni(name, spec) {
      const body = {
        apiVersion: `${API_GROUP}/${API_VERSION}`,
        kind: 'NodeENI',
        metadata: { name: `${runId}-${name}`, labels: { 'nodeeni-test': runId } },
        spec: { nodeSelector: { 'nodeeni-test': runId }, ...spec },
      };
      return (await custom.createClusterCustomObject({ group: API_GROUP, version: API_VERSION, plural: NODEENI_PLURAL, body })) as NodeENIObject;
    },
    async getNodeEni(name) {
      try {
        return (await custom.getClusterCustomObject({ group: API_GROUP, version: API_VERSION, plural: NODEENI_PLURAL, name: `${runId}-${name}` })) as NodeENIObject;
      } catch (err) {
        if ((err as { code?: number }).code === 404) return undefined;
        throw err;
      }
    },
    async deleteNodeEni(name) {
      await custom.deleteClusterCustomObject({ group: API_GROUP, version: API_VERSION, plural: NODEENI_PLURAL, name: `${runId}-${name}` });
    },
    async labelNode(node, labels) {
      const current = await core.readNode({ name: node });
      const next = { ...current.metadata!.labels };
      for (const [k, v] of Object.entries(labels)) {
        if (v === null) delete next[k];
        else next[k] = v;
      }
      current.metadata!.labels = next;
      await core.replaceNode({ name: node, body: current });
    },
    startAgent,
    stopAgent,
    async dispose() {
      await cluster.stopWatcher();
      await cluster.stopControlWorker();
      await Promise.all(nodes.map((_, i) => stopAgent(i)));
      for (const k of kubelets) await k?.stop();
      for (const n of nodes) await n.stop();
      await fleet?.stop();
      await connection.close();
      await clientConnection.close();
      await rm(kubeconfigDir, { recursive: true, force: true });
    },
  };
  if (opts.controlWorker !== false) await cluster.startControlWorker();
  if (opts.watcher !== false) await cluster.startWatcher();
  return cluster;
}

/** Polls until `probe` returns a value that is not undefined/false. */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

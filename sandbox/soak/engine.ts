// The chaos soak: the whole system as separate processes on its own real
// backends (sandbox/soak/stack.ts), many NodeENI lifecycles at once, and a
// chaos driver that kills and restarts components, restarts the Temporal dev
// server on its database file, and injects EC2 faults through the proxy, on
// top of EC2's own request-rate limits (the proxy's `aws` throttle preset) —
// while invariants are checked continuously and at the end.
//
// Lifecycle (each on its own NodeENI and its own nodes, leased from a pool):
//   create → Ready; relabel one node out and back in; change security groups
//   and MTU; maybe terminate an instance (DeleteOnTermination per spec), delete
//   its Node (and its pods, as the pod GC would), maybe bring up a replacement;
//   delete the NodeENI → gone, no ENI left.
// A resident NodeENI selects every pool node for the whole soak: it lives
// through all the chaos and must converge once faults stop, then be deleted.
//
// Invariants (violations make the report fail):
//   - no ENI with our tags without an owner (a NodeENI whose uid matches), unless tagged leaked;
//   - never two ENIs (not tagged leaked) for one attachment key;
//   - every lifecycle step converges (status = EC2, Ready) within its bound,
//     and within the final bound once faults stopped;
//   - no long-lived workflow (nodeEniEntity, devicePluginNode, resctrlNode) ends Failed, Terminated or TimedOut;
//   - no workflow history longer than the bound.
import { mkdir, mkdtemp, rm, writeFile, appendFile } from 'node:fs/promises';
import path from 'node:path';
import { RunInstancesCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { Client, Connection } from '@temporalio/client';
// A CommonJS package: its namespaces come through the default export under Node's ESM loader.
import proto from '@temporalio/proto';
import { API_GROUP, API_VERSION, entityWorkflowId, NODEENI_PLURAL, nodeTaskQueue } from '../../common/names.js';
import { stateQuery } from '../../common/workflow-api.js';
import type { NodeENIObject, NodeENISpec } from '../../common/types.js';
import { PROJECT_ROOT } from '../backends/tools.js';
import { makeEc2Client } from '../ec2/client.js';
import { FaultProxyClient, type FaultRule, type InjectedFaults } from '../ec2/fault-client.js';
import { SEED_IMAGE_ID, SEED_INSTANCE_TYPE } from '../ec2/seed.js';
import { buildDist } from '../build-dist.js';
import { waitForPollers } from '../pollers.js';
import { startEc2Recorder, type Ec2Recorder } from './ec2-recorder.js';
import { duplicateKeys, failedLongLived, failingLongLived, getNodeEni, listNodeEnis, listOurEnis, longestHistory, type HistoryMax, type OurEni } from './observe.js';
import { Rng } from './rng.js';
import { createStack, type Component, type ComponentKind, type Stack } from './stack.js';
import { restartableTemporal, type RestartableTemporal } from './temporal-restart.js';
import { dataConverter } from '../../workers/payload-codec.js';

export interface SoakOptions {
  /** NodeENI lifecycles to run. */
  lifecycles: number;
  /** Lifecycles at once. */
  concurrency: number;
  /** SIGKILLs of components (control worker, watcher, node agents), each restarted. */
  kills: number;
  /** Restarts of the Temporal dev server on its database file. */
  temporalRestarts: number;
  seed: number;
  /** Share of EC2 calls answered RequestLimitExceeded (HTTP 503). */
  throttleProbability: number;
  /** Share of EC2 calls answered InternalError (HTTP 500). */
  serverErrorProbability: number;
  /**
   * EC2's documented request-rate limits in the proxy (token buckets per
   * account and action, sandbox/ec2/throttle.ts), on top of the rules above.
   * On by default.
   */
  awsThrottle: boolean;
  /** Windows of UnauthorizedOperation (HTTP 403) on every ENI-changing call. */
  authWindows: number;
  authWindowMs: number;
  /** Time over which kills, restarts and windows are spread. */
  chaosSpanMs: number;
  /** A lifecycle step must converge within this (while faults go on). */
  stepBoundMs: number;
  /** Once faults stopped, everything pending must converge within this. */
  finalBoundMs: number;
  /** No workflow history may be longer. */
  historyBound: number;
  terminateProbability: number;
  replaceProbability: number;
  /** Lifecycles whose NodeENI publishes its device to the SR-IOV device plugin (exercises deviceplugin/<node>). */
  sriovProbability: number;
  /**
   * Whether SR-IOV lifecycles may terminate an instance too. Their delete then
   * waits for deviceplugin/<dead node>, whose node-agent bound is 120 s in
   * workers/control.ts: too slow for the short soak.
   */
  sriovTerminate: boolean;
  /**
   * Whether node-agent kills may hit nodes serving an SR-IOV lifecycle. Off by default: the
   * sandbox's fake kubelet lives in the agent process and forgets, when restarted, the extended
   * resources it published, so it never zeroes them and deviceplugin/<node> waits forever for
   * allocatable to drop (a simulation defect, not the system's).
   */
  sriovAgentKills: boolean;
  /** Pool nodes at the start (more are launched when lifecycles need them). */
  initialNodes: number;
  /** Working directory (logs, Temporal DB, evidence); a fresh one under .tmp/ when absent. */
  dir?: string;
  /** Keep the working directory afterwards (always kept when an invariant failed). */
  keepDir: boolean;
  log: (line: string) => void;
  /** Aborting stops every process and rejects. */
  signal?: AbortSignal;
}

export interface Violation {
  invariant: 'orphan-eni' | 'duplicate-attachment-key' | 'convergence' | 'long-lived-workflow-ended' | 'long-lived-workflow-failing' | 'history-bound' | 'lifecycle-error' | 'final-state';
  message: string;
  at: string;
  /** A few lines an engineer reads first; printed under the violation. */
  gist?: string[];
  evidence?: unknown;
}

export interface StepResult {
  lifecycle: string;
  step: string;
  /** From the change to converged (or to giving up). */
  ms: number;
  ok: boolean;
  /** When the step was pending as faults stopped, or began after: the part after faults stopped. */
  afterFaultsMs?: number;
}

export interface SoakReport {
  seed: number;
  proxySeed: number;
  dir: string;
  durationMs: number;
  lifecycles: { planned: number; completed: number; failed: number; terminated: number; replaced: number; sriov: number };
  kills: Record<ComponentKind, number>;
  unexpectedExits: Record<ComponentKind, number>;
  temporalRestarts: number;
  /** Faults the rules injected during the chaos; `awsThrottled`: calls the AWS request-rate limits refused over the whole run. */
  faults: { total: number; byCode: Record<string, number>; awsThrottled: number };
  enis: { created: number; deleted: number; leaked: number; orphaned: number; remaining: number };
  convergence: { steps: number; maxMs: number; maxStep: string; maxAfterFaultsStopMs: number; finalBoundMs: number; stepBoundMs: number };
  history: { maxEvents: number; workflowId: string; type: string; bound: number; scanned: number };
  longLivedFailures: number;
  /** Long-lived workflows still failing their passes once faults had stopped. */
  longLivedFailing: number;
  violations: Violation[];
  ok: boolean;
}

export const SHORT_SOAK: Partial<SoakOptions> = {
  lifecycles: 10,
  concurrency: 5,
  kills: 6,
  temporalRestarts: 1,
  authWindows: 2,
  authWindowMs: 10_000,
  chaosSpanMs: 60_000,
  stepBoundMs: 180_000,
  finalBoundMs: 90_000,
  terminateProbability: 0.5,
  replaceProbability: 0.5,
  sriovProbability: 0.15,
  sriovTerminate: false,
  initialNodes: 8,
};

export function soakDefaults(o: Partial<SoakOptions> = {}): SoakOptions {
  const lifecycles = o.lifecycles ?? 100;
  const concurrency = o.concurrency ?? 5;
  const kills = o.kills ?? Math.max(5, Math.round(lifecycles * 0.4));
  // About 50 s per lifecycle under chaos on a 2-core machine.
  const chaosSpanMs = o.chaosSpanMs ?? Math.ceil(lifecycles / concurrency) * 50_000;
  return {
    lifecycles,
    concurrency,
    kills,
    temporalRestarts: o.temporalRestarts ?? Math.max(1, Math.round(kills / 8)),
    seed: o.seed ?? Math.floor(Math.random() * 0xffffffff),
    throttleProbability: o.throttleProbability ?? 0.2,
    serverErrorProbability: o.serverErrorProbability ?? 0.05,
    awsThrottle: o.awsThrottle ?? true,
    authWindows: o.authWindows ?? Math.max(1, Math.round(chaosSpanMs / 300_000)),
    authWindowMs: o.authWindowMs ?? 60_000,
    chaosSpanMs,
    stepBoundMs: o.stepBoundMs ?? 300_000,
    finalBoundMs: o.finalBoundMs ?? 180_000,
    historyBound: o.historyBound ?? 10_000,
    terminateProbability: o.terminateProbability ?? 0.5,
    replaceProbability: o.replaceProbability ?? 0.5,
    sriovProbability: o.sriovProbability ?? 0.15,
    sriovTerminate: o.sriovTerminate ?? true,
    sriovAgentKills: o.sriovAgentKills ?? false,
    initialNodes: o.initialNodes ?? concurrency + 2,
    dir: o.dir,
    keepDir: o.keepDir ?? false,
    log: o.log ?? ((l) => process.stdout.write(`${l}\n`)),
    signal: o.signal,
  };
}

const POOL_LABEL = 'soak.nodeeni/pool';
const SOAK_LABEL = 'soak.nodeeni/run';
const ENI_ACTIONS = ['CreateNetworkInterface', 'AttachNetworkInterface', 'DetachNetworkInterface', 'DeleteNetworkInterface', 'ModifyNetworkInterfaceAttribute'];
const MTUS = [1500, 8500, 9000, 9001];
const SG_SETS = [['multus-sg'], ['storage-sg'], ['multus-sg', 'storage-sg']];
const EC2_TRANSITIONS = { attachDelayMs: 600, detachDelayMs: 900 };

interface SoakNode {
  name: string;
  instanceId: string;
  az: string;
  primaryMac: string;
  alive: boolean;
  leasedBy?: string;
  /** Leased by a lifecycle whose NodeENI publishes to the SR-IOV device plugin. */
  sriov?: boolean;
}

interface Lc {
  name: string;
  uid?: string;
  /** Nodes this NodeENI should select now. */
  selected(): SoakNode[];
  spec: { subnetNames: string[]; securityGroupNames: string[]; mtu: number; deleteOnTermination: boolean; dpdkResourceName?: string };
  gone: boolean;
}

const { EventType } = proto.temporal.api.enums.v1;
const eventTypeName = (t: unknown) => (typeof t === 'number' ? (EventType[t] ?? String(t)).replace(/^EVENT_TYPE_/, '') : String(t));

/** A few lines from a not-converged step's evidence: the conditions, the rows, the entity's last events. */
function evidenceGist(ev: { status?: NodeENIObject['status']; entity?: unknown; enis: { id: string; node?: string; attachment?: unknown }[] }): string[] {
  const lines = (ev.status?.conditions ?? []).map((c) => `${c.type} ${c.status} (${c.reason}): ${c.message.slice(0, 400)}`);
  for (const r of ev.status?.attachments ?? []) lines.push(`row ${r.nodeID}/${r.subnetID}: ${r.phase}${r.eniID ? ` ${r.eniID}` : ''}${r.message ? ` (${r.message.slice(0, 200)})` : ''}`);
  for (const e of ev.enis) lines.push(`EC2 ${e.id} on ${e.node ?? '?'}: ${JSON.stringify(e.attachment ?? null)}`);
  const entity = ev.entity as { status?: string; historyLength?: number; lastEvents?: string[]; believes?: unknown } | string | undefined;
  if (typeof entity === 'string') lines.push(`entity: ${entity}`);
  else if (entity) {
    lines.push(`entity ${entity.status}, ${entity.historyLength} events; last: ${(entity.lastEvents ?? []).slice(-12).map((e) => e.split(' ').slice(1).join(' ')).join(', ')}`);
    if (entity.believes !== undefined) lines.push(`entity believes: ${JSON.stringify(entity.believes).slice(0, 1500)}`);
  }
  return lines;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export async function runSoak(input: Partial<SoakOptions> = {}): Promise<SoakReport> {
  const o = soakDefaults(input);
  const rng = new Rng(o.seed);
  const lifecycleRng = rng.fork();
  const chaosRng = rng.fork();
  const started = Date.now();
  const tmpRoot = path.join(PROJECT_ROOT, '.tmp');
  await mkdir(tmpRoot, { recursive: true });
  const dir = o.dir ? path.resolve(o.dir) : await mkdtemp(path.join(tmpRoot, 'soak-'));
  await mkdir(path.join(dir, 'logs'), { recursive: true });
  const timeline = path.join(dir, 'timeline.log');
  const stamp = () => `+${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s`;
  const log = (msg: string) => {
    const line = `[soak ${stamp()}] ${msg}`;
    o.log(line);
    void appendFile(timeline, `${new Date().toISOString()} ${line}\n`).catch(() => undefined);
  };

  const violations: Violation[] = [];
  const violation = (v: Omit<Violation, 'at'>) => {
    violations.push({ ...v, at: new Date().toISOString() });
    log(`VIOLATION ${v.invariant}: ${v.message}`);
  };
  const kills: Record<ComponentKind, number> = { 'control-worker': 0, watcher: 0, 'node-agent': 0 };
  const unexpectedExits: Record<ComponentKind, number> = { 'control-worker': 0, watcher: 0, 'node-agent': 0 };
  const steps: StepResult[] = [];
  const counts = { completed: 0, failed: 0, terminated: 0, replaced: 0, sriov: 0 };
  let injected: InjectedFaults = { total: 0, byCode: {}, dropped: 0, delayed: 0 };
  /** Calls the proxy's AWS request-rate limits refused (they are not rule faults). */
  let awsThrottled = 0;
  let historyMax: HistoryMax | undefined;
  let historyScanned = 0;
  let longLivedFailures = 0;
  let longLivedFailing = 0;
  let quietAt: number | undefined;
  let finishing = false;
  let recorder: Ec2Recorder | undefined;
  let temporal: RestartableTemporal | undefined;
  const nodes: SoakNode[] = [];
  let nextNodeIndex = 0;
  /** When a node last came or went (the resident NodeENI's target changed). */
  let lastPoolChange = 0;

  log(`seed ${o.seed}: ${o.lifecycles} lifecycles (${o.concurrency} at once), ${o.kills} kills, ${o.temporalRestarts} Temporal restarts, ` +
    `${o.authWindows} × ${o.authWindowMs / 1000} s UnauthorizedOperation windows, RequestLimitExceeded ${o.throttleProbability * 100}%, ` +
    `InternalError ${o.serverErrorProbability * 100}%, AWS request-rate limits ${o.awsThrottle ? 'on' : 'off'}, chaos over ${Math.round(o.chaosSpanMs / 1000)} s; working directory ${dir}`);

  const exitTimes = new Map<string, number[]>();
  const wanted = (c: Component) => !finishing && (c.kind !== 'node-agent' || nodes.some((n) => n.name === c.node && n.alive));
  // Built while the backends start; the components then restart as fast as they do from the image.
  const dist = buildDist(dir);
  dist.catch(() => undefined); // awaited by the stack; this only keeps an early failure from counting as unhandled
  const handle = createStack({
    dir,
    dist,
    temporalDbFile: path.join(dir, 'temporal.db'),
    proxySeed: o.seed,
    proxyTarget: async (moto) => (recorder = await startEc2Recorder(moto)).endpoint,
    instances: o.initialNodes,
    nodeName: (i) => `soak-node-${i}`,
    nodeLabels: () => ({ [POOL_LABEL]: 'yes' }),
    platformEc2: 'moto',
    controlEnv: { DEVICE_PLUGIN_DEBOUNCE_MS: '500', DEVICE_PLUGIN_RESTART_TIMEOUT_SECONDS: '30' },
    watcherEnv: {
      CLUSTER_NAME: 'soak', RESYNC_SECONDS: '20', FAILURE_BACKOFF_SECONDS: '2', DETACH_TIMEOUT_SECONDS: '5', NODE_AGENT_START_TIMEOUT_SECONDS: '20',
    },
    onUnexpectedExit: (c, code, signal) => {
      unexpectedExits[c.kind]++;
      // A component that keeps crashing is restarted less and less often (1 s, doubling, at most 30 s).
      const recent = (exitTimes.get(c.name) ?? []).filter((t) => Date.now() - t < 120_000);
      recent.push(Date.now());
      exitTimes.set(c.name, recent);
      const delay = Math.min(30_000, 1000 * 2 ** (recent.length - 1));
      log(`${c.name} exited by itself (code ${code}, signal ${signal}); restarting it in ${delay / 1000} s. Last output:\n${c.proc?.tail().split('\n').slice(-8).join('\n') ?? ''}`);
      setTimeout(() => { if (wanted(c)) c.start(); }, delay);
    },
  });

  let stack: Stack | undefined;
  let connection: Connection | undefined;
  const aborted = new Promise<never>((_, reject) => {
    const onAbort = () => {
      finishing = true;
      reject(new Error('soak aborted'));
    };
    if (o.signal?.aborted) onAbort();
    else o.signal?.addEventListener('abort', onAbort, { once: true });
  });
  aborted.catch(() => undefined);
  const body = async (): Promise<SoakReport> => {
    const t0 = Date.now();
    stack = await handle.start();
    const s = stack;
    temporal = restartableTemporal(s.backends.temporal, path.join(dir, 'temporal.db'), { logFile: path.join(dir, 'logs', 'temporal.log') });
    log(`stack ready in ${((Date.now() - t0) / 1000).toFixed(1)} s: Temporal ${s.backends.temporal.address}, EC2 proxy ${s.proxy.endpoint} (seed ${o.seed}), moto ${s.backends.moto.endpoint}, ${s.nodes.length} nodes`);
    for (const n of s.nodes) nodes.push({ name: n.name, instanceId: n.instanceId, az: n.az, primaryMac: n.primaryMac, alive: true });
    nextNodeIndex = s.nodes.length;

    const moto = makeEc2Client({ endpoint: s.backends.moto.endpoint, maxAttempts: 3 });
    const viaProxy = makeEc2Client({ endpoint: s.proxy.endpoint, maxAttempts: 5 });
    const kc = s.backends.kube.kubeConfig();
    const core = kc.makeApiClient(CoreV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    connection = await Connection.connect({ address: s.backends.temporal.address });
    const client = new Client({ connection, namespace: s.backends.temporal.namespace, dataConverter });
    const fault = new FaultProxyClient(s.proxy.endpoint);
    await fault.setFidelity({ enabled: true, ...EC2_TRANSITIONS });
    // From here on, as in a real account: EC2 limits the request rate per action (the seeding above ran unthrottled).
    await fault.setThrottle(o.awsThrottle ? 'aws' : 'off');
    // One listing of moto's ENIs serves every waiter that asks within half a second.
    let enisCache: { at: number; value: Promise<OurEni[]> } | undefined;
    const snapshotEnis = (): Promise<OurEni[]> => {
      if (!enisCache || Date.now() - enisCache.at > 500) {
        const value = listOurEnis(moto);
        enisCache = { at: Date.now(), value };
        value.catch(() => { if (enisCache?.value === value) enisCache = undefined; });
      }
      return enisCache.value;
    };
    const subnetByName = new Map(s.world.subnets.map((x) => [x.name, x]));
    const sgByName = new Map(s.world.securityGroups.map((x) => [x.name, x.id]));

    // ---- helpers -------------------------------------------------------------

    const patchNodeLabels = async (name: string, labels: Record<string, string | null>) => {
      for (let attempt = 0; ; attempt++) {
        try {
          await core.patchNode({ name, body: { metadata: { labels } } }, mergePatch);
          return;
        } catch (err) {
          if (attempt >= 5) throw err;
          await sleep(300);
        }
      }
    };

    /** A new instance and its Node, leased to `lessee` from the start (no other lifecycle may take it while it boots). */
    const launchNode = async (az: string, lessee: string, sriov?: boolean): Promise<SoakNode> => {
      const subnet = s.world.subnets.find((x) => x.name === (az.endsWith('a') ? 'nodes-a' : 'nodes-b'))!;
      const index = nextNodeIndex++;
      const out = await moto.send(new RunInstancesCommand({ ImageId: SEED_IMAGE_ID, InstanceType: SEED_INSTANCE_TYPE, MinCount: 1, MaxCount: 1, SubnetId: subnet.id }));
      const inst = out.Instances![0]!;
      const primary = inst.NetworkInterfaces!.find((ni) => ni.Attachment?.DeviceIndex === 0)!;
      const node: SoakNode = { name: `soak-node-${index}`, instanceId: inst.InstanceId!, az, primaryMac: primary.MacAddress!, alive: true, leasedBy: lessee, sriov };
      nodes.push(node);
      await s.addNode({ name: node.name, instanceId: node.instanceId, az, primaryMac: node.primaryMac, labels: { [POOL_LABEL]: 'yes' } });
      await waitForPollers(s.backends.temporal.address, s.backends.temporal.namespace, [{ name: nodeTaskQueue(node.name), kind: 'activity' }], 180_000);
      lastPoolChange = Date.now();
      log(`launched ${node.instanceId} in ${az} as node ${node.name}`);
      return node;
    };

    const terminateInstance = async (instanceId: string) => {
      for (let attempt = 0; ; attempt++) {
        try {
          await viaProxy.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }));
          return;
        } catch (err) {
          if (attempt >= 30) throw err;
          await sleep(500);
        }
      }
    };

    /** What the pod garbage collector does for pods bound to a deleted node. */
    const deletePodsOn = async (nodeName: string) => {
      const pods = (await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${nodeName}` })).items;
      for (const p of pods) {
        await core.deleteNamespacedPod({ name: p.metadata!.name!, namespace: p.metadata!.namespace!, gracePeriodSeconds: 0 }).catch(() => undefined);
      }
    };

    const expectedKeys = (lc: Lc) =>
      lc.selected().flatMap((n) =>
        lc.spec.subnetNames.map((sn) => subnetByName.get(sn)!).filter((sub) => sub.az === n.az).map((sub) => ({ node: n, subnetId: sub.id })));

    /** Converged: the status says Ready for exactly what is expected, and EC2 shows exactly that. */
    const converged = async (lc: Lc): Promise<{ ok: boolean; why: string }> => {
      const obj = await getNodeEni(custom, lc.name);
      const enis = lc.uid ? (await snapshotEnis()).filter((e) => e.uid === lc.uid && e.leaked === undefined) : [];
      if (lc.gone) {
        if (obj && obj.metadata.uid === lc.uid) return { ok: false, why: `NodeENI still exists (finalizers ${JSON.stringify(obj.metadata.finalizers)})` };
        if (enis.length > 0) return { ok: false, why: `ENIs left: ${enis.map((e) => e.id).join(', ')}` };
        return { ok: true, why: '' };
      }
      if (!obj) return { ok: false, why: 'NodeENI missing' };
      const st = obj.status;
      const ready = st?.conditions?.find((c) => c.type === 'Ready');
      const keys = expectedKeys(lc);
      if (!st || st.observedGeneration !== obj.metadata.generation) return { ok: false, why: `observedGeneration ${st?.observedGeneration} ≠ generation ${obj.metadata.generation}` };
      if (ready?.status !== 'True') return { ok: false, why: `Ready ${ready?.status} (${ready?.reason}: ${ready?.message})` };
      if (st.desiredCount !== keys.length || st.readyCount !== keys.length) return { ok: false, why: `desired/ready ${st.desiredCount}/${st.readyCount}, expected ${keys.length}` };
      const rows = st.attachments ?? [];
      if (rows.length !== keys.length) return { ok: false, why: `${rows.length} status rows, expected ${keys.length}` };
      if (enis.length !== keys.length) return { ok: false, why: `${enis.length} ENIs in EC2 (${enis.map((e) => e.id).join(', ')}), expected ${keys.length}` };
      const sgs = lc.spec.securityGroupNames.map((n) => sgByName.get(n)!).sort().join(',');
      for (const k of keys) {
        const row = rows.find((r) => r.nodeID === k.node.name && r.subnetID === k.subnetId);
        const eni = enis.find((e) => e.node === k.node.name && e.subnetId === k.subnetId);
        if (!row || row.phase !== 'Ready') return { ok: false, why: `row ${k.node.name}/${k.subnetId}: ${row ? `${row.phase} ${row.message ?? ''}` : 'missing'}` };
        if (!eni) return { ok: false, why: `no ENI in EC2 for ${k.node.name}/${k.subnetId}` };
        if (row.eniID !== eni.id) return { ok: false, why: `status says ${row.eniID} for ${k.node.name}/${k.subnetId}, EC2 has ${eni.id}` };
        if (eni.attachment?.instanceId !== k.node.instanceId || eni.attachment.status !== 'attached') return { ok: false, why: `${eni.id} attachment ${JSON.stringify(eni.attachment)}` };
        if (row.deviceIndex !== eni.attachment.deviceIndex) return { ok: false, why: `${eni.id} device index: status ${row.deviceIndex}, EC2 ${eni.attachment.deviceIndex}` };
        if (eni.securityGroupIds.join(',') !== sgs) return { ok: false, why: `${eni.id} groups ${eni.securityGroupIds.join(',')}, spec ${sgs}` };
        if (row.mtu !== lc.spec.mtu) return { ok: false, why: `${eni.id} MTU ${row.mtu} in status, spec ${lc.spec.mtu}` };
      }
      return { ok: true, why: '' };
    };

    /** Everything an engineer needs to look at a step that did not converge. */
    const evidence = async (lc: Lc) => {
      const obj = await getNodeEni(custom, lc.name).catch(() => undefined);
      const enis = lc.uid ? (await listOurEnis(moto).catch(() => [] as OurEni[])).filter((e) => e.uid === lc.uid) : [];
      const workflowId = lc.uid ? entityWorkflowId(lc.name, lc.uid) : undefined;
      let entity: unknown;
      if (workflowId) {
        try {
          const handle = client.workflow.getHandle(workflowId);
          const d = await handle.describe();
          const events = (await handle.fetchHistory()).events ?? [];
          const lastEvents = events.slice(-25).map((e) => `${e.eventId} ${e.eventTime?.seconds ? new Date(Number(e.eventTime.seconds) * 1000).toISOString() : ''} ${eventTypeName(e.eventType)}`);
          // What the entity itself believes: the children it waits for and the steps it backs off from.
          const view = d.status.name === 'RUNNING' ? await handle.query(stateQuery).catch((err: unknown) => String(err)) : undefined;
          const believes = typeof view === 'object' ? { inFlight: view.inFlight, failures: view.state.failures } : view;
          entity = { runId: d.runId, status: d.status.name, historyLength: d.historyLength, lastEvents, believes };
        } catch (err) {
          entity = String(err);
        }
      }
      return {
        workflowId,
        show: workflowId ? `.tools/venv/bin/temporal workflow show --address ${s.backends.temporal.address} -w '${workflowId}'` : undefined,
        entity,
        expected: expectedKeys(lc).map((k) => `${k.node.name}/${k.subnetId}`),
        metadata: obj?.metadata,
        status: obj?.status,
        enis: enis.map((e) => ({ ...e, ec2Calls: recorder?.historyOf(e.id).map((h) => ({ at: new Date(h.at).toISOString(), action: h.action, status: h.status, code: h.code })) })),
      };
    };

    const waitStep = async (lc: Lc, step: string, t0 = Date.now()): Promise<boolean> => {
      let last = { ok: false, why: 'not checked yet' };
      for (;;) {
        try {
          last = await converged(lc);
        } catch (err) {
          last = { ok: false, why: `check failed: ${String(err)}` };
        }
        const now = Date.now();
        const afterFaults = quietAt !== undefined;
        const from = afterFaults ? Math.max(t0, quietAt!) : t0;
        if (last.ok) {
          steps.push({ lifecycle: lc.name, step, ms: now - t0, ok: true, afterFaultsMs: afterFaults ? now - from : undefined });
          log(`${lc.name}: ${step} converged in ${((now - t0) / 1000).toFixed(1)} s`);
          return true;
        }
        const deadline = afterFaults ? Math.min(t0 + o.stepBoundMs, from + o.finalBoundMs) : t0 + o.stepBoundMs;
        if (now > deadline) {
          steps.push({ lifecycle: lc.name, step, ms: now - t0, ok: false, afterFaultsMs: afterFaults ? now - from : undefined });
          const ev = await evidence(lc);
          // The gist in the violation itself: CI keeps only the end of the output, not the working directory.
          const gist = evidenceGist(ev);
          violation({ invariant: 'convergence', message: `${lc.name}: ${step} did not converge within ${Math.round((now - t0) / 1000)} s${afterFaults ? ' (faults had stopped)' : ''}: ${last.why}`, gist, evidence: ev });
          await writeFile(path.join(dir, `not-converged-${lc.name}-${step}.json`), JSON.stringify(ev, null, 2)).catch(() => undefined);
          for (const line of gist) log(`  ${line}`);
          return false;
        }
        await sleep(1000);
      }
    };

    const createNodeEni = async (lc: Lc, selector: Record<string, string>) => {
      const spec: NodeENISpec = {
        nodeSelector: selector,
        subnetNames: lc.spec.subnetNames,
        securityGroupNames: lc.spec.securityGroupNames,
        mtu: lc.spec.mtu,
        deleteOnTermination: lc.spec.deleteOnTermination,
        ...(lc.spec.dpdkResourceName ? { dpdkResourceName: lc.spec.dpdkResourceName } : {}),
      };
      const body = { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: 'NodeENI', metadata: { name: lc.name, labels: { [SOAK_LABEL]: 'yes' } }, spec };
      const obj = (await custom.createClusterCustomObject({ group: API_GROUP, version: API_VERSION, plural: NODEENI_PLURAL, body })) as NodeENIObject;
      lc.uid = obj.metadata.uid;
    };

    const deleteNodeEni = (lc: Lc) => custom.deleteClusterCustomObject({ group: API_GROUP, version: API_VERSION, plural: NODEENI_PLURAL, name: lc.name });

    // ---- the resident NodeENI: every pool node, for the whole soak ----------

    const resident: Lc = {
      name: 'soak-resident',
      selected: () => nodes.filter((n) => n.alive),
      spec: { subnetNames: ['storage-a', 'storage-b'], securityGroupNames: ['storage-sg'], mtu: 9001, deleteOnTermination: false },
      gone: false,
    };
    await createNodeEni(resident, { [POOL_LABEL]: 'yes' });
    if (!(await waitStep(resident, 'create'))) throw new Error('the resident NodeENI did not become Ready before any chaos');

    // ---- invariant checkers ---------------------------------------------------

    const orphanSuspects = new Set<string>();
    const reportedOrphans = new Set<string>();
    const reportedDupKeys = new Set<string>();
    const reportedFailures = new Set<string>();
    const checkEc2 = async () => {
      const enis = await listOurEnis(moto);
      const owners = new Set((await listNodeEnis(custom)).map((x) => x.metadata.uid));
      const orphans = enis.filter((e) => e.leaked === undefined && (e.uid === undefined || !owners.has(e.uid)));
      // An ENI deleted together with its owner between the two reads is no orphan: report only those seen twice.
      for (const e of orphans) {
        if (orphanSuspects.has(e.id) && !reportedOrphans.has(e.id)) {
          reportedOrphans.add(e.id);
          violation({ invariant: 'orphan-eni', message: `${e.id} (NodeENI ${e.nodeEniName} uid ${e.uid}, node ${e.node}, key ${e.attachmentKey}) has no owner`, evidence: { eni: e, ec2Calls: recorder?.historyOf(e.id) } });
        }
      }
      orphanSuspects.clear();
      for (const e of orphans) orphanSuspects.add(e.id);
      for (const [key, list] of duplicateKeys(enis)) {
        const id = `${key}:${list.map((e) => e.id).sort().join(',')}`;
        if (reportedDupKeys.has(id)) continue;
        reportedDupKeys.add(id);
        violation({ invariant: 'duplicate-attachment-key', message: `${list.length} ENIs for attachment key ${key}: ${list.map((e) => e.id).join(', ')}`, evidence: { enis: list, ec2Calls: list.map((e) => recorder?.historyOf(e.id)) } });
      }
      return enis;
    };
    const checkWorkflows = async () => {
      for (const wf of await failedLongLived(client)) {
        const id = `${wf.workflowId}/${wf.runId}`;
        if (reportedFailures.has(id)) continue;
        reportedFailures.add(id);
        longLivedFailures++;
        violation({
          invariant: 'long-lived-workflow-ended',
          message: `${wf.type} ${wf.workflowId} run ${wf.runId} ended ${wf.status.name} at ${wf.closeTime?.toISOString()}`,
          evidence: { show: `.tools/venv/bin/temporal workflow show --address ${s.backends.temporal.address} -w '${wf.workflowId}' -r ${wf.runId}` },
        });
      }
    };
    const checkHistories = async (query: string) => {
      const { max, scanned } = await longestHistory(client, query);
      historyScanned = Math.max(historyScanned, scanned);
      if (max && (!historyMax || max.events > historyMax.events)) historyMax = max;
    };

    let checking = true;
    const checker = (async () => {
      let round = 0;
      while (checking) {
        round++;
        await checkEc2().catch((err) => log(`EC2 check skipped: ${String(err)}`));
        if (round % 5 === 0) await checkWorkflows().catch(() => undefined);
        if (round % 15 === 0) await checkHistories(`ExecutionStatus = 'Running'`).catch(() => undefined);
        await sleep(2000);
      }
    })();

    // ---- chaos ------------------------------------------------------------------

    type ChaosEvent = { at: number; kind: 'kill' | 'temporal' };
    // Every kind at least once (when there are three kills or more), the rest weighted, all in random order.
    const kindQueue = chaosRng.shuffle([
      ...chaosRng.shuffle(['control-worker', 'node-agent', 'watcher'] as ComponentKind[]).slice(0, Math.min(3, o.kills)),
      ...Array.from({ length: Math.max(0, o.kills - 3) }, (): ComponentKind => {
        const r = chaosRng.float();
        return r < 0.35 ? 'control-worker' : r < 0.75 ? 'node-agent' : 'watcher';
      }),
    ]);
    const events: ChaosEvent[] = [
      ...Array.from({ length: o.kills }, () => ({ at: 0, kind: 'kill' as const })),
      ...Array.from({ length: o.temporalRestarts }, () => ({ at: 0, kind: 'temporal' as const })),
    ];
    for (const ev of events) ev.at = Math.round(o.chaosSpanMs * (0.05 + 0.9 * chaosRng.float()));
    events.sort((a, b) => a.at - b.at);
    const windows = Array.from({ length: o.authWindows }, () => Math.round(chaosRng.float() * Math.max(0, o.chaosSpanMs - o.authWindowMs)));
    const chaosEnd = Math.max(o.chaosSpanMs, ...windows.map((w) => w + o.authWindowMs));

    /** The line each component logs once it serves (polls its queue, or watches). */
    const READY_LINE: Record<ComponentKind, string> = { 'control-worker': 'control worker started', watcher: 'watcher started', 'node-agent': 'node agent started' };
    /** Starts the component and resolves once it logged that it serves (or after the timeout, or when it exits). */
    const startAndWait = async (c: Component, timeoutMs = 120_000): Promise<number> => {
      const t0 = Date.now();
      c.start();
      const child = c.proc?.child;
      if (!child || !c.running()) return 0;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          child.stdout?.off('data', onData);
          child.stderr?.off('data', onData);
          child.off('exit', done);
          resolve();
        };
        const onData = (buf: Buffer) => { if (buf.toString().includes(READY_LINE[c.kind])) done(); };
        const timer = setTimeout(done, timeoutMs);
        child.stdout?.on('data', onData);
        child.stderr?.on('data', onData);
        child.once('exit', done);
      });
      return Date.now() - t0;
    };

    const killAndRestart = async (kind: ComponentKind) => {
      let c: Component | undefined;
      if (kind === 'control-worker') c = s.controlWorker;
      else if (kind === 'watcher') c = s.watcher;
      else {
        const candidates = [...s.agents.values()].filter((a) => a.running() && wanted(a) && (o.sriovAgentKills || !nodes.some((n) => n.name === a.node && n.sriov)));
        c = candidates.length ? chaosRng.pick(candidates) : undefined;
      }
      if (!c) return;
      await c.kill();
      kills[kind]++;
      const downMs = chaosRng.int(300, 3000);
      log(`chaos: SIGKILL ${c.name}; restarting in ${downMs} ms`);
      await sleep(downMs);
      // The next event waits until this component serves again: killing one that is still starting tests nothing new.
      if (wanted(c)) log(`chaos: ${c.name} serving again ${((await startAndWait(c)) / 1000).toFixed(1)} s after its restart`);
    };

    const chaosStart = Date.now();
    let chaosStopped = false;
    const chaos = (async () => {
      const rules: FaultRule[] = [
        ...windows.flatMap((startAfterMs) => ENI_ACTIONS.map((action) => ({ action, code: 'UnauthorizedOperation', httpStatus: 403, startAfterMs, activeForMs: o.authWindowMs }))),
        { action: '*', code: 'RequestLimitExceeded', httpStatus: 503, probability: o.throttleProbability },
        // Tried only on the calls the throttling rule let through: 5 % of all calls overall.
        { action: '*', code: 'InternalError', httpStatus: 500, probability: Math.min(1, o.serverErrorProbability / (1 - o.throttleProbability)) },
      ];
      await fault.addRules(rules);
      log(`chaos: faults on (proxy seed ${(await fault.seed())}); UnauthorizedOperation windows at ${windows.map((w) => `${Math.round(w / 1000)} s`).join(', ') || 'none'}; ` +
        `events: ${events.map((e, i) => `${Math.round(e.at / 1000)} s ${e.kind === 'kill' ? `kill ${kindQueue[events.slice(0, i).filter((x) => x.kind === 'kill').length]}` : 'Temporal restart'}`).join(', ')}`);
      let k = 0;
      for (const ev of events) {
        // At its time, but at least a few seconds after the previous event's recovery.
        const wait = Math.max(chaosStart + ev.at - Date.now(), 3000);
        await sleep(wait);
        if (chaosStopped) return;
        try {
          if (ev.kind === 'kill') await killAndRestart(kindQueue[k++]!);
          else {
            const downMs = chaosRng.int(500, 2500);
            log(`chaos: restarting the Temporal dev server (down ≥ ${downMs} ms)`);
            const r = await temporal!.restart({ downMs });
            log(`chaos: Temporal back after ${r.downMs} ms`);
          }
        } catch (err) {
          log(`chaos event failed: ${String(err)}`);
        }
      }
      const rest = chaosStart + chaosEnd - Date.now();
      if (rest > 0) await sleep(rest);
    })();

    // ---- lifecycles ---------------------------------------------------------

    const lease = async (lcName: string, count: number): Promise<SoakNode[]> => {
      const free = lifecycleRng.shuffle(nodes.filter((n) => n.alive && n.leasedBy === undefined));
      const picked = free.slice(0, count);
      for (const n of picked) n.leasedBy = lcName;
      while (picked.length < count) {
        picked.push(await launchNode(lifecycleRng.chance(0.67) ? `${s.world.region}a` : `${s.world.region}b`, lcName));
      }
      return picked;
    };

    const runLifecycle = async (id: number, r: Rng) => {
      const name = `soak-l${id}`;
      const label = `soak.nodeeni/l${id}`;
      const leased = await lease(name, r.chance(0.35) ? 2 : 1);
      const inNodes = new Set<string>();
      const lc: Lc = {
        name,
        selected: () => leased.filter((n) => n.alive && inNodes.has(n.name)),
        spec: {
          subnetNames: r.chance(0.3) ? ['multus-a', 'multus-b', 'storage-a', 'storage-b'] : ['multus-a', 'multus-b'],
          securityGroupNames: r.pick(SG_SETS),
          mtu: r.pick(MTUS),
          deleteOnTermination: r.chance(0.5),
          ...(r.chance(o.sriovProbability) ? { dpdkResourceName: `intel.com/soak_l${id}` } : {}),
        },
        gone: false,
      };
      if (lc.spec.dpdkResourceName) {
        counts.sriov++;
        for (const n of leased) n.sriov = true;
      }
      let ok = true;
      try {
        log(`${name}: start on ${leased.map((n) => `${n.name} (${n.az})`).join(', ')}; subnets ${lc.spec.subnetNames.join(',')}, groups ${lc.spec.securityGroupNames.join(',')}, MTU ${lc.spec.mtu}, deleteOnTermination ${lc.spec.deleteOnTermination}${lc.spec.dpdkResourceName ? `, SR-IOV ${lc.spec.dpdkResourceName}` : ''}`);
        for (const n of leased) {
          await patchNodeLabels(n.name, { [label]: 'in' });
          inNodes.add(n.name);
        }
        let t0 = Date.now();
        await createNodeEni(lc, { [label]: 'in' });
        ok = (await waitStep(lc, 'create', t0)) && ok;

        // Relabel one node out, then back in.
        const moved = r.pick(leased);
        t0 = Date.now();
        await patchNodeLabels(moved.name, { [label]: 'out' });
        inNodes.delete(moved.name);
        ok = (await waitStep(lc, 'relabel-out', t0)) && ok;
        t0 = Date.now();
        await patchNodeLabels(moved.name, { [label]: 'in' });
        inNodes.add(moved.name);
        ok = (await waitStep(lc, 'relabel-in', t0)) && ok;

        // Security groups and MTU: a spec update (new generation).
        lc.spec.securityGroupNames = r.pick(SG_SETS.filter((g) => g.join() !== lc.spec.securityGroupNames.join()));
        lc.spec.mtu = r.pick(MTUS.filter((m) => m !== lc.spec.mtu));
        t0 = Date.now();
        await custom.patchClusterCustomObject({
          group: API_GROUP, version: API_VERSION, plural: NODEENI_PLURAL, name,
          body: { spec: { securityGroupNames: lc.spec.securityGroupNames, mtu: lc.spec.mtu } },
        }, mergePatch);
        log(`${name}: spec update: groups ${lc.spec.securityGroupNames.join(',')}, MTU ${lc.spec.mtu}`);
        ok = (await waitStep(lc, 'update', t0)) && ok;

        // An instance dies: EC2 deletes or detaches its ENIs (DeleteOnTermination), its Node goes, maybe a replacement comes.
        if (r.chance(o.terminateProbability) && (o.sriovTerminate || !lc.spec.dpdkResourceName)) {
          const victim = r.pick(leased.filter((n) => n.alive));
          t0 = Date.now();
          await terminateInstance(victim.instanceId);
          victim.alive = false;
          lastPoolChange = Date.now();
          counts.terminated++;
          await s.agents.get(victim.name)?.kill();
          log(`${name}: terminated ${victim.instanceId} (node ${victim.name}, deleteOnTermination ${lc.spec.deleteOnTermination})`);
          await sleep(r.int(0, 3000));
          await core.deleteNode({ name: victim.name }).catch(() => undefined);
          await deletePodsOn(victim.name);
          lastPoolChange = Date.now();
          if (r.chance(o.replaceProbability)) {
            const replacement = await launchNode(victim.az, name, lc.spec.dpdkResourceName ? true : undefined);
            leased.push(replacement);
            await patchNodeLabels(replacement.name, { [label]: 'in' });
            inNodes.add(replacement.name);
            counts.replaced++;
            log(`${name}: replacement ${replacement.name} labelled in`);
          }
          ok = (await waitStep(lc, 'terminate', t0)) && ok;
        }

        t0 = Date.now();
        await deleteNodeEni(lc);
        lc.gone = true;
        ok = (await waitStep(lc, 'delete', t0)) && ok;
      } catch (err) {
        ok = false;
        violation({ invariant: 'lifecycle-error', message: `${name}: ${err instanceof Error ? err.stack ?? err.message : String(err)}` });
        if (!lc.gone && lc.uid) {
          lc.gone = true;
          await deleteNodeEni(lc).catch(() => undefined);
          await waitStep(lc, 'delete-after-error');
        }
      } finally {
        for (const n of leased) {
          if (n.alive) await patchNodeLabels(n.name, { [label]: null }).catch(() => undefined);
          n.leasedBy = undefined;
          n.sriov = undefined;
        }
      }
      if (ok) counts.completed++;
      else counts.failed++;
      log(`${name}: ${ok ? 'done' : 'FAILED'}`);
    };

    let launched = 0;
    const lifecycles = (async () => {
      const running = new Set<Promise<void>>();
      for (let id = 1; id <= o.lifecycles; id++) {
        while (running.size >= o.concurrency) await Promise.race(running);
        const r = lifecycleRng.fork();
        await sleep(lifecycleRng.int(0, 2000));
        const p = runLifecycle(id, r).finally(() => running.delete(p));
        running.add(p);
        launched++;
      }
      await Promise.all(running);
    })();

    // ---- faults stop ----------------------------------------------------------

    await chaos;
    while (launched < o.lifecycles) await sleep(1000);
    chaosStopped = true;
    const st = await fault.state();
    injected = st.injected;
    awsThrottled += st.throttled.total;
    await fault.clear();
    quietAt = Date.now();
    for (const c of [s.controlWorker, s.watcher, ...s.agents.values()]) if (wanted(c) && !c.running()) c.start();
    log(`faults stopped after ${Math.round((quietAt - chaosStart) / 1000)} s: ${injected.total} injected (${Object.entries(injected.byCode).map(([k, v]) => `${k} ${v}`).join(', ')}); ` +
      `${awsThrottled} refused by the AWS request-rate limits; every component running`);

    // The resident NodeENI's target moves whenever a node comes or goes: from the moment faults
    // stopped, time how long it takes to converge after each such change.
    const quiet = quietAt;
    const residentTimes = new Map<number, number>();
    let watchingResident = true;
    const residentWatch = (async () => {
      while (watchingResident) {
        const change = Math.max(quiet, lastPoolChange);
        if (!residentTimes.has(change)) {
          const r = await converged(resident).catch(() => ({ ok: false }));
          if (r.ok && Math.max(quiet, lastPoolChange) === change) residentTimes.set(change, Date.now() - change);
        }
        await sleep(1000);
      }
    })();

    await lifecycles;
    watchingResident = false;
    await residentWatch;
    const lastChange = Math.max(quiet, lastPoolChange);
    const residentMs = residentTimes.get(lastChange);
    if (residentMs !== undefined) {
      steps.push({ lifecycle: resident.name, step: 'final', ms: residentMs, ok: residentMs <= o.finalBoundMs, afterFaultsMs: residentMs });
      if (residentMs > o.finalBoundMs) violation({ invariant: 'convergence', message: `${resident.name} took ${Math.round(residentMs / 1000)} s to converge after the last change (bound ${o.finalBoundMs / 1000} s)`, evidence: await evidence(resident) });
      log(`every lifecycle finished; the resident NodeENI had converged ${(residentMs / 1000).toFixed(1)} s after the last change of nodes (or faults stopping)`);
    } else {
      log('every lifecycle finished; the resident NodeENI must converge');
      await waitStep(resident, 'final', lastChange);
    }
    const t0Delete = Date.now();
    await deleteNodeEni(resident);
    resident.gone = true;
    await waitStep(resident, 'delete', t0Delete);

    // Once faults stopped, every long-lived workflow's reconcile passes must succeed again: one
    // still failing then (backing off, retrying forever) is stuck, even though it never "failed".
    const failingUntil = Math.max(Date.now() + 30_000, quietAt + o.finalBoundMs);
    let failing = await failingLongLived(client).catch(() => []);
    while (failing.length > 0 && Date.now() < failingUntil) {
      await sleep(5000);
      failing = await failingLongLived(client).catch(() => failing);
    }
    for (const f of failing) {
      violation({
        invariant: 'long-lived-workflow-failing',
        message: `${f.type} ${f.workflowId} still fails every pass ${Math.round((Date.now() - quietAt) / 1000)} s after faults stopped: ${f.reason} (${f.attempts} in a row): ${f.message}`,
        evidence: { ...f, show: `.tools/venv/bin/temporal workflow show --address ${s.backends.temporal.address} -w '${f.workflowId}'` },
      });
    }
    longLivedFailing = failing.length;

    checking = false;
    await checker;
    // ---- final checks -----------------------------------------------------------
    finishing = true;
    const finalEnis = await checkEc2();
    // Orphans need a second look to be reported; at the end nothing may be left at all.
    const left = finalEnis.filter((e) => e.leaked === undefined);
    const leakedTagged = finalEnis.filter((e) => e.leaked !== undefined);
    if (left.length > 0) {
      violation({ invariant: 'final-state', message: `${left.length} ENIs with our tags left after every NodeENI was deleted: ${left.map((e) => `${e.id} (${e.nodeEniName})`).join(', ')}`, evidence: left.map((e) => ({ eni: e, ec2Calls: recorder?.historyOf(e.id) })) });
    }
    const remaining = await listNodeEnis(custom);
    if (remaining.length > 0) violation({ invariant: 'final-state', message: `NodeENIs left: ${remaining.map((x) => x.metadata.name).join(', ')}` });
    await checkWorkflows();
    await checkHistories('');
    if (historyMax && historyMax.events > o.historyBound) {
      violation({ invariant: 'history-bound', message: `${historyMax.type} ${historyMax.workflowId} run ${historyMax.runId} has ${historyMax.events} history events (bound ${o.historyBound})` });
    }

    awsThrottled += (await fault.throttled()).total;
    const okSteps = steps.filter((x) => x.ok);
    const maxStep = okSteps.reduce<StepResult | undefined>((m, x) => (!m || x.ms > m.ms ? x : m), undefined);
    const created = recorder?.created() ?? new Set<string>();
    const report: SoakReport = {
      seed: o.seed,
      proxySeed: st.seed,
      dir,
      durationMs: Date.now() - started,
      lifecycles: { planned: o.lifecycles, ...counts },
      kills,
      unexpectedExits,
      temporalRestarts: temporal.restarts,
      faults: { total: injected.total, byCode: injected.byCode, awsThrottled },
      enis: {
        created: created.size,
        deleted: [...(recorder?.deleted() ?? [])].filter((id) => created.has(id)).length,
        leaked: leakedTagged.length,
        orphaned: reportedOrphans.size,
        remaining: left.length,
      },
      convergence: {
        steps: steps.length,
        maxMs: maxStep?.ms ?? 0,
        maxStep: maxStep ? `${maxStep.lifecycle} ${maxStep.step}` : '',
        maxAfterFaultsStopMs: Math.max(0, ...steps.map((x) => x.afterFaultsMs ?? 0)),
        finalBoundMs: o.finalBoundMs,
        stepBoundMs: o.stepBoundMs,
      },
      history: { maxEvents: historyMax?.events ?? 0, workflowId: historyMax?.workflowId ?? '', type: historyMax?.type ?? '', bound: o.historyBound, scanned: historyScanned },
      longLivedFailures,
      longLivedFailing,
      violations,
      ok: violations.length === 0,
    };
    await writeFile(path.join(dir, 'report.json'), JSON.stringify(report, null, 2));
    await writeFile(path.join(dir, 'ec2-audit.json'), JSON.stringify(recorder?.entries() ?? [], null, 1));
    return report;
  };
  let passed = false;
  try {
    const report = await Promise.race([body(), aborted]);
    passed = report.ok;
    return report;
  } finally {
    finishing = true;
    await connection?.close().catch(() => undefined);
    await handle.stop();
    await temporal?.stop().catch(() => undefined);
    await recorder?.stop().catch(() => undefined);
    if (!o.keepDir && passed) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    else log(`working directory kept: ${dir} (timeline.log, logs/, temporal.db, report.json, ec2-audit.json)`);
  }
}

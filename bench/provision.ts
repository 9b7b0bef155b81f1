// Benchmark: one NodeENI selecting N simulated nodes on the real backends
// (Temporal dev server, moto behind the fault proxy, kube-apiserver + etcd):
// time from creating it to Ready and from deleting it to gone, the EC2 calls
// per attachment, the throttle's lower bound, the components' memory, the
// longest workflow history. Prints tables and ends with one JSON line.
//
//   npm run bench                                   N = 3, 10, 20 (quick)
//   npm run bench -- --nodes 1000 [--throttle aws|off] [--subnets K]
//   npm run bench -- --runs 20                      single-node latency, 20 runs
//   npm run bench -- --help
//
// What runs where (see README, Benchmark):
//   - this process: the orchestration, and all simulated nodes but one: each
//     node's SimHost with the production node-agent activities on its own
//     task queue node-<name> (a small Worker each: 1 activity poller, few
//     slots, no workflows), their PCI buses updated by ONE fleet poller that
//     asks moto for every ENI once per interval (sandbox/sim-instance.ts).
//     Only the benchmark shares a process between nodes; production runs one
//     agent per node;
//   - processes of their own: the control worker and the watcher (production
//     entry points, shipped ServiceAccounts, shipped watcher defaults), one
//     real node-agent process for node 0 (production Worker settings; its
//     host is fed by the fleet poller through stdin), and the fault proxy;
//   - the EC2 world (N instances in 2 zones, K secondary subnets per zone) is
//     seeded straight in moto, and the simulation reads moto directly: the
//     proxy's counters hold only the system's own EC2 calls.
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { TerminateInstancesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { Watch } from '@kubernetes/client-node';
import { API_GROUP, API_VERSION, NODEENI_PLURAL, nodeTaskQueue, TAG } from '../common/names.js';
import type { NodeENIObject } from '../common/types.js';
import { startBackends, type Backends } from '../sandbox/backends/index.js';
import { PROJECT_ROOT, startTsProcess, waitUntil, type ManagedProcess } from '../sandbox/backends/tools.js';
import { buildDist } from '../sandbox/build-dist.js';
import { makeEc2Client, MOTO_DEFAULT_ACCOUNT } from '../sandbox/ec2/client.js';
import type { FaultProxyState } from '../sandbox/ec2/fault-client.js';
import { lowerBoundSecondsAll, throttlePreset } from '../sandbox/ec2/throttle.js';
import { waitForPollers } from '../sandbox/pollers.js';
import { describeInterfaces, type AttachedEni } from '../sandbox/sim-instance.js';
import { longestHistory } from '../sandbox/soak/observe.js';
import type { ProvidedBackends } from '../test/support/backends.js';
import { createTestCluster, type TestCluster } from '../test/support/cluster.js';
import { isReady } from '../test/support/inspect.js';
import { controlWorkerProcess, watcherProcess } from '../test/support/processes.js';
import { startEntryPoint } from '../sandbox/entry-point.js';
import { installRuntime } from '../workers/bootstrap.js';
import { childrenOf, ProcSampler, sampleProc, type ProcStats } from './proc-stats.js';
import { formatLatencyGrowth, latencyGrowth, scrapeMetrics } from './temporal-metrics.js';
import { formatTimeline, timeline } from './timeline.js';

// ---- arguments ------------------------------------------------------------------------

const USAGE = `usage: npm run bench -- [--nodes N[,N…]] [--throttle aws|off] [--subnets K] [--runs R] [--transitions on|off]
                        [--ec2-latency-ms MS] [--poll-ms MS] [--timeout SECONDS] [--from-source] [--stock-moto] [--keep]
  --nodes N      simulated nodes (default: 3, 10 and 20 one after the other); positional numbers work too
  --throttle     aws: the fault proxy enforces EC2's documented token buckets; off: it does not (default: off)
  --subnets K    secondary subnets per zone named in the spec: K attachments per node (1 to 3, default 1)
  --runs R       single-node latency mode: R runs of apply → Ready and delete → finalizer gone
  --transitions  on: attachments pass through attaching (0.6 s) and detaching (0.9 s) as the tests'
                 do (default); off: EC2 answers at once, to see what the system itself adds
  --ec2-latency-ms MS  every EC2 request waits MS in the fault proxy before moto sees it, as a round
                 trip to a Region's endpoint would (moto on this machine answers in a few ms, one
                 request at a time); requests in flight together wait together (default 0)
  --poll-ms MS   the fleet's pause between two DescribeNetworkInterfaces sweeps of every ENI (default
                 60000, or twenty times the last sweep: devices appear from the fault proxy's attachment changes, the sweeps are a backstop)
  --timeout S    give up a phase after S seconds (default 300 + 3 per attachment)
  --from-source  run the components' TypeScript through tsx (quicker start; their memory then includes
                 the loader's) instead of a build of their own, as the image runs them
  --stock-moto   moto as installed, whose tag lookups scan every tag of the account (see
                 bench/moto-indexed-tags.py, which the benchmark starts moto with otherwise)
  --keep         keep the state directory (logs of every process) under .tmp/
  --profile      the workflow events in time order (entity, children), written to the state directory:
                 timeline-n<N>.txt; with --runs timeline-<run>.txt each, and the second run's printed;
                 with --nodes also temporal-metrics-n<N>.txt, the Temporal dev server's latencies per phase
  --control-node-options "FLAGS"  NODE_OPTIONS of the control worker process, e.g. V8 heap settings
                 such as "--max-semi-space-size=1" to compare its memory (short for --control-env NODE_OPTIONS=…)
  --control-env KEY=VALUE, --watcher-env KEY=VALUE  a setting of that component's process (repeatable),
                 e.g. --control-env WORKFLOW_CACHE_SIZE=150 --watcher-env MAX_CONCURRENT_CHILDREN=100
  --temporal-config key=value  a dynamic config value of the Temporal dev server (repeatable), e.g.
                 history.shardIOConcurrency=4 (the dev server has a single history shard)`;

interface Args {
  sizes: number[];
  throttle?: 'aws' | 'off';
  subnets: number;
  runs?: number;
  /** Whether the fault proxy simulates EC2's transitional states (the tests' durations). */
  transitions: boolean;
  /** Added to every EC2 request by the fault proxy (a round trip to a real endpoint). */
  ec2LatencyMs: number;
  pollMs: number | undefined;
  timeoutSeconds?: number;
  fromSource: boolean;
  stockMoto: boolean;
  keep: boolean;
  profile: boolean;
  /** Extra environment of the control worker and watcher processes (settings to compare). */
  controlEnv: Record<string, string>;
  watcherEnv: Record<string, string>;
  /** More dynamic config of the Temporal dev server (`key=value`), to compare the server's own settings. */
  temporalConfig: string[];
}

function usage(problem?: string): never {
  process.stderr.write(`${problem ? `${problem}\n` : ''}${USAGE}\n`);
  process.exit(problem ? 2 : 0);
}

function positiveInt(v: string, what: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) usage(`${what}: "${v}" is not a positive integer`);
  return n;
}

function keyValue(v: string, what: string): Record<string, string> {
  const m = /^([A-Z][A-Z0-9_]*)=(.*)$/s.exec(v);
  if (!m) usage(`${what}: "${v}" is not KEY=VALUE`);
  return { [m[1]!]: m[2]! };
}

function parseArgs(argv: string[]): Args {
  const args: Args = { sizes: [], subnets: 1, transitions: true, ec2LatencyMs: 0, pollMs: undefined, fromSource: false, stockMoto: false, keep: false, profile: false, controlEnv: {}, watcherEnv: {}, temporalConfig: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => argv[++i] ?? usage(`${a} needs a value`);
    if (a === '--nodes') args.sizes.push(...value().split(',').map((v) => positiveInt(v, '--nodes')));
    else if (a === '--throttle') {
      const v = value();
      if (v !== 'aws' && v !== 'off') usage(`--throttle: "${v}" is neither aws nor off`);
      args.throttle = v;
    } else if (a === '--subnets') args.subnets = positiveInt(value(), '--subnets');
    else if (a === '--runs') args.runs = positiveInt(value(), '--runs');
    else if (a === '--transitions') {
      const v = value();
      if (v !== 'on' && v !== 'off') usage(`--transitions: "${v}" is not on or off`);
      args.transitions = v === 'on';
    }
    else if (a === '--ec2-latency-ms') args.ec2LatencyMs = positiveInt(value(), '--ec2-latency-ms');
    else if (a === '--poll-ms') args.pollMs = positiveInt(value(), '--poll-ms');
    else if (a === '--timeout') args.timeoutSeconds = positiveInt(value(), '--timeout');
    else if (a === '--keep') args.keep = true;
    else if (a === '--profile') args.profile = true;
    else if (a === '--control-node-options') args.controlEnv.NODE_OPTIONS = value();
    else if (a === '--control-env') Object.assign(args.controlEnv, keyValue(value(), a));
    else if (a === '--watcher-env') Object.assign(args.watcherEnv, keyValue(value(), a));
    else if (a === '--temporal-config') {
      const v = value();
      if (!/^[a-zA-Z][\w.]*=\S+$/.test(v)) usage(`--temporal-config: "${v}" is not key=value (a dynamic config key of the Temporal server)`);
      args.temporalConfig.push(v);
    }
    else if (a === '--from-source') args.fromSource = true;
    else if (a === '--stock-moto') args.stockMoto = true;
    else if (a === '--help' || a === '-h') usage();
    else if (/^\d+$/.test(a)) args.sizes.push(positiveInt(a, 'size'));
    else usage(`unknown argument ${a}`);
  }
  // m5.xlarge, the seeded type, takes 4 ENIs: the primary and 3 more.
  if (args.subnets > 3) usage('--subnets: the seeded m5.xlarge instances take at most 3 secondary ENIs');
  if (args.runs !== undefined && args.sizes.some((n) => n !== 1)) usage('--runs measures one node: give --runs alone or with --nodes 1');
  if (args.runs !== undefined) args.sizes = [];
  if (args.sizes.length === 0) args.sizes = [3, 10, 20];
  return args;
}

// ---- the environment ---------------------------------------------------------------------

interface Env {
  dir: string;
  backends: Backends;
  provided: ProvidedBackends;
  proxy: ManagedProcess;
  sampler: ProcSampler;
  /** moto itself, in the account everything runs in. */
  moto: EC2Client;
  /** The build the components run from (undefined: from source). */
  dist?: string;
}

/** Only the benchmark raises it: up to 1,200 concurrent polls per namespace is the frontend's default (one per simulated node here). */
const TEMPORAL_DYNAMIC_CONFIG = ['frontend.namespaceCount=4096'];

async function startEnv(dir: string, args: Args): Promise<Env> {
  const [built, started] = await Promise.allSettled([
    args.fromSource ? Promise.resolve(undefined) : buildDist(dir),
    startBackends({
      dir,
      temporalDynamicConfig: [...TEMPORAL_DYNAMIC_CONFIG, ...args.temporalConfig],
      temporalMetrics: args.profile,
      // moto's tag lookups scan the account's every tag: quadratic in the cluster (see the script).
      motoWrapper: args.stockMoto ? undefined : path.join(PROJECT_ROOT, 'bench', 'moto-indexed-tags.py'),
    }),
  ]);
  if (started.status === 'rejected') throw started.reason;
  const backends = started.value;
  try {
    if (built.status === 'rejected') throw built.reason;
    const proxy = startTsProcess('fault-proxy', 'bench/fault-proxy-process.ts', { env: { MOTO_ENDPOINT: backends.moto.endpoint }, logFile: path.join(dir, 'fault-proxy.log') });
    let endpoint: string | undefined;
    await waitUntil('fault proxy', async () => {
      endpoint = proxy.tail().split('\n').map((l) => /^\{"endpoint":"([^"]+)"\}$/.exec(l)?.[1]).find((e) => e !== undefined);
      return endpoint !== undefined;
    }, { timeoutMs: 60_000, proc: proxy });
    const sampler = new ProcSampler(1000);
    sampler.watch('bench (fleet)', process.pid);
    sampler.watch('fault proxy', proxy.child.pid);
    for (const child of childrenOf(process.pid)) {
      const name = / server start-dev /.test(child.cmd) ? 'temporal dev server'
        : /moto_server|moto-indexed-tags/.test(child.cmd) ? 'moto'
        : /kube-apiserver/.test(child.cmd) ? 'kube-apiserver'
        : /\/etcd /.test(child.cmd) ? 'etcd'
        : undefined;
      if (name) sampler.watch(name, child.pid);
    }
    return {
      dir,
      dist: built.value,
      backends,
      proxy,
      sampler,
      moto: makeEc2Client({ endpoint: backends.moto.endpoint, account: MOTO_DEFAULT_ACCOUNT, maxAttempts: 3 }),
      provided: {
        temporalAddress: backends.temporal.address,
        temporalNamespace: backends.temporal.namespace,
        motoEndpoint: backends.moto.endpoint,
        ec2Endpoint: endpoint!,
        kube: { server: backends.kube.server, token: backends.kube.token, caData: backends.kube.caData, kubeconfigPath: backends.kube.kubeconfigPath },
      },
    };
  } catch (err) {
    await backends.stop().catch(() => undefined);
    throw err;
  }
}

// ---- one cluster --------------------------------------------------------------------------

/** Small per-node Workers for the simulated nodes in this process (production agents keep the SDK's defaults). */
const FLEET_AGENT_WORKER = {
  maxConcurrentActivityTaskExecutions: 4,
  activityTaskPollerBehavior: { type: 'simple-maximum', maximum: 1 },
  maxConcurrentLocalActivityExecutions: 1,
} as const;

/** Secondary subnets: K names, each a subnet in zone a and one in zone b. */
const subnetNames = (k: number) => Array.from({ length: k }, (_, j) => `eni${j}`);

interface Bench {
  c: TestCluster;
  nodes: number;
  attachments: number;
  setupSeconds: number;
  /** RSS of this process before and after creating the simulated nodes and their Workers. */
  fleetRssMiB: { before: number; after: number };
  processes: { control: ManagedProcess; watcher: ManagedProcess; agent: ManagedProcess };
  stop(): Promise<void>;
}

async function startBench(env: Env, n: number, k: number, pollMs: number | undefined, settings: Pick<Args, 'controlEnv' | 'watcherEnv' | 'transitions' | 'ec2LatencyMs'>): Promise<Bench> {
  const t0 = Date.now();
  const before = sampleProc(process.pid)!.rssMiB;
  // Node subnets hold ~2/3 of the instances (zone a), each secondary subnet as many ENIs: /24 up to ~240 nodes.
  const perZone = Math.ceil((2 * n) / 3) + 16;
  let prefixLength = 24;
  while (2 ** (32 - prefixLength) - 5 < perZone) prefixLength--;
  const c = await createTestCluster({
    backends: env.provided,
    // The account the control worker process uses: it sends no moto account header.
    account: MOTO_DEFAULT_ACCOUNT,
    instances: n,
    seed: { direct: true, subnetPrefixLength: prefixLength, secondarySubnets: subnetNames(k), launchBatch: 50 },
    simulation: { fleet: true, pollMs, secondaryOnly: true },
    // Node 0 gets the real node-agent process below.
    agents: { worker: FLEET_AGENT_WORKER, skip: (i) => i === 0 },
    controlWorker: false,
    watcher: false,
  });
  if (!settings.transitions) await c.fault.setFidelity({ attachDelayMs: 0, detachDelayMs: 0 });
  if (settings.ec2LatencyMs > 0) await c.fault.addRules({ action: '*', latencyMs: settings.ec2LatencyMs });
  const after = sampleProc(process.pid)!.rssMiB;
  const logs = path.join(env.dir, c.runId);
  await mkdir(logs, { recursive: true });
  const first = c.nodes[0]!;
  const agent = startEntryPoint('node-agent', 'bench/node-agent-process', {
    dist: env.dist,
    shippedAs: 'workers/node-agent',
    stdin: true,
    logFile: path.join(logs, 'node-agent.log'),
    env: {
      NODE_NAME: first.name,
      SIM_PRIMARY_MAC: c.world.instances[0]!.primaryMac,
      TEMPORAL_ADDRESS: env.provided.temporalAddress,
      TEMPORAL_NAMESPACE: env.provided.temporalNamespace,
      LOG_LEVEL: 'WARN',
    },
  });
  let sent = '';
  c.fleet!.add(c.world.instances[0]!.id, (attached: readonly AttachedEni[]) => {
    const line = JSON.stringify([...attached].sort((a, b) => a.deviceIndex - b.deviceIndex));
    if (line === sent || !agent.child.stdin?.writable) return;
    agent.child.stdin.write(`${line}\n`);
    sent = line;
  });
  const control = await controlWorkerProcess(c, { dist: env.dist, logFile: path.join(logs, 'control-worker.log'), env: settings.controlEnv });
  // The shipped watcher defaults (resync, timeouts, concurrent children) as a user would run it.
  const watcher = await watcherProcess(c, { dist: env.dist, logFile: path.join(logs, 'watcher.log'), timings: 'shipped', env: settings.watcherEnv });
  env.sampler.watch(`control worker ${c.runId}`, control.child.pid);
  env.sampler.watch(`watcher ${c.runId}`, watcher.child.pid);
  env.sampler.watch(`node agent ${c.runId}`, agent.child.pid);
  const stop = async () => {
    await Promise.allSettled([watcher.stop(), control.stop(), agent.stop()]);
    await c.dispose();
    // Leave the next cluster an account without these instances (and their primary ENIs).
    const ids = c.world.instances.map((i) => i.id);
    for (let i = 0; i < ids.length; i += 200) {
      await env.moto.send(new TerminateInstancesCommand({ InstanceIds: ids.slice(i, i + 200) })).catch(() => undefined);
    }
  };
  try {
    // Ready means polled: the control queue, and every node's queue.
    await waitForPollers(env.provided.temporalAddress, env.provided.temporalNamespace, [
      { name: c.taskQueue, kind: 'workflow' },
      { name: c.taskQueue, kind: 'activity' },
      ...c.nodes.map((node) => ({ name: nodeTaskQueue(node.name), kind: 'activity' as const })),
    ], 300_000);
    for (const p of [control, watcher, agent]) if (p.child.exitCode !== null) throw new Error(`a component exited: ${p.tail()}`);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    c, nodes: n, attachments: n * k, setupSeconds: (Date.now() - t0) / 1000, fleetRssMiB: { before, after },
    processes: { control, watcher, agent }, stop,
  };
}

// ---- waiting ------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface ReadyOutcome {
  seconds: number;
  ready: boolean;
  readyCount: number;
  /** Attachments (node/subnet) reported Failed at some point. */
  everFailed: Set<string>;
  /** Failed in the last status seen. */
  failedAtEnd: number;
  /** Reported Failed on the way and Ready in the last status seen. */
  recovered: number;
}

async function waitReady(c: TestCluster, name: string, expected: number, t0: number, timeoutMs: number, intervalMs: number): Promise<ReadyOutcome> {
  const everFailed = new Set<string>();
  let last: NodeENIObject | undefined;
  for (;;) {
    last = await c.getNodeEni(name).catch(() => last);
    const now = Date.now();
    for (const a of last?.status?.attachments ?? []) if (a.phase === 'Failed') everFailed.add(`${a.nodeID}/${a.subnetID}`);
    const rows = last?.status?.attachments ?? [];
    const failedAtEnd = rows.filter((a) => a.phase === 'Failed').length;
    const recovered = rows.filter((a) => a.phase === 'Ready' && everFailed.has(`${a.nodeID}/${a.subnetID}`)).length;
    const readyCount = last?.status?.readyCount ?? 0;
    const ready = isReady(last, expected);
    if (ready || now - t0 > timeoutMs) return { seconds: (now - t0) / 1000, ready, readyCount, everFailed, failedAtEnd, recovered };
    await sleep(intervalMs);
  }
}

interface GoneOutcome {
  seconds: number;
  gone: boolean;
  /** When the object (finalizer removed) was gone. */
  objectSeconds?: number;
  leftoverEnis: number;
}

/** Until the NodeENI is gone and EC2 (moto, directly) has no ENI with its uid left. */
async function waitGone(env: Env, c: TestCluster, name: string, uid: string, t0: number, timeoutMs: number, intervalMs: number): Promise<GoneOutcome> {
  let objectSeconds: number | undefined;
  let leftoverEnis = -1;
  for (;;) {
    const now = Date.now();
    if (objectSeconds === undefined && (await c.getNodeEni(name).catch(() => 'error')) === undefined) objectSeconds = (now - t0) / 1000;
    if (objectSeconds !== undefined) {
      leftoverEnis = (await enisOf(env, uid)).length;
      if (leftoverEnis === 0) return { seconds: (Date.now() - t0) / 1000, gone: true, objectSeconds, leftoverEnis };
    }
    if (now - t0 > timeoutMs) {
      if (leftoverEnis < 0) leftoverEnis = (await enisOf(env, uid)).length;
      return { seconds: (now - t0) / 1000, gone: false, objectSeconds, leftoverEnis };
    }
    await sleep(intervalMs);
  }
}

const enisOf = (env: Env, uid: string) => describeInterfaces(env.moto, { filters: [{ Name: `tag:${TAG.nodeEniUid}`, Values: [uid] }] });

// ---- the N-node benchmark -------------------------------------------------------------------

interface Phase {
  seconds: number;
  /** Requests the proxy received, per action (throttled ones included). */
  calls: Record<string, number>;
  totalCalls: number;
  throttled: number;
  /** Requests the proxy's buckets refused, per action (counted in `calls` too). */
  throttledByAction: Record<string, number>;
  /** Under EC2's documented buckets (throttle.ts), whether or not the proxy enforced them. */
  lowerBoundSeconds: number;
  /** Per action, seconds from the phase's start to its first and last served call. */
  spans: Record<string, { first: number; last: number }>;
  cpu: ProcStats[];
}

interface SizeResult {
  nodes: number;
  attachments: number;
  setupSeconds: number;
  provision: Phase & { ready: boolean; readyCount: number; everFailed: number; failedAtEnd: number };
  teardown: Phase & { gone: boolean; objectSeconds?: number; leftoverEnis: number };
  failedAttachments: number;
  procs: ProcStats[];
  fleetRssMiB: { before: number; after: number };
  fleet: ReturnType<NonNullable<TestCluster['fleet']>['stats']>;
  eventLoopDelayMs: { p99: number; max: number };
  maxHistory?: { events: number; type: string; workflowId: string };
  historiesScanned: number;
  runId: string;
  /** The machine's 1-minute load average when the NodeENI was created, Ready, and gone (others' work included). */
  load: number[];
}

function phaseFigures(state: FaultProxyState, startedMs: number, seconds: number, cpu: ProcStats[]): Phase {
  const spans = Object.fromEntries(Object.entries(state.servedSpan).map(([a, s]) => [a, { first: (s.firstMs - startedMs) / 1000, last: (s.lastMs - startedMs) / 1000 }]));
  const calls = state.countsByAccount[MOTO_DEFAULT_ACCOUNT] ?? {};
  return {
    seconds,
    calls,
    totalCalls: Object.values(calls).reduce((a, b) => a + b, 0),
    throttled: state.throttled.total,
    throttledByAction: state.throttled.byAction,
    lowerBoundSeconds: lowerBoundSecondsAll(state.served, throttlePreset('aws')),
    spans,
    cpu,
  };
}

async function runSize(env: Env, args: Args, n: number): Promise<SizeResult> {
  const k = args.subnets;
  const timeoutMs = (args.timeoutSeconds ?? 300 + 3 * n * k) * 1000;
  const interval = n >= 100 ? 1000 : 250;
  const started = new Date();
  log(`N=${n}: seeding ${n} instances, ${n} Nodes, ${n - 1} simulated agents in this process, 1 agent process, control worker, watcher…`);
  const b = await startBench(env, n, k, args.pollMs, args);
  const { c } = b;
  log(`N=${n}: set up in ${b.setupSeconds.toFixed(0)} s (run ${c.runId}); creating the NodeENI (${b.attachments} attachments)`);
  const loop = monitorEventLoopDelay({ resolution: 20 });
  try {
    if (args.throttle) await c.fault.setThrottle(args.throttle);
    env.sampler.mark();
    loop.enable();
    const load = [loadavg()[0]!];

    const metricsUrl = args.profile ? env.backends.temporal.metricsUrl : undefined;
    const metricsAtStart = metricsUrl ? await scrapeMetrics(metricsUrl) : undefined;
    await c.fault.clear();
    const t0 = Date.now();
    const obj = await c.createNodeEni('bench', {
      subnetNames: subnetNames(k).flatMap((s) => [`${s}-a`, `${s}-b`]),
      securityGroupNames: ['multus-sg'],
      mtu: 9001,
    });
    const ready = await waitReady(c, 'bench', b.attachments, t0, timeoutMs, interval);
    const provisionState = await c.fault.state();
    const provision = { ...phaseFigures(provisionState, t0, ready.seconds, env.sampler.mark()), ready: ready.ready, readyCount: ready.readyCount, everFailed: ready.everFailed.size, failedAtEnd: ready.failedAtEnd };
    load.push(loadavg()[0]!);
    log(`N=${n}: ${ready.ready ? 'Ready' : `NOT Ready (${ready.readyCount}/${b.attachments})`} after ${ready.seconds.toFixed(1)} s; deleting`);

    const metricsAtReady = metricsUrl ? await scrapeMetrics(metricsUrl) : undefined;
    await c.fault.clear();
    const t1 = Date.now();
    await c.deleteNodeEni('bench');
    const gone = await waitGone(env, c, 'bench', obj.metadata.uid, t1, timeoutMs, interval);
    const teardownState = await c.fault.state();
    const teardown = { ...phaseFigures(teardownState, t1, gone.seconds, env.sampler.mark()), gone: gone.gone, objectSeconds: gone.objectSeconds, leftoverEnis: gone.leftoverEnis };
    loop.disable();
    load.push(loadavg()[0]!);
    log(`N=${n}: ${gone.gone ? 'gone' : `NOT gone (${gone.leftoverEnis} ENIs left)`} after ${gone.seconds.toFixed(1)} s; scanning workflow histories`);

    if (metricsUrl && metricsAtStart && metricsAtReady) {
      const metricsAtGone = await scrapeMetrics(metricsUrl);
      await writeFile(path.join(env.dir, `temporal-metrics-n${n}.txt`), `${formatLatencyGrowth(`N=${n}, create → Ready: the Temporal dev server's latencies`, latencyGrowth(metricsAtStart, metricsAtReady))}\n\n${formatLatencyGrowth(`N=${n}, delete → gone`, latencyGrowth(metricsAtReady, metricsAtGone))}\n`);
    }
    if (args.profile) {
      const marks = [{ at: 0, workflow: 'bench', what: 'NodeENI created' }, { at: ready.seconds, workflow: 'bench', what: 'Ready seen' }, { at: (t1 - t0) / 1000, workflow: 'bench', what: 'NodeENI deleted' }];
      await writeFile(path.join(env.dir, `timeline-n${n}.txt`), `${formatTimeline(`N=${n}: seconds since the NodeENI was created`, await timeline(c.client, t0, `nodeeni/${c.runId}-bench/`), marks)}\n`);
    }
    const history = await longestHistory(c.client, `StartTime >= "${started.toISOString()}"`);
    const procs = env.sampler.mark().filter((p) => !/ t[0-9a-f]{6}$/.test(p.name) || p.name.endsWith(c.runId));
    return {
      nodes: n,
      attachments: b.attachments,
      setupSeconds: b.setupSeconds,
      provision,
      teardown,
      // Not Ready at the end, plus those reported Failed on the way that did end Ready.
      failedAttachments: Math.min(b.attachments, b.attachments - ready.readyCount + ready.recovered),
      procs,
      fleetRssMiB: b.fleetRssMiB,
      fleet: c.fleet!.stats(),
      eventLoopDelayMs: { p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 },
      maxHistory: history.max ? { events: history.max.events, type: history.max.type, workflowId: history.max.workflowId } : undefined,
      historiesScanned: history.scanned,
      runId: c.runId,
      load,
    };
  } finally {
    loop.disable();
    await b.stop();
  }
}

// ---- single-node latency ---------------------------------------------------------------------

interface LatencyResult {
  runs: number;
  ready: number[];
  deleted: number[];
  failures: string[];
}

async function runLatency(env: Env, args: Args): Promise<LatencyResult> {
  const k = args.subnets;
  const timeoutMs = (args.timeoutSeconds ?? 300) * 1000;
  const b = await startBench(env, 1, k, args.pollMs, args);
  const { c } = b;
  const out: LatencyResult = { runs: args.runs!, ready: [], deleted: [], failures: [] };
  try {
    if (args.throttle) await c.fault.setThrottle(args.throttle);
    for (let r = 1; r <= args.runs!; r++) {
      const name = `lat${r}`;
      // Timed by a watch on the object: the moment the API server tells of the change, not the next poll's.
      const seen = await watchNodeEni(c, name);
      const t0 = Date.now();
      const obj = await c.createNodeEni(name, { subnetNames: subnetNames(k).flatMap((s) => [`${s}-a`, `${s}-b`]), securityGroupNames: ['multus-sg'], mtu: 9001 });
      const ready = await seen.until((o) => isReady(o, k), t0, timeoutMs);
      if (!ready.ok) out.failures.push(`run ${r}: not Ready after ${ready.seconds.toFixed(0)} s`);
      const t1 = Date.now();
      await c.deleteNodeEni(name);
      const gone = await seen.until((o) => o === undefined, t1, timeoutMs);
      seen.stop();
      if (!gone.ok) out.failures.push(`run ${r}: not deleted after ${gone.seconds.toFixed(0)} s`);
      out.ready.push(ready.seconds);
      out.deleted.push(gone.seconds);
      log(`run ${r}/${args.runs}: Ready ${ready.seconds.toFixed(2)} s, deleted ${gone.seconds.toFixed(2)} s`);
      // The next run starts from an empty instance (untimed).
      await waitUntil('ENIs deleted', async () => (await enisOf(env, obj.metadata.uid)).length === 0, { timeoutMs });
      if (args.profile) {
        const marks = [
          { at: 0, workflow: 'bench', what: 'NodeENI created' },
          { at: ready.seconds, workflow: 'bench', what: 'Ready seen' },
          { at: (t1 - t0) / 1000, workflow: 'bench', what: 'NodeENI deleted' },
          { at: (t1 - t0) / 1000 + gone.seconds, workflow: 'bench', what: 'gone seen' },
        ];
        const text = formatTimeline(`run ${r}: seconds since the NodeENI was created`, await timeline(c.client, t0, `nodeeni/${c.runId}-${name}/`), marks);
        await writeFile(path.join(env.dir, `timeline-${r}.txt`), `${text}\n`);
        if (r === 2) log(text);
      }
    }
  } finally {
    await b.stop();
  }
  return out;
}

interface NodeEniWatch {
  /** Seconds from `t0` to the first event (or the state already seen) for which `done` holds; ok false after the timeout. */
  until(done: (o: NodeENIObject | undefined) => boolean, t0: number, timeoutMs: number): Promise<{ ok: boolean; seconds: number }>;
  stop(): void;
}

/** Watches one NodeENI by name from before it exists; `undefined` stands for deleted (or not there yet). */
async function watchNodeEni(c: TestCluster, name: string): Promise<NodeEniWatch> {
  let current: NodeENIObject | undefined;
  let check: (() => void) | undefined;
  const fieldSelector = `metadata.name=${c.runId}-${name}`;
  // From the version of a listing made now: the watch sees the creation however late its request lands.
  const listed = await c.custom.listClusterCustomObject({ group: API_GROUP, version: API_VERSION, plural: NODEENI_PLURAL, fieldSelector }) as { metadata?: { resourceVersion?: string } };
  const watching = new Watch(c.kc).watch(
    `/apis/${API_GROUP}/${API_VERSION}/${NODEENI_PLURAL}`,
    { fieldSelector, resourceVersion: listed.metadata?.resourceVersion },
    (phase, obj: NodeENIObject) => {
      current = phase === 'DELETED' ? undefined : obj;
      check?.();
    },
    (err) => {
      if (err && !(err instanceof Error && err.name === 'AbortError')) log(`watch of ${name} ended: ${String(err)}`);
    },
  );
  return {
    until: (done, t0, timeoutMs) => new Promise((resolve) => {
      const timer = setTimeout(() => finish(false), Math.max(0, t0 + timeoutMs - Date.now()));
      function finish(ok: boolean) {
        clearTimeout(timer);
        check = undefined;
        resolve({ ok, seconds: (Date.now() - t0) / 1000 });
      }
      check = () => {
        if (done(current)) finish(true);
      };
      // The creation itself is an event: a wait for "gone" must not end on the state before the object was seen.
      if (current !== undefined) check();
    }),
    stop: () => void watching.then((abort) => abort.abort()),
  };
}

/** Nearest-rank percentile. */
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

// ---- output -------------------------------------------------------------------------------

const log = (line: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
const r1 = (x: number) => Math.round(x * 10) / 10;
const r2 = (x: number) => Math.round(x * 100) / 100;
const mib = (procs: ProcStats[], prefix: string) => procs.find((p) => p.name.startsWith(prefix))?.maxRssMiB ?? NaN;

function sizeTables(results: SizeResult[], args: Args): string {
  const lines: string[] = [];
  lines.push(`throttle: ${args.throttle === 'aws' ? "EC2's documented token buckets enforced by the proxy" : 'not enforced'}; lower bounds always under EC2's documented buckets (sandbox/ec2/throttle.ts) for the calls made; ${args.subnets} secondary subnet(s) per zone; components ${args.fromSource ? 'from source through tsx (their RSS includes the loader)' : 'from a build, as the image runs them'}; moto ${args.stockMoto ? 'as installed' : 'with tags looked up by resource (bench/moto-indexed-tags.py)'}`);
  lines.push('');
  lines.push('| nodes | attachments | create → Ready | delete → gone | bucket lower bound Ready / delete | EC2 calls per attachment provision / teardown | throttled | failed | control RSS | watcher RSS | node-agent RSS | max history |');
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    const ready = `${r.provision.seconds.toFixed(1)} s${r.provision.ready ? '' : ` (timed out, ${r.provision.readyCount} Ready)`}`;
    const gone = `${r.teardown.seconds.toFixed(1)} s${r.teardown.gone ? '' : ` (timed out, ${r.teardown.leftoverEnis} ENIs left)`}`;
    lines.push(`| ${r.nodes} | ${r.attachments} | ${ready} | ${gone} | ${r.provision.lowerBoundSeconds.toFixed(1)} s / ${r.teardown.lowerBoundSeconds.toFixed(1)} s | ${(r.provision.totalCalls / r.attachments).toFixed(1)} / ${(r.teardown.totalCalls / r.attachments).toFixed(1)} | ${r.provision.throttled} / ${r.teardown.throttled} | ${r.failedAttachments} | ${mib(r.procs, 'control worker').toFixed(0)} MiB | ${mib(r.procs, 'watcher').toFixed(0)} MiB | ${mib(r.procs, 'node agent').toFixed(0)} MiB | ${r.maxHistory ? `${r.maxHistory.events} (${r.maxHistory.type})` : '-'} |`);
  }
  for (const r of results) {
    lines.push('');
    lines.push(`N=${r.nodes} (run ${r.runId}): set up in ${r.setupSeconds.toFixed(0)} s; the finalizer was removed after ${r.teardown.objectSeconds?.toFixed(1) ?? '-'} s; ${r.provision.everFailed} attachment(s) reported Failed on the way, ${r.provision.failedAtEnd} at the end; ${r.historiesScanned} workflow runs scanned for the longest history; load average ${r.load.map((l) => l.toFixed(1)).join(' → ')} (${cpus().length} CPUs)`);
    lines.push(`simulated nodes in this process: ${r.nodes - 1} Workers + hosts, RSS ${r.fleetRssMiB.before.toFixed(0)} → ${r.fleetRssMiB.after.toFixed(0)} MiB (${r.nodes > 1 ? ((r.fleetRssMiB.after - r.fleetRssMiB.before) / (r.nodes - 1)).toFixed(2) : '-'} MiB per node); event-loop delay p99 ${r.eventLoopDelayMs.p99.toFixed(0)} ms, max ${r.eventLoopDelayMs.max.toFixed(0)} ms`);
    lines.push(`fleet: ${r.fleet.changesApplied} attachment changes from the fault proxy, ${r.fleet.memberReads} reads of ${r.fleet.membersRead} members added, ${r.fleet.polls} backstop sweeps (slowest ${r.fleet.maxPollMs.toFixed(0)} ms, up to ${r.fleet.maxEnis} ENIs listed); ${r.fleet.requests} DescribeNetworkInterfaces in all (${r.fleet.requests ? (r.fleet.requestMs / r.fleet.requests).toFixed(0) : '-'} ms each on average, ${(r.fleet.requestMs / 1000).toFixed(0)} s), ${r.fleet.errors} errors`);
    lines.push('');
    lines.push('| process | peak RSS | CPU s provision | CPU s teardown |');
    lines.push('|---|---|---|---|');
    for (const p of r.procs) {
      const cpu = (ph: Phase) => ph.cpu.find((q) => q.pid === p.pid)?.cpuSeconds ?? 0;
      lines.push(`| ${p.name.replace(/ t[0-9a-f]{6}$/, '')} | ${p.maxRssMiB.toFixed(0)} MiB | ${cpu(r.provision).toFixed(1)} | ${cpu(r.teardown).toFixed(1)} |`);
    }
    lines.push('');
    const actions = [...new Set([...Object.keys(r.provision.calls), ...Object.keys(r.teardown.calls)])].sort();
    // First → last served call, seconds after the create (delete): where each API's time went.
    const span = (ph: Phase, a: string) => (ph.spans[a] ? `${ph.spans[a].first.toFixed(1)} → ${ph.spans[a].last.toFixed(1)} s` : '-');
    lines.push('| EC2 action | provision | teardown | of them throttled: provision | teardown | served provision | served teardown |');
    lines.push('|---|---|---|---|---|---|---|');
    for (const a of actions) {
      lines.push(`| ${a} | ${r.provision.calls[a] ?? 0} | ${r.teardown.calls[a] ?? 0} | ${r.provision.throttledByAction[a] ?? 0} | ${r.teardown.throttledByAction[a] ?? 0} | ${span(r.provision, a)} | ${span(r.teardown, a)} |`);
    }
  }
  return lines.join('\n');
}

/** What the JSON lines say of settings that change the figures: only those away from their default. */
function settingsJson(args: Pick<Args, 'transitions' | 'ec2LatencyMs'>): Record<string, unknown> {
  return { ...(args.transitions ? {} : { transitions: 'off' }), ...(args.ec2LatencyMs > 0 ? { ec2LatencyMs: args.ec2LatencyMs } : {}) };
}

function sizeJson(r: SizeResult, args: Pick<Args, 'transitions' | 'ec2LatencyMs'>): string {
  return JSON.stringify({
    nodes: r.nodes,
    attachments: r.attachments,
    readySeconds: r1(r.provision.seconds),
    deleteSeconds: r1(r.teardown.seconds),
    lowerBoundSeconds: { ready: r1(r.provision.lowerBoundSeconds), delete: r1(r.teardown.lowerBoundSeconds) },
    ec2CallsPerAttachment: { provision: r2(r.provision.totalCalls / r.attachments), teardown: r2(r.teardown.totalCalls / r.attachments) },
    throttledCalls: r.provision.throttled + r.teardown.throttled,
    failedAttachments: r.failedAttachments,
    controlRssMiB: Math.round(mib(r.procs, 'control worker')),
    nodeAgentRssMiB: Math.round(mib(r.procs, 'node agent')),
    maxHistoryEvents: r.maxHistory?.events ?? 0,
    ...settingsJson(args),
  });
}

// ---- main ---------------------------------------------------------------------------------

const args = parseArgs(process.argv.slice(2));
// Before the cluster installs it at WARN: a thousand Workers without workflows would each say so.
installRuntime({ logLevel: 'ERROR' });
await mkdir(path.join(PROJECT_ROOT, '.tmp'), { recursive: true });
const dir = await mkdtemp(path.join(PROJECT_ROOT, '.tmp', 'bench-'));
log(`state and logs in ${dir}`);
const env = await startEnv(dir, args);
let output = '';
let failed = false;
try {
  if (args.runs !== undefined) {
    const r = await runLatency(env, args);
    const row = (name: string, v: number[]) => `| ${name} | ${percentile(v, 50).toFixed(2)} s | ${percentile(v, 90).toFixed(2)} s | ${Math.max(...v).toFixed(2)} s |`;
    output = [
      `single node, ${args.subnets} attachment(s), ${r.runs} runs${args.transitions ? '' : ', no transitional states'}${args.ec2LatencyMs ? `, ${args.ec2LatencyMs} ms added to every EC2 request` : ''}${r.failures.length ? `; failures: ${r.failures.join('; ')}` : ''}`,
      '',
      '| phase | p50 | p90 | max |',
      '|---|---|---|---|',
      row('apply → Ready', r.ready),
      row('delete → finalizer gone', r.deleted),
      '',
      JSON.stringify({ singleNode: { runs: r.runs, readyP50Seconds: r2(percentile(r.ready, 50)), readyP90Seconds: r2(percentile(r.ready, 90)), deleteP50Seconds: r2(percentile(r.deleted, 50)), deleteP90Seconds: r2(percentile(r.deleted, 90)), ...settingsJson(args) } }),
    ].join('\n');
    failed = r.failures.length > 0;
  } else {
    const results: SizeResult[] = [];
    for (const n of args.sizes) {
      results.push(await runSize(env, args, n));
      // Every size's line, for runs over several; stdout still ends with the last one.
      log(`N=${n}: ${sizeJson(results.at(-1)!, args)}`);
    }
    output = `${sizeTables(results, args)}\n\n${sizeJson(results.at(-1)!, args)}`;
  }
} catch (err) {
  failed = true;
  log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
} finally {
  env.sampler.stop();
  await env.proxy.stop();
  await env.backends.stop().catch(() => undefined);
  if (!args.keep && !failed) await rm(dir, { recursive: true, force: true });
}
if (output) process.stdout.write(`\n${output}\n`);
process.exit(failed ? 1 : 0);

// The whole system as separate processes on real backends, shared by
// `npm run sandbox` (sandbox/main.ts) and the soak (sandbox/soak/engine.ts):
// the Temporal dev server (optionally on a database file), moto behind the
// fault proxy, kube-apiserver + etcd with the CRD, a seeded EC2 world with one
// Node per instance, the shipped RBAC (sandbox/deploy, an overlay of deploy/),
// and as child processes the control worker and the watcher, authenticated as
// their shipped ServiceAccounts, and one node agent per node on its own
// simulated host (its kubeconfig serves only the simulated kubelet beside it).
//
// Every child is a Component that can be killed (SIGKILL) and started again
// with the same environment and log file; node agents can be added and
// removed as instances come and go.
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startBackends, type Backends } from '../backends/index.js';
import { PROJECT_ROOT, type ManagedProcess } from '../backends/tools.js';
import { startEntryPoint } from '../entry-point.js';
import { DEFAULT_REGION, makeEc2Client } from '../ec2/client.js';
import { startFaultProxy, type FaultProxy } from '../ec2/fault-proxy.js';
import { seedWorld, type World } from '../ec2/seed.js';
import { installDeployment, serviceAccountKubeConfigFile } from '../kube-install.js';
import { registerNodes, type NodeForInstance } from '../kube-nodes.js';
import { waitForPollers, type QueueToWatch } from '../pollers.js';
import { DEFAULT_CONTROL_TASK_QUEUE, nodeTaskQueue } from '../../common/names.js';

export interface StackNode extends NodeForInstance {
  primaryMac: string;
  labels: Record<string, string>;
}

export type ComponentKind = 'control-worker' | 'watcher' | 'node-agent';

export interface Component {
  readonly name: string;
  readonly kind: ComponentKind;
  readonly logFile: string;
  /** The node a node agent serves. */
  readonly node?: string;
  /** How many times it was started. */
  readonly starts: number;
  /** The current process, if one was started. */
  readonly proc: ManagedProcess | undefined;
  running(): boolean;
  /** Starts a fresh process (same environment, same log file, appended). No-op while one runs. */
  start(): void;
  /** SIGKILL, as a crashed pod or machine; resolves once the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM (graceful drain, SIGKILL after 10 s); resolves once the process is gone. */
  stop(): Promise<void>;
}

export interface StackOptions {
  /** State directory: logs/, kube/, kubeconfig, env. */
  dir: string;
  ui?: boolean;
  /** Temporal keeps its history in this SQLite file (and survives restarts on it). */
  temporalDbFile?: string;
  /** Seed of the fault proxy's random sequence (random when absent). */
  proxySeed?: number;
  /** Where the fault proxy forwards to, given moto's endpoint (default moto itself; the soak puts a recorder in between). */
  proxyTarget?: (motoEndpoint: string) => Promise<string>;
  /** EC2 instances to seed, one Node each. */
  instances: number;
  /** Node name of seeded instance i. */
  nodeName?: (i: number) => string;
  nodeLabels: (i: number) => Record<string, string>;
  controlEnv?: Record<string, string>;
  watcherEnv?: Record<string, string>;
  /**
   * Where the simulated instances (the platform, not the system) read EC2:
   * through the fault proxy like the system (default), or moto directly so
   * that faults and request counts concern only the system's own calls.
   */
  platformEc2?: 'proxy' | 'moto';
  logLevel?: string;
  /**
   * A build of the project (sandbox/build-dist.ts): the components run from it as the image runs
   * them (compiled, with the prebuilt workflow bundle and the manifests' Node.js flags), so a
   * restart takes what it takes in production; from the TypeScript source when absent.
   */
  dist?: Promise<string>;
  /** A child exited without the stack stopping or killing it. */
  onUnexpectedExit?: (c: Component, code: number | null, signal: NodeJS.Signals | null) => void;
}

export interface Stack {
  readonly backends: Backends;
  readonly proxy: FaultProxy;
  readonly world: World;
  readonly nodes: StackNode[];
  /** Environment every child gets (Temporal, EC2 through the proxy, kubeconfig). */
  readonly env: Record<string, string>;
  readonly kubeconfig: string;
  readonly controlWorker: Component;
  readonly watcher: Component;
  /** Node agents by node name. */
  readonly agents: Map<string, Component>;
  /** Registers the Node (or relabels it) and starts its agent. */
  addNode(node: StackNode): Promise<Component>;
  /** Every worker polls its task queue (control and each running node agent). */
  waitForPollers(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface StackHandle {
  /** Starts everything; rejects (after stopping what did start) when something fails. */
  start(): Promise<Stack>;
  /** Stops whatever was started so far: children first, then proxy and backends. */
  stop(): Promise<void>;
}

export const defaultNodeName = (i: number) => `ip-10-0-${i}-10.ec2.internal`;

/** The sandbox's install: the shipped deploy/ with per-pod resctrl groups on. */
export const SANDBOX_INSTALL_OVERLAY = path.join(PROJECT_ROOT, 'sandbox', 'deploy');

export function createStack(opts: StackOptions): StackHandle {
  const components: Component[] = [];
  let backends: Backends | undefined;
  let proxy: FaultProxy | undefined;
  let stopping = false;

  const stop = async () => {
    stopping = true;
    await Promise.allSettled(components.map((c) => c.stop()));
    await proxy?.stop().catch(() => undefined);
    await backends?.stop().catch(() => undefined);
  };

  const start = async (): Promise<Stack> => {
    await mkdir(path.join(opts.dir, 'logs'), { recursive: true });
    const b = (backends = await startBackends({ dir: opts.dir, ui: opts.ui, temporalDbFile: opts.temporalDbFile }));
    try {
      const p = (proxy = await startFaultProxy({ target: opts.proxyTarget ? await opts.proxyTarget(b.moto.endpoint) : b.moto.endpoint, seed: opts.proxySeed }));
      const ec2 = makeEc2Client({ endpoint: p.endpoint, maxAttempts: 3 });
      const world = await seedWorld(ec2, { instances: opts.instances });
      const nodeName = opts.nodeName ?? defaultNodeName;
      const nodes: StackNode[] = world.instances.map((inst, i) => ({
        name: nodeName(i),
        instanceId: inst.id,
        az: inst.az,
        primaryMac: inst.primaryMac,
        labels: opts.nodeLabels(i),
      }));
      await registerNodes(b.kube.kubeConfig(), nodes);

      const kubeconfig = path.join(opts.dir, 'kubeconfig');
      await copyFile(b.kube.kubeconfigPath, kubeconfig);
      // Installed as a cluster admin would; the watcher and the control worker then run as the shipped ServiceAccounts.
      await installDeployment(b.kube.kubeConfig(), SANDBOX_INSTALL_OVERLAY);
      const tokenLifetime = 7 * 24 * 3600;
      const controlKubeconfig = await serviceAccountKubeConfigFile(b.kube.kubeConfig(), 'nodeeni-control-worker', opts.dir, tokenLifetime);
      const watcherKubeconfig = await serviceAccountKubeConfigFile(b.kube.kubeConfig(), 'nodeeni-watcher', opts.dir, tokenLifetime);
      const env: Record<string, string> = {
        TEMPORAL_ADDRESS: b.temporal.address,
        TEMPORAL_NAMESPACE: b.temporal.namespace,
        TEMPORAL_UI_URL: b.temporal.uiUrl ?? '',
        AWS_ENDPOINT_URL_EC2: p.endpoint,
        AWS_REGION: DEFAULT_REGION,
        AWS_ACCESS_KEY_ID: 'testing',
        AWS_SECRET_ACCESS_KEY: 'testing',
        KUBECONFIG: kubeconfig,
      };
      await writeFile(path.join(opts.dir, 'env'), Object.entries(env).map(([k, v]) => `${k}=${v}`).join('\n') + '\n');

      const dist = await opts.dist;
      const component = (name: string, kind: ComponentKind, script: string, extra: Record<string, string>, node?: string): Component => {
        const logFile = path.join(opts.dir, 'logs', `${name}.log`);
        let proc: ManagedProcess | undefined;
        let starts = 0;
        /** Set while the stack itself ends the process, so its exit is expected. */
        let ending = false;
        const c: Component = {
          name, kind, logFile, node,
          get starts() { return starts; },
          get proc() { return proc; },
          running: () => proc !== undefined && proc.child.exitCode === null && proc.child.signalCode === null,
          start() {
            if (stopping || c.running()) return;
            ending = false;
            starts++;
            const started = startEntryPoint(name, script.replace(/\.ts$/, ''), {
              dist, logFile, env: { ...env, ...extra, LOG_LEVEL: opts.logLevel ?? 'INFO' }, shippedAs: kind === 'node-agent' ? 'workers/node-agent' : undefined,
            });
            proc = started;
            started.child.once('exit', (code, signal) => {
              if (!stopping && !ending && proc === started) opts.onUnexpectedExit?.(c, code, signal);
            });
          },
          async kill() {
            const current = proc;
            if (!current || !c.running()) return;
            ending = true;
            current.child.kill('SIGKILL');
            await current.stop();
          },
          async stop() {
            const current = proc;
            if (!current) return;
            ending = true;
            await current.stop();
          },
        };
        components.push(c);
        return c;
      };

      const controlWorker = component('control-worker', 'control-worker', 'workers/control.ts', {
        CONTROL_TASK_QUEUE: DEFAULT_CONTROL_TASK_QUEUE, KUBECONFIG: controlKubeconfig,
        // The watcher's cluster name below: the leaked-ENI sweeper looks at the ENIs tagged with it.
        CLUSTER_NAME: 'sandbox',
        // The simulated plugin pods run in kube-system, the namespace the base grants the restart in.
        DEVICE_PLUGIN_NAMESPACES: 'kube-system',
        ...opts.controlEnv,
      });
      const watcher = component('watcher', 'watcher', 'watcher/main.ts', {
        CONTROL_TASK_QUEUE: DEFAULT_CONTROL_TASK_QUEUE, KUBECONFIG: watcherKubeconfig, CLUSTER_NAME: 'sandbox', DETACH_TIMEOUT_SECONDS: '30', NODE_AGENT_START_TIMEOUT_SECONDS: '30',
        RESCTRL_ENABLED: 'true', RESCTRL_RESYNC_SECONDS: '5',
        ...(b.temporal.uiUrl ? { TEMPORAL_UI_URL: b.temporal.uiUrl } : {}),
        ...opts.watcherEnv,
      });
      const agents = new Map<string, Component>();
      const platformEndpoint = opts.platformEc2 === 'moto' ? b.moto.endpoint : p.endpoint;
      const agentFor = (n: StackNode): Component => {
        const existing = agents.get(n.name);
        if (existing) return existing;
        const a = component(`node-agent-${n.name.split('.')[0]}`, 'node-agent', 'sandbox/sim-node-agent.ts', {
          NODE_NAME: n.name, SIM_INSTANCE_ID: n.instanceId, SIM_PRIMARY_MAC: n.primaryMac, AWS_ENDPOINT_URL_EC2: platformEndpoint,
        }, n.name);
        agents.set(n.name, a);
        return a;
      };

      controlWorker.start();
      watcher.start();
      for (const n of nodes) agentFor(n).start();

      const stack: Stack = {
        backends: b, proxy: p, world, nodes, env, kubeconfig, controlWorker, watcher, agents,
        async addNode(n) {
          await registerNodes(b.kube.kubeConfig(), [n]);
          if (!nodes.some((x) => x.name === n.name)) nodes.push(n);
          const a = agentFor(n);
          a.start();
          return a;
        },
        async waitForPollers(timeoutMs) {
          const queues: QueueToWatch[] = [
            { name: DEFAULT_CONTROL_TASK_QUEUE, kind: 'workflow' },
            ...[...agents.values()].filter((a) => a.running()).map((a) => ({ name: nodeTaskQueue(a.node!), kind: 'activity' as const })),
          ];
          await waitForPollers(b.temporal.address, b.temporal.namespace, queues, timeoutMs);
        },
        stop,
      };
      // "Ready" means every worker is polling its task queue, not merely started.
      await stack.waitForPollers();
      return stack;
    } catch (err) {
      await stop();
      throw err;
    }
  };

  return { start, stop };
}

// `npm run sandbox`: the whole system on this machine. Real Temporal (with UI
// and a database file), moto behind our fault proxy, a real kube-apiserver +
// etcd with the CRD, three Nodes backed by EC2 instances, the watcher, the
// control worker, and one node agent per node on its own simulated host.
import { copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startBackends } from './backends/index.js';
import { PROJECT_ROOT, startTsProcess, type ManagedProcess } from './backends/tools.js';
import { DEFAULT_REGION, makeEc2Client } from './ec2/client.js';
import { startFaultProxy } from './ec2/fault-proxy.js';
import { seedWorld } from './ec2/seed.js';
import { registerNodes } from './kube-nodes.js';
import { waitForPollers } from './pollers.js';
import { nodeTaskQueue } from '../common/names.js';

const dir = path.resolve(process.env.NODEENI_SANDBOX_DIR ?? path.join(PROJECT_ROOT, '.sandbox'));
const say = (msg: string) => process.stdout.write(`[sandbox] ${msg}\n`);
const started = Date.now();

await mkdir(path.join(dir, 'logs'), { recursive: true });
// Temporal keeps its history across restarts; etcd and moto start fresh and are seeded again.
await rm(path.join(dir, 'kube'), { recursive: true, force: true });
say(`starting Temporal, moto and kube-apiserver + etcd (state in ${dir})`);
const backends = await startBackends({ dir, ui: true, temporalDbFile: path.join(dir, 'temporal.db') });
const proxy = await startFaultProxy({ target: backends.moto.endpoint });
const children: ManagedProcess[] = [];
let stopping = false;

async function shutdown(code: number): Promise<never> {
  stopping = true;
  say('stopping');
  await Promise.allSettled(children.map((c) => c.stop()));
  await proxy.stop().catch(() => undefined);
  await backends.stop().catch(() => undefined);
  say('stopped');
  process.exit(code);
}
process.once('SIGINT', () => void shutdown(0));
process.once('SIGTERM', () => void shutdown(0));

try {
  const ec2 = makeEc2Client({ endpoint: proxy.endpoint, maxAttempts: 3 });
  const world = await seedWorld(ec2, { instances: 3 });
  // Two of three nodes carry ng=multi-eni, in different zones, as the examples expect.
  const nodes = world.instances.map((inst, i) => ({
    name: `ip-10-0-${i}-10.ec2.internal`,
    instanceId: inst.id,
    az: inst.az,
    primaryMac: inst.primaryMac,
    labels: { ng: i === 1 ? 'general' : 'multi-eni', 'node.kubernetes.io/instance-type': 'm5.xlarge' },
  }));
  await registerNodes(backends.kube.kubeConfig(), nodes);

  const kubeconfig = path.join(dir, 'kubeconfig');
  await copyFile(backends.kube.kubeconfigPath, kubeconfig);
  const env: Record<string, string> = {
    TEMPORAL_ADDRESS: backends.temporal.address,
    TEMPORAL_NAMESPACE: backends.temporal.namespace,
    TEMPORAL_UI_URL: backends.temporal.uiUrl ?? '',
    AWS_ENDPOINT_URL_EC2: proxy.endpoint,
    AWS_REGION: DEFAULT_REGION,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    KUBECONFIG: kubeconfig,
  };
  await writeFile(path.join(dir, 'env'), Object.entries(env).map(([k, v]) => `${k}=${v}`).join('\n') + '\n');

  const run = (name: string, script: string, extra: Record<string, string> = {}) => {
    const logFile = path.join(dir, 'logs', `${name}.log`);
    const p = startTsProcess(name, script, {
      env: { ...env, ...extra, LOG_LEVEL: 'INFO' },
      logFile,
    });
    p.child.once('exit', (code) => {
      // Ctrl-C in a terminal reaches the whole process group: children that drained and exited 0 are fine.
      if (!stopping && code !== 0) {
        say(`${name} exited with ${code}; see ${logFile}\n${p.tail()}`);
        void shutdown(1);
      }
    });
    children.push(p);
  };
  run('control-worker', 'workers/control.ts', { CONTROL_TASK_QUEUE: 'nodeeni-control' });
  run('watcher', 'watcher/main.ts', {
    CONTROL_TASK_QUEUE: 'nodeeni-control', CLUSTER_NAME: 'sandbox', DETACH_TIMEOUT_SECONDS: '30', NODE_AGENT_START_TIMEOUT_SECONDS: '30',
    RESCTRL_ENABLED: 'true', RESCTRL_RESYNC_SECONDS: '5',
  });
  for (const n of nodes) {
    run(`node-agent-${n.name.split('.')[0]}`, 'sandbox/sim-node-agent.ts', { NODE_NAME: n.name, SIM_INSTANCE_ID: n.instanceId, SIM_PRIMARY_MAC: n.primaryMac });
  }

  // "Ready" means every worker is polling its task queue, not merely started.
  await waitForPollers(backends.temporal.address, backends.temporal.namespace, [
    { name: 'nodeeni-control', kind: 'workflow' },
    ...nodes.map((n) => ({ name: nodeTaskQueue(n.name), kind: 'activity' as const })),
  ]);
  say(`ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  say(`Temporal UI:   ${backends.temporal.uiUrl}`);
  say(`kubeconfig:    ${kubeconfig}   (environment for tools: ${path.join(dir, 'env')})`);
  say(`nodes:         ${nodes.map((n) => `${n.name} (${n.az}, ${n.instanceId}, ng=${n.labels.ng})`).join(', ')}`);
  say(`try:           KUBECONFIG=${kubeconfig} .tools/venv/bin/kubectl apply -f deploy/examples/01-plain-eni.yaml`);
  say(`               KUBECONFIG=${kubeconfig} .tools/venv/bin/kubectl get nodeenis -w`);
  say(`               KUBECONFIG=${kubeconfig} .tools/venv/bin/kubectl apply -f deploy/examples/05-resctrl-pod.yaml   (per-pod resctrl group; see its Events)`);
  say(`logs:          ${path.join(dir, 'logs')}/   Ctrl-C stops everything`);
  say('sandbox ready');
} catch (err) {
  say(`failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  await shutdown(1);
}


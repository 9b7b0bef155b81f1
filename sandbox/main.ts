// `npm run sandbox`: the whole system on this machine. Real Temporal (with UI
// and a database file), moto behind our fault proxy, a real kube-apiserver +
// etcd with the CRD, three Nodes backed by EC2 instances, the watcher, the
// control worker, and one node agent per node on its own simulated host
// (started by sandbox/soak/stack.ts, which the soak shares).
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { PROJECT_ROOT } from './backends/tools.js';
import { createStack } from './soak/stack.js';

const dir = path.resolve(process.env.NODEENI_SANDBOX_DIR ?? path.join(PROJECT_ROOT, '.sandbox'));
const say = (msg: string) => process.stdout.write(`[sandbox] ${msg}\n`);
const started = Date.now();

await mkdir(path.join(dir, 'logs'), { recursive: true });
// Temporal keeps its history across restarts; etcd and moto start fresh and are seeded again.
await rm(path.join(dir, 'kube'), { recursive: true, force: true });
say(`starting Temporal, moto and kube-apiserver + etcd (state in ${dir})`);
const handle = createStack({
  dir,
  ui: true,
  temporalDbFile: path.join(dir, 'temporal.db'),
  instances: 3,
  // Two of three nodes carry ng=multi-eni, in different zones, as the examples expect.
  nodeLabels: (i) => ({ ng: i === 1 ? 'general' : 'multi-eni', 'node.kubernetes.io/instance-type': 'm5.xlarge' }),
  onUnexpectedExit: (c, code) => {
    // Ctrl-C in a terminal reaches the whole process group: children that drained and exited 0 are fine.
    if (code !== 0) {
      say(`${c.name} exited with ${code}; see ${c.logFile}\n${c.proc?.tail() ?? ''}`);
      void shutdown(1);
    }
  },
});
let stopping = false;

async function shutdown(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    say('stopping');
    await handle.stop();
    say('stopped');
  }
  process.exit(code);
}
process.once('SIGINT', () => void shutdown(0));
process.once('SIGTERM', () => void shutdown(0));

try {
  const { backends, kubeconfig, nodes } = await handle.start();
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
  if (!stopping) {
    say(`failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    await shutdown(1);
  }
}

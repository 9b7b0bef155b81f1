// Benchmark: per-pod resctrl groups for N pods on one simulated node, on the
// real backends. Prints the time from the first pod's creation until every
// pod's containers are reconciled, and the events emitted per pod.
//   npm run bench:resctrl            (N = 100)
//   npm run bench:resctrl -- 200
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { startBackends } from '../sandbox/backends/index.js';
import { PROJECT_ROOT } from '../sandbox/backends/tools.js';
import { startFaultProxy } from '../sandbox/ec2/fault-proxy.js';
import { resctrlWorkflowId } from '../common/names.js';
import { resctrlStateQuery } from '../common/workflow-api.js';
import { counts } from '../workflows/resctrl-state.js';
import { createTestCluster, eventually } from '../test/support/cluster.js';
import { ensureNamespace, runPod } from '../test/support/pods.js';

const n = Number(process.argv[2] ?? 100);
const dir = await mkdtemp(path.join(PROJECT_ROOT, '.tmp', 'bench-'));
const backends = await startBackends({ dir });
const proxy = await startFaultProxy({ target: backends.moto.endpoint });
try {
  const c = await createTestCluster({
    backends: {
      temporalAddress: backends.temporal.address,
      temporalNamespace: backends.temporal.namespace,
      motoEndpoint: backends.moto.endpoint,
      ec2Endpoint: proxy.endpoint,
      kube: { server: backends.kube.server, token: backends.kube.token, caData: backends.kube.caData, kubeconfigPath: backends.kube.kubeconfigPath },
    },
    instances: 1,
    resctrl: {
      options: { groupPrefix: 'pod_', cleanupOnStart: true, mode: 'monitor', resyncSeconds: 10, nodeAgentStartTimeoutMs: 30_000, maxHistoryLength: 20_000 },
      host: { resctrl: { numRmids: 512 } },
    },
  });
  const node = c.nodes[0]!;
  const ns = `${c.runId}-bench`;
  await ensureNamespace(c.core, ns);
  const t0 = Date.now();
  for (let i = 0; i < n; i++) {
    await runPod(c.core, node.host, { namespace: ns, name: `p${i}`, node: node.name, qos: i % 3 === 0 ? 'Guaranteed' : i % 3 === 1 ? 'Burstable' : 'BestEffort', containers: [{ name: 'app', threads: 4 }, { name: 'sidecar', threads: 2 }] });
  }
  const created = Date.now() - t0;
  const view = await eventually('all reconciled', async () => {
    const v = await c.client.workflow.getHandle(resctrlWorkflowId(node.name)).query(resctrlStateQuery);
    const pods = Object.values(v.state.pods);
    return pods.length === n && pods.every((p) => counts(p).reconciled === 2) && v;
  }, 600_000);
  const reconciled = Date.now() - t0;
  const perPod = view.events.length / n;
  process.stdout.write(`\n| pods | threads per pod | pods created (API) | all reconciled | events per pod |\n|---|---|---|---|---|\n| ${n} | 6 | ${(created / 1000).toFixed(1)} s | ${(reconciled / 1000).toFixed(1)} s | ${perPod.toFixed(2)} |\n`);
  await c.dispose();
} finally {
  await proxy.stop();
  await backends.stop();
  await rm(dir, { recursive: true, force: true });
}
process.exit(0);

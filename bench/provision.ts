// Benchmark: time from creating a NodeENI to Ready, and from deleting it to
// gone, for clusters of N simulated nodes on the real backends (Temporal dev
// server, moto behind the fault proxy, kube-apiserver + etcd). Also counts the
// EC2 calls per attachment. Prints a table; asserts nothing.
//   npm run bench            (N = 3, 10, 20)
//   npm run bench -- 5 40    (other sizes)
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { startBackends } from '../sandbox/backends/index.js';
import { PROJECT_ROOT } from '../sandbox/backends/tools.js';
import { startFaultProxy } from '../sandbox/ec2/fault-proxy.js';
import { createTestCluster, eventually } from '../test/support/cluster.js';
import { enisOf, isReady } from '../test/support/inspect.js';

const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
const dir = await mkdtemp(path.join(PROJECT_ROOT, '.tmp', 'bench-'));
const backends = await startBackends({ dir });
const proxy = await startFaultProxy({ target: backends.moto.endpoint });
const provided = {
  temporalAddress: backends.temporal.address,
  temporalNamespace: backends.temporal.namespace,
  motoEndpoint: backends.moto.endpoint,
  ec2Endpoint: proxy.endpoint,
  kube: { server: backends.kube.server, token: backends.kube.token, caData: backends.kube.caData, kubeconfigPath: backends.kube.kubeconfigPath },
};

const rows: string[] = [];
try {
  for (const n of sizes.length ? sizes : [3, 10, 20]) {
    const c = await createTestCluster({ backends: provided, instances: n });
    await c.fault.clear(); // count only what the system does, not the seeding
    const t0 = Date.now();
    const obj = await c.createNodeEni('bench', { subnetNames: ['multus-a', 'multus-b'], securityGroupNames: ['multus-sg'], mtu: 9001 });
    await eventually('Ready', async () => isReady(await c.getNodeEni('bench'), n), 600_000);
    const ready = Date.now() - t0;
    const enis = (await enisOf(c.ec2, obj.metadata.uid)).length;
    const counts = await c.fault.counts(c.account);
    const calls = Object.values(counts).reduce((a, b) => a + b, 0);
    const t1 = Date.now();
    await c.deleteNodeEni('bench');
    await eventually('deleted', async () => (await c.getNodeEni('bench')) === undefined, 600_000);
    const gone = Date.now() - t1;
    const total = Object.values(await c.fault.counts(c.account)).reduce((a, b) => a + b, 0);
    rows.push(`| ${n} | ${enis} | ${(ready / 1000).toFixed(1)} s | ${(gone / 1000).toFixed(1)} s | ${(calls / n).toFixed(1)} | ${((total - calls) / n).toFixed(1)} |`);
    await c.dispose();
  }
} finally {
  await proxy.stop();
  await backends.stop();
  await rm(dir, { recursive: true, force: true });
}
process.stdout.write(`\n| nodes | ENIs | create → Ready | delete → gone | EC2 calls per node to Ready | EC2 calls per node to delete |\n|---|---|---|---|---|---|\n${rows.join('\n')}\n`);
process.exit(0);

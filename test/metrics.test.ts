// Our Prometheus metrics end to end: the control worker runs as its own
// process from its entry point with METRICS_BIND_ADDRESS, a NodeENI is
// provisioned (its first attach throttled by the fault proxy) and deleted, and
// the worker's /metrics is scraped. The Grafana dashboard is checked to chart
// every metric common/metrics.ts defines.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HISTOGRAM_BUCKETS, METRICS } from '../common/metrics.js';
import { freePort, PROJECT_ROOT, type ManagedProcess } from '../sandbox/backends/tools.js';
import { MOTO_DEFAULT_ACCOUNT } from '../sandbox/ec2/client.js';
import { createTestCluster, eventually, type TestCluster } from './support/cluster.js';
import { isReady } from './support/inspect.js';
import { controlWorkerProcess } from './support/processes.js';

interface Sample {
  labels: Record<string, string>;
  value: number;
}

/** The samples of one metric in Prometheus' text format. */
function samples(text: string, name: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ labels, value: Number(m[3]) });
  }
  return out;
}

/** Sum of the samples whose labels include `where`. */
function total(text: string, name: string, where: Record<string, string> = {}): number {
  return samples(text, name)
    .filter((s) => Object.entries(where).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

describe('Prometheus metrics of the control worker', () => {
  let c: TestCluster;
  let worker: ManagedProcess | undefined;
  let metricsUrl = '';
  const scrape = async () => (await fetch(metricsUrl)).text();

  beforeAll(async () => {
    // The worker process calls EC2 as moto's default account (it sends no account header).
    c = await createTestCluster({ account: MOTO_DEFAULT_ACCOUNT, instances: 1, controlWorker: false });
    const port = await freePort();
    metricsUrl = `http://127.0.0.1:${port}/metrics`;
    // The process inherits this environment (controlWorkerProcess adds its own on top): the
    // metrics endpoint is configured exactly as the Deployment configures it.
    process.env.METRICS_BIND_ADDRESS = `127.0.0.1:${port}`;
    worker = await controlWorkerProcess(c);
    delete process.env.METRICS_BIND_ADDRESS;
  });
  afterAll(async () => {
    await worker?.stop();
    await c?.fault.clear();
    await c?.dispose();
  });

  it('counts a provisioning, a throttled attach and a teardown, with durations and per-NodeENI gauges', async () => {
    // One throttled AttachNetworkInterface: the activity fails with RequestLimitExceeded and is retried.
    await c.fault.addRules({ action: 'AttachNetworkInterface', code: 'RequestLimitExceeded', httpStatus: 503, count: 1, account: c.account });
    const node = c.nodes[0]!;
    const obj = await c.createNodeEni('metrics', { nodeSelector: { 'nodeeni-test': c.runId, 'kubernetes.io/hostname': node.name }, subnetNames: ['multus-a'], securityGroupNames: ['multus-sg'] });
    const name = obj.metadata.name;
    await eventually('Ready', async () => isReady(await c.getNodeEni('metrics'), 1), 150_000).catch(async (err: unknown) => {
      throw new Error(`${String(err)}; status: ${JSON.stringify((await c.getNodeEni('metrics'))?.status)}; worker: ${worker?.tail()}`);
    });

    // Workflows emit after their task completes; the entity sets its gauges on the pass that writes Ready.
    const afterProvision = await eventually('provision metrics', async () => {
      const text = await scrape();
      return total(text, METRICS.provisions.name, { outcome: 'ok' }) >= 1 && total(text, METRICS.attachmentsReady.name, { nodeeni: name }) === 1 ? text : undefined;
    }, 30_000);
    expect(total(afterProvision, METRICS.provisions.name, { outcome: 'ok', reason: 'None' })).toBe(1);
    expect(total(afterProvision, METRICS.provisions.name, { outcome: 'failed' })).toBe(0);
    expect(total(afterProvision, `${METRICS.provisionDuration.name}_count`, { outcome: 'ok' })).toBe(1);
    const provisionSeconds = total(afterProvision, `${METRICS.provisionDuration.name}_sum`, { outcome: 'ok' });
    expect(provisionSeconds).toBeGreaterThan(0);
    expect(provisionSeconds).toBeLessThan(150);
    // Our buckets (seconds), not the exporter's default ones.
    const les = samples(afterProvision, `${METRICS.provisionDuration.name}_bucket`).map((s) => s.labels.le);
    expect(les).toContain(String(HISTOGRAM_BUCKETS[METRICS.provisionDuration.name]![0]));
    // The throttled attach: an EC2 error and a throttled call, by action and code, from the activity's meter.
    const throttled = { operation: 'AttachNetworkInterface', code: 'RequestLimitExceeded' };
    expect(total(afterProvision, METRICS.ec2Throttled.name, throttled)).toBe(1);
    expect(total(afterProvision, METRICS.ec2Errors.name, throttled)).toBe(1);
    expect(samples(afterProvision, METRICS.ec2Throttled.name)[0]!.labels).toMatchObject({ activityType: 'attachEni' });
    expect(total(afterProvision, METRICS.attachmentsDesired.name, { nodeeni: name })).toBe(1);
    expect(total(afterProvision, METRICS.enisManaged.name, { nodeeni: name })).toBe(1);
    const passAt = total(afterProvision, METRICS.entityPass.name, { nodeeni: name });
    expect(Math.abs(passAt - Date.now() / 1000)).toBeLessThan(120);
    // Ours keep their names; the SDK's carry the runtime's prefix.
    expect(afterProvision).toMatch(/^temporal_\w+/m);
    expect(afterProvision).not.toMatch(/^temporal_nodeeni_/m);

    await c.deleteNodeEni('metrics');
    await eventually('deleted', async () => (await c.getNodeEni('metrics')) === undefined, 90_000);
    const afterTeardown = await eventually('teardown metrics', async () => {
      const text = await scrape();
      // The gauges drop to zero in the entity's last workflow task, just after the finalizer went: the object can be gone before.
      return total(text, METRICS.teardowns.name, { outcome: 'ok' }) >= 1 && total(text, METRICS.attachmentsDesired.name, { nodeeni: name }) === 0 &&
        total(text, METRICS.enisManaged.name, { nodeeni: name }) === 0 ? text : undefined;
    }, 30_000);
    expect(total(afterTeardown, METRICS.teardowns.name, { outcome: 'ok', reason: 'None' })).toBe(1);
    expect(total(afterTeardown, `${METRICS.teardownDuration.name}_count`, { outcome: 'ok' })).toBe(1);
    expect(total(afterTeardown, `${METRICS.teardownDuration.name}_sum`, { outcome: 'ok' })).toBeGreaterThan(0);
    expect(total(afterTeardown, METRICS.attachmentsReady.name, { nodeeni: name })).toBe(0);
    expect(total(afterTeardown, METRICS.enisManaged.name, { nodeeni: name })).toBe(0);
    expect(total(afterTeardown, METRICS.enisLeaked.name)).toBe(0);
    expect(total(afterTeardown, METRICS.provisions.name)).toBe(1);
  }, 300_000);
});

describe('Grafana dashboard', () => {
  const file = path.join(PROJECT_ROOT, 'deploy', 'grafana', 'nodeeni-dashboard.json');
  const dashboard = JSON.parse(readFileSync(file, 'utf8')) as {
    schemaVersion: number;
    templating: { list: Array<{ name: string; type: string; query?: unknown }> };
    panels: Array<{ type: string; title: string; datasource?: { uid?: string }; targets?: Array<{ expr: string }> }>;
  };
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));

  it('is a current dashboard on a Prometheus data source variable', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    expect(dashboard.templating.list.find((v) => v.name === 'datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    for (const p of dashboard.panels.filter((x) => x.type !== 'row')) expect(p.datasource?.uid, p.title).toBe('${datasource}');
  });

  it('charts every metric we define', () => {
    for (const m of Object.values(METRICS)) {
      const series = m.kind === 'histogram' ? `${m.name}_bucket` : m.name;
      expect(exprs.some((e) => e.includes(series)), series).toBe(true);
    }
    // Durations as quantiles.
    expect(exprs.filter((e) => e.startsWith('histogram_quantile(0.5') || e.startsWith('histogram_quantile(0.9')).length).toBe(4);
  });
});

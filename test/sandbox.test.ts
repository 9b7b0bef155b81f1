// `npm run sandbox` end to end: it starts from its command on its own servers,
// serves a NodeENI applied with kubectl from .sandbox/kubeconfig, and stops
// cleanly on SIGTERM.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT, TOOL, startTsProcess, waitUntil, type ManagedProcess } from '../sandbox/backends/tools.js';
import type { NodeENIObject } from '../common/types.js';

const run = promisify(execFile);
let sandbox: ManagedProcess | undefined;
let dir = '';

afterAll(async () => {
  await sandbox?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('sandbox', () => {
  it('starts, provisions an example applied with kubectl, and stops cleanly', async () => {
    dir = await mkdtemp(path.join(PROJECT_ROOT, '.tmp', 'sandbox-'));
    const started = Date.now();
    sandbox = startTsProcess('sandbox', 'sandbox/main.ts', {
      env: { NODEENI_SANDBOX_DIR: dir },
    });
    await waitUntil('sandbox ready', async () => sandbox!.tail().includes('[sandbox] sandbox ready'), { timeoutMs: 180_000, proc: sandbox });
    console.log(`sandbox ready in ${Date.now() - started} ms`);

    const env = Object.fromEntries((await readFile(path.join(dir, 'env'), 'utf8')).trim().split('\n').map((l) => l.split(/=(.*)/s).slice(0, 2)));
    for (const k of ['TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'TEMPORAL_UI_URL', 'AWS_ENDPOINT_URL_EC2', 'AWS_REGION', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'KUBECONFIG']) {
      expect(env[k], k).toBeTruthy();
    }
    expect(env.KUBECONFIG).toBe(path.join(dir, 'kubeconfig'));
    expect((await fetch(env.TEMPORAL_UI_URL!)).ok).toBe(true);

    const kubectl = (...args: string[]) => run(TOOL.kubectl, args, { env: { ...process.env, KUBECONFIG: env.KUBECONFIG } });
    await kubectl('apply', '-f', path.join(PROJECT_ROOT, 'deploy', 'examples', '01-plain-eni.yaml'));
    const applied = Date.now();
    let last: NodeENIObject | undefined;
    await waitUntil('example NodeENI Ready', async () => {
      last = JSON.parse((await kubectl('get', 'nodeeni', 'multus-eni', '-o', 'json')).stdout) as NodeENIObject;
      return last.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true && last.status.readyCount === 2;
    }, { timeoutMs: 120_000, proc: sandbox });
    console.log(`NodeENI Ready ${Date.now() - applied} ms after kubectl apply`);
    expect(last!.status!.attachments!.every((a) => a.phase === 'Ready' && a.interfaceName && a.pciAddress)).toBe(true);
    const table = (await kubectl('get', 'neni')).stdout;
    expect(table).toMatch(/multus-eni\s+True\s+2\s+2/);

    // DPDK + SR-IOV (examples 03 and 04) on the simulated hosts: bound, published, in allocatable.
    const sriovApplied = Date.now();
    await kubectl('apply', '-f', path.join(PROJECT_ROOT, 'deploy', 'examples', '03-sriov-kernel.yaml'), '-f', path.join(PROJECT_ROOT, 'deploy', 'examples', '04-dpdk-sriov.yaml'));
    const nodesWith = async (resource: string) => {
      const nodes = JSON.parse((await kubectl('get', 'nodes', '-l', 'ng=multi-eni', '-o', 'json')).stdout) as { items: { status: { allocatable?: Record<string, string> } }[] };
      return nodes.items.filter((n) => n.status.allocatable?.[resource] === '1').length;
    };
    await waitUntil('SR-IOV resources in allocatable on both nodes', async () =>
      (await nodesWith('intel.com/sriov_kernel_1')) === 2 && (await nodesWith('intel.com/sriov_dpdk_1')) === 2, { timeoutMs: 120_000, proc: sandbox });
    console.log(`SR-IOV + DPDK resources in allocatable ${Date.now() - sriovApplied} ms after kubectl apply`);
    let dpdk: NodeENIObject | undefined;
    await waitUntil('DPDK status', async () => {
      dpdk = JSON.parse((await kubectl('get', 'nodeeni', 'dpdk-sriov', '-o', 'json')).stdout) as NodeENIObject;
      return dpdk.status?.readyCount === 2;
    }, { timeoutMs: 60_000, proc: sandbox });
    expect(dpdk!.status!.attachments!.map((a) => [a.dpdkBound, a.dpdkDriver, a.dpdkResourceName])).toEqual([
      [true, 'vfio-pci', 'intel.com/sriov_dpdk_1'],
      [true, 'vfio-pci', 'intel.com/sriov_dpdk_1'],
    ]);

    // A pod on the first node gets its resctrl group, with both containers' threads (seed 004 events on the pod).
    await kubectl('apply', '-f', path.join(PROJECT_ROOT, 'deploy', 'examples', '05-resctrl-pod.yaml'));
    await waitUntil('resctrl events on the pod', async () => {
      const events = JSON.parse((await kubectl('get', 'events', '-n', 'default', '--field-selector', 'involvedObject.name=resctrl-demo', '-o', 'json')).stdout) as { items: { reason: string; message: string }[] };
      return events.items.some((e) => e.reason === 'ResctrlGroupUpdated' && e.message.includes('total_containers: 2, reconciled_containers: 2'));
    }, { timeoutMs: 60_000, proc: sandbox });

    sandbox.child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => sandbox!.child.once('exit', resolve));
    expect(code).toBe(0);
    expect(sandbox.tail()).toContain('[sandbox] stopped');
    await expect(fetch(env.TEMPORAL_UI_URL!)).rejects.toThrow();
  });
});

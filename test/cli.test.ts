// The operator CLI (bin/nodeeni, run as a process the way an operator runs
// it: KUBECONFIG, the AWS variables, TEMPORAL_ADDRESS) on a small cluster on
// the real backends: three NodeENIs, one Ready, one whose teardown keeps
// retrying a delete EC2 refuses, one whose teardown fails for good. `status`
// shows each with its ENIs in EC2 and its workflow, `explain` says why the
// stuck ones are not done and prints the force-finish that ends them, which
// works; `sweep` then finds what force-finish left: the detached ENI is
// deleted, the one still attached is not.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TAG } from '../common/names.js';
import type { NodeENIObject } from '../common/types.js';
import type { SweepResult } from '../common/workflow-api.js';
import { PROJECT_ROOT } from '../sandbox/backends/tools.js';
import { MOTO_DEFAULT_ACCOUNT } from '../sandbox/ec2/client.js';
import { ensureSweeperSchedule } from '../workers/sweeper-schedule.js';
import { entityView } from '../cli/operator-client.js';
import type { SweepRun } from '../cli/sweep.js';
import type { StatusRow } from '../cli/status.js';
import { createTestCluster, eventually, type TestCluster } from './support/cluster.js';
import { conditionOf, enisOf, isReady, tagOf } from './support/inspect.js';

const exec = promisify(execFile);
let c: TestCluster;
const SCHEDULE_ID = `nodeeni-sweeper-cli-${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  // The default moto account: the CLI's EC2 client is configured like an operator's, with no account header.
  c = await createTestCluster({ account: MOTO_DEFAULT_ACCOUNT });
});
afterAll(async () => {
  await c?.client.schedule.getHandle(SCHEDULE_ID).delete().catch(() => undefined);
  await c?.fault.clear();
  await c?.dispose();
});

/** bin/nodeeni with an operator's environment; resolves with stdout, or rejects with the exit code and output. */
async function nodeeni(...args: string[]): Promise<string> {
  const { stdout } = await exec(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'nodeeni'), ...args], {
    cwd: PROJECT_ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      TEMPORAL_ADDRESS: c.backends.temporalAddress,
      TEMPORAL_NAMESPACE: c.backends.temporalNamespace,
      KUBECONFIG: c.backends.kube.kubeconfigPath,
      AWS_REGION: 'us-east-1',
      AWS_ENDPOINT_URL_EC2: c.backends.ec2Endpoint,
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
    },
  });
  return stdout;
}

/** The rows of a CLI table as cells (columns are three or more spaces apart). */
function rowsOf(tableText: string): string[][] {
  return tableText.trimEnd().split('\n\n')[0]!.split('\n').map((l) => l.split(/ {3,}/));
}

const selector = () => `nodeeni-test=${c.runId}`;
const nodeEnis: Record<string, NodeENIObject> = {};
const eniOf: Record<string, string> = {};

async function readyOn(name: string, node: number): Promise<void> {
  nodeEnis[name] = await c.createNodeEni(name, { nodeSelector: { 'nodeeni-test': c.runId, 'kubernetes.io/hostname': c.nodes[node]!.name }, subnetNames: ['multus-a', 'multus-b'], securityGroupNames: ['multus-sg'] });
  await eventually(`${name} Ready`, async () => isReady(await c.getNodeEni(name), 1), 90_000);
  eniOf[name] = (await enisOf(c.ec2, nodeEnis[name]!.metadata.uid))[0]!.NetworkInterfaceId!;
}

describe('nodeeni status, explain, force-finish and sweep', () => {
  it('status: one row per NodeENI with its ENIs in EC2 and its entity workflow', async () => {
    await readyOn('ok', 0);
    await readyOn('stuck', 1);
    await readyOn('failing', 2);
    // stuck: EC2 keeps refusing to delete its ENI (retried); failing: the detach is refused for good (no permission).
    const [failingEni] = await enisOf(c.ec2, nodeEnis.failing!.metadata.uid);
    await c.fault.addRules([
      { action: 'DeleteNetworkInterface', account: c.account, match: { NetworkInterfaceId: eniOf.stuck! }, code: 'InternalError', message: 'injected: EC2 keeps failing' },
      { action: 'DetachNetworkInterface', account: c.account, match: { AttachmentId: failingEni!.Attachment!.AttachmentId! }, code: 'UnauthorizedOperation', message: 'injected: no permission' },
    ]);
    await c.deleteNodeEni('stuck');
    await c.deleteNodeEni('failing');
    await eventually('failing: TeardownFailed', async () => conditionOf(await c.getNodeEni('failing'), 'Degraded')?.reason === 'TeardownFailed', 60_000);
    await eventually('stuck: delete retried', async () => ((await c.fault.state()).rules.find((r) => r.match?.NetworkInterfaceId === eniOf.stuck)?.matched ?? 0) >= 2, 60_000);

    const table = await nodeeni('status', '-l', selector());
    console.log(`[cli] nodeeni status:\n${table}`);
    const rows = rowsOf(table);
    expect(rows[0]).toEqual(['NAME', 'READY', 'DESIRED', 'ENIs', 'IN-FLIGHT', 'FAILING', 'WORKFLOW']);
    const row = (name: string) => rows.find((r) => r[0] === nodeEnis[name]!.metadata.name);
    const wf = (name: string) => `nodeeni/${nodeEnis[name]!.metadata.name}/${nodeEnis[name]!.metadata.uid} (running)`;
    expect(row('ok')).toEqual([nodeEnis.ok!.metadata.name, 'True 1/1', '1', '1', '0', '0', wf('ok')]);
    expect(row('stuck')).toEqual([nodeEnis.stuck!.metadata.name, expect.stringMatching(/^(False|True|Unknown) /), '0', '1', '1', '0', wf('stuck')]);
    expect(row('failing')![3]).toBe('1');
    expect(Number(row('failing')![5])).toBeGreaterThanOrEqual(1);
    expect(rows).toHaveLength(4);

    const json = JSON.parse(await nodeeni('status', '-l', selector(), '--json')) as StatusRow[];
    expect(json.map((r) => r.name).sort()).toEqual(Object.values(nodeEnis).map((o) => o.metadata.name).sort());
    expect(json.find((r) => r.name === nodeEnis.ok!.metadata.name)).toMatchObject({ ready: 'True', readyCount: 1, desiredCount: 1, enis: 1, leaked: 0, workflow: 'running', inFlight: 0, failing: 0 });
  });

  it('explain: the step a teardown keeps retrying, a failed teardown with its attempts and next retry, what force-finish leaves, the command', async () => {
    const stuck = await nodeeni('explain', nodeEnis.stuck!.metadata.name);
    console.log(`[cli] nodeeni explain (retrying):\n${stuck}`);
    expect(stuck).toContain(', being deleted');
    const teardown = (await entityView(c.client, nodeEnis.stuck!.metadata.name)).inFlight.find((f) => f.op === 'teardown')!;
    expect(stuck).toContain(`teardown of ${eniOf.stuck} on ${c.nodes[1]!.name}: workflow ${teardown.workflowId}`);
    expect(stuck).toMatch(/keeps retrying deleteEni \(attempt \d+\): InternalError: .*injected: EC2 keeps failing; next try at /);
    expect(stuck).toContain(`leave behind in EC2, tagged leaked for the sweeper: ${eniOf.stuck}`);
    const command = stuck.split('\n').find((l) => l.trim().startsWith('nodeeni force-finish'))!.trim();
    expect(command).toBe(`nodeeni force-finish ${nodeEnis.stuck!.metadata.name} --reason "<why: ticket, decision>"`);

    const failing = await eventually('a failure record', async () => {
      const text = await nodeeni('explain', nodeEnis.failing!.metadata.name);
      return text.includes('failing steps') && text;
    }, 60_000);
    console.log(`[cli] nodeeni explain (failed):\n${failing}`);
    expect(failing).toMatch(new RegExp(`teardown of ${eniOf.failing}: UnauthorizedOperation: .*injected: no permission`));
    expect(failing).toMatch(/attempts \d+; next retry at \d{4}-\d\d-\d\dT/);
    expect(failing).toContain(`leave behind in EC2, tagged leaked for the sweeper: ${eniOf.failing}`);

    const ok = await nodeeni('explain', nodeEnis.ok!.metadata.name);
    expect(ok).toContain('Ready=True');
    expect(ok).toContain('nothing to force-finish');
  });

  it('the force-finish explain printed ends both; sweep (dry run, then for real) deletes the detached leftover and leaves the attached one', async () => {
    for (const name of ['stuck', 'failing']) {
      const out = JSON.parse(await nodeeni('force-finish', nodeEnis[name]!.metadata.name, '--reason', `cli test: ${name}`)) as { leftBehind: string[] };
      expect(out.leftBehind).toEqual([eniOf[name]]);
      await eventually(`${name} gone`, async () => (await c.getNodeEni(name)) === undefined, 60_000);
    }
    await c.fault.clear();
    const leftovers = [...await enisOf(c.ec2, nodeEnis.stuck!.metadata.uid), ...await enisOf(c.ec2, nodeEnis.failing!.metadata.uid)];
    expect(leftovers.map((e) => [e.NetworkInterfaceId, e.Status, tagOf(e, TAG.leaked)]).sort()).toEqual([
      [eniOf.stuck, 'available', 'cli test: stuck'],
      [eniOf.failing, 'in-use', 'cli test: failing'],
    ].sort());

    // The Schedule the control worker would keep, for this cluster; the CLI takes its settings from it.
    await ensureSweeperSchedule(c.client, { scheduleId: SCHEDULE_ID, taskQueue: c.taskQueue, enabled: false, intervalSeconds: 3600, sweep: { clusterName: c.runId, graceSeconds: 1800, dryRun: false } });
    // The leftovers are minutes old: within the schedule's grace period nothing is swept.
    const young = JSON.parse(await nodeeni('sweep', '--schedule', SCHEDULE_ID, '--json')) as SweepRun;
    expect(young.result.deleted).toEqual([]);
    expect(young.result.skipped.find((s) => s.eniId === eniOf.stuck)?.reason).toBe('TooYoung');

    const dry = await nodeeni('sweep', '--schedule', SCHEDULE_ID, '--dry-run', '--grace-seconds', '0');
    console.log(`[cli] nodeeni sweep --dry-run:\n${dry}`);
    const dryRows = rowsOf(dry);
    expect(dryRows[0]).toEqual(['ENI', 'RESULT', 'REASON', 'NODEENI', 'DETAIL']);
    expect(dryRows.find((r) => r[0] === eniOf.stuck)).toEqual([eniOf.stuck, 'would delete', 'Leaked', nodeEnis.stuck!.metadata.name, 'leaked: cli test: stuck']);
    expect(dryRows.find((r) => r[0] === eniOf.failing)?.slice(1, 3)).toEqual(['skipped', 'InUse']);
    expect(dryRows.find((r) => r[0] === eniOf.ok)?.slice(1, 3)).toEqual(['skipped', 'InUse']);
    expect(dry).toContain('Dry run: nothing was deleted.');
    expect((await enisOf(c.ec2, nodeEnis.stuck!.metadata.uid))).toHaveLength(1);

    const run = JSON.parse(await nodeeni('sweep', '--schedule', SCHEDULE_ID, '--grace-seconds', '0', '--json')) as SweepRun;
    const result: SweepResult = run.result;
    console.log(`[cli] nodeeni sweep: ${run.workflowId} in ${run.seconds.toFixed(2)} s: ${JSON.stringify(result.counts)}`);
    expect(run.workflowId).toMatch(new RegExp(`^${SCHEDULE_ID}/manual/`));
    expect(result.deleted.map((d) => [d.eniId, d.why])).toEqual([[eniOf.stuck, 'Leaked']]);
    expect(result.skipped.map((s) => [s.eniId, s.reason]).sort()).toEqual([[eniOf.failing, 'InUse'], [eniOf.ok, 'InUse']].sort());
    expect(await enisOf(c.ec2, nodeEnis.stuck!.metadata.uid)).toEqual([]);
    expect((await enisOf(c.ec2, nodeEnis.failing!.metadata.uid)).map((e) => e.NetworkInterfaceId)).toEqual([eniOf.failing]);
  });

  it('refuses what it cannot do with one clear line', async () => {
    await expect(nodeeni('explain', 'no-such-nodeeni')).rejects.toMatchObject({ stderr: expect.stringContaining('nodeeni: NodeENI no-such-nodeeni does not exist') });
    await expect(nodeeni('sweep', '--schedule', `${SCHEDULE_ID}-absent`)).rejects.toMatchObject({ stderr: expect.stringContaining('pass --cluster and --task-queue') });
    await expect(nodeeni('frobnicate')).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining('unknown command "frobnicate"') });
  });
});

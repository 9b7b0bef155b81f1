// Records real histories of every workflow type, on the real test backends, as
// replay fixtures: test/histories/<label>/<workflowType>-<scenario>.json plus
// index.json. test/replay-histories.test.ts replays them against the code in
// the tree, so a change that breaks running workflows fails the build.
//
// Record from a checkout of the version that runs in production, never from a
// tree with uncommitted workflow changes:
//   HISTORY_VERSION=v2 npm run record-histories        # label v2-<short HEAD>
//   HISTORY_LABEL=v2-1a2b3c4 npm run record-histories  # or name it yourself
// An existing label is kept unless HISTORY_OVERWRITE=1.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { historyToJSON, type History } from '@temporalio/common/lib/proto-utils.js';
import proto from '@temporalio/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forceFinish } from '../../cli/operator-client.js';
import { devicePluginWorkflowId, entityWorkflowId, resctrlWorkflowId } from '../../common/names.js';
import type { NodeENIObject } from '../../common/types.js';
import { createTestCluster, eventually, type ClusterOptions, type TestCluster } from '../support/cluster.js';
import { conditionOf, enisOf, isReady } from '../support/inspect.js';
import { ensureNamespace, runPod } from '../support/pods.js';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
// Messages by name, not by importing workflow modules: this file must keep compiling
// while the workflows move on, and the names are part of the running workflows' API.
const RECONCILE_SIGNAL = 'reconcile';
const DEVICE_PLUGIN_STATE_QUERY = 'devicePluginState';
const RESCTRL_STATE_QUERY = 'resctrlState';
type ResctrlOptions = NonNullable<ClusterOptions['resctrl']>['options'];
interface ResctrlView { events: Array<{ type: string; podUid: string; reconciledContainers?: number }> }
const EventType = proto.temporal.api.enums.v1.EventType;

export type FixtureStatus = 'running' | 'completed' | 'failed' | 'continued-as-new';
export interface FixtureEntry {
  file: string;
  workflowId: string;
  runId: string;
  workflowType: string;
  scenario: string;
  status: FixtureStatus;
  events: number;
}

const STATUS: Record<string, FixtureStatus> = { RUNNING: 'running', COMPLETED: 'completed', FAILED: 'failed', CONTINUED_AS_NEW: 'continued-as-new' };

/** Every scenario this recorder must produce (the chain adds chain-run1…N). */
const REQUIRED = [
  'nodeEniEntity-lifecycle', 'nodeEniEntity-idle', 'provisionAttachment-ok', 'provisionAttachment-compensated',
  'teardownAttachment-ok', 'teardownAttachment-force-finished', 'devicePluginNode-published', 'resctrlNode-two-pods',
  'nodeEniEntity-agent-away', 'provisionAttachment-lost-attach-answer',
];

function historyLabel(): string {
  let label = process.env.HISTORY_LABEL;
  if (!label) {
    const version = process.env.HISTORY_VERSION;
    if (!version) throw new Error('set HISTORY_VERSION (e.g. v2: the label becomes v2-<short HEAD>) or HISTORY_LABEL');
    label = `${version}-${git('rev-parse', '--short', 'HEAD').trim()}`;
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(label)) throw new Error(`bad history label "${label}"`);
  return label;
}

function git(...args: string[]): string {
  return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' });
}

const label = historyLabel();
const outDir = path.join(import.meta.dirname, label);
const recorded = new Map<string, { entry: FixtureEntry; json: string }>();

beforeAll(() => {
  // The fixtures must be what the committed version does, not work in progress.
  const dirty = git('status', '--porcelain', '--', 'workflows', 'common', 'activities').trim();
  if (dirty && process.env.HISTORY_ALLOW_DIRTY !== '1') throw new Error(`workflow code has uncommitted changes (HISTORY_ALLOW_DIRTY=1 to record anyway):\n${dirty}`);
  if (existsSync(outDir) && process.env.HISTORY_OVERWRITE !== '1') throw new Error(`${outDir} exists (HISTORY_OVERWRITE=1 to replace it)`);
});

const quietEnd = new Set<number>([EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED]);

/** Fetches one run's history once it has the expected status (a running one between workflow tasks) and keeps it. */
async function record(client: Client, scenario: string, workflowId: string, runId: string | undefined, expected: FixtureStatus): Promise<FixtureEntry> {
  const handle = client.workflow.getHandle(workflowId, runId);
  const { d, history } = await eventually(`${workflowId} ${expected}`, async () => {
    const d = await handle.describe();
    const status = STATUS[d.status.name];
    if (status !== expected) {
      if (status !== 'running') throw new Error(`${workflowId} (${d.runId}) is ${d.status.name}, expected ${expected}`);
      return undefined;
    }
    const history: History = await handle.fetchHistory();
    const last = history.events?.at(-1)?.eventType;
    if (status === 'running' && (last == null || quietEnd.has(last))) return undefined;
    return { d, history };
  }, 60_000);
  const file = `${d.type}-${scenario}.json`;
  if (recorded.has(file)) throw new Error(`${file} recorded twice`);
  const entry: FixtureEntry = { file, workflowId, runId: d.runId, workflowType: d.type, scenario, status: expected, events: history.events?.length ?? 0 };
  recorded.set(file, { entry, json: historyToJSON(history) });
  return entry;
}

/**
 * The first provisioning or teardown workflow of a NodeENI, found by its NodeENI search attribute
 * (entities start them through an activity now, so their histories hold no child-workflow events).
 */
async function childOf(client: Client, obj: NodeENIObject, type: 'provisionAttachment' | 'teardownAttachment'): Promise<{ workflowId: string; runId: string }> {
  return eventually(`the first ${type} of ${obj.metadata.name}`, async () => {
    const found: Array<{ workflowId: string; runId: string; startTime: Date }> = [];
    for await (const wf of client.workflow.list({ query: `NodeENI = '${obj.metadata.name}' AND WorkflowType = '${type}'` })) found.push(wf);
    return found.sort((x, y) => x.startTime.getTime() - y.startTime.getTime())[0];
  }, 30_000);
}

/** Every run of a workflow chain, first to latest, through the continued-as-new links. */
async function chainOf(client: Client, workflowId: string): Promise<string[]> {
  const latest = await client.workflow.getHandle(workflowId).fetchHistory();
  const started = latest.events?.[0]?.workflowExecutionStartedEventAttributes;
  const runs: string[] = [];
  let run: string | undefined = started?.firstExecutionRunId ?? undefined;
  while (run) {
    runs.push(run);
    const h = await client.workflow.getHandle(workflowId, run).fetchHistory();
    run = h.events?.at(-1)?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
  }
  return runs;
}

const idOf = (o: NodeENIObject) => entityWorkflowId(o.metadata.name, o.metadata.uid);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('plain ENIs, compensation, force-finish, device plugin', () => {
  let c: TestCluster;
  let idle: NodeENIObject;
  const sg = { securityGroupNames: ['multus-sg'] };
  const onNode = (i: number) => ({ 'nodeeni-test': c.runId, 'kubernetes.io/hostname': c.nodes[i]!.name });
  beforeAll(async () => {
    // Nodes 0 and 1 in zone a, node 2 in zone b; a device plugin pod on node 0.
    // Reports pace the passes from the first child, so the histories hold that path (its timers) too.
    c = await createTestCluster({ devicePlugins: [{ namespace: 'kube-system', labels: { app: 'sriovdp' } }, undefined, undefined], entityOptions: { pacePassesFromChildren: 1 } });
  });
  afterAll(async () => {
    await c?.fault.clear();
    await c?.dispose();
  });

  it('nodeEniEntity: Ready, a node relabelled out and in, deleted; its first provision and teardown', async () => {
    const [n0, n1] = c.nodes;
    await c.labelNode(n0!.name, { rec: 'plain' });
    await c.labelNode(n1!.name, { rec: 'plain' });
    const obj = await c.createNodeEni('plain', { nodeSelector: { 'nodeeni-test': c.runId, rec: 'plain' }, subnetNames: ['multus-a'], ...sg });
    await eventually('Ready on 2 nodes', async () => isReady(await c.getNodeEni('plain'), 2), 90_000);
    await c.labelNode(n1!.name, { rec: null });
    await eventually('node 1 torn down', async () => isReady(await c.getNodeEni('plain'), 1) && (await enisOf(c.ec2, obj.metadata.uid)).length === 1, 60_000);
    await c.labelNode(n1!.name, { rec: 'plain' });
    // a3ab700 cannot re-provision the same (node, subnet): the ClientToken of the attachment key was
    // used by the first ENI (IdempotentParameterMismatch). Either outcome is what that version does.
    const back = await eventually('node 1 back: Ready on 2 nodes, or its attachment Failed', async () => {
      const o = await c.getNodeEni('plain');
      if (isReady(o, 2)) return 'Ready';
      const row = o?.status?.attachments?.find((a) => a.nodeID === n1!.name);
      return row?.phase === 'Failed' && `Failed: ${row.message ?? ''}`;
    }, 60_000);
    console.log(`[record-histories] node relabelled back in: ${back}`);
    await c.deleteNodeEni('plain');
    await eventually('plain gone', async () => (await c.getNodeEni('plain')) === undefined, 60_000);

    await record(c.client, 'lifecycle', idOf(obj), undefined, 'completed');
    const p = await childOf(c.client, obj, 'provisionAttachment');
    const t = await childOf(c.client, obj, 'teardownAttachment');
    await record(c.client, 'ok', p.workflowId, p.runId, 'completed');
    await record(c.client, 'ok', t.workflowId, t.runId, 'completed');
  }, 240_000);

  it('an entity that stays Ready (recorded running, at the end)', async () => {
    idle = await c.createNodeEni('idle', { nodeSelector: onNode(2), subnetNames: ['multus-b'], ...sg });
    await eventually('idle Ready', async () => isReady(await c.getNodeEni('idle'), 1), 90_000);
  });

  it('provisionAttachment: attach refused (non-retryable), compensated', async () => {
    await c.fault.clear();
    await c.fault.addRules({ action: 'AttachNetworkInterface', account: c.account, code: 'InvalidParameterValue', message: 'injected: attach refused', count: 1 });
    const obj = await c.createNodeEni('comp', { nodeSelector: onNode(1), subnetNames: ['storage-a'], securityGroupNames: ['storage-sg'] });
    await eventually('Degraded, attachment Failed', async () => {
      const o = await c.getNodeEni('comp');
      return conditionOf(o, 'Degraded')?.status === 'True' && o!.status?.attachments?.[0]?.phase === 'Failed';
    }, 60_000);
    await c.fault.clear();
    expect(await enisOf(c.ec2, obj.metadata.uid)).toEqual([]);
    const p = await childOf(c.client, obj, 'provisionAttachment');
    await record(c.client, 'compensated', p.workflowId, p.runId, 'failed');
    await c.deleteNodeEni('comp');
    await eventually('comp gone', async () => (await c.getNodeEni('comp')) === undefined, 60_000);
  });

  it('provisionAttachment: the attach took effect with its answer lost, a later step failed, detached and deleted', async () => {
    await c.fault.clear();
    await c.fault.addRules({ action: 'AttachNetworkInterface', account: c.account, afterEffect: true, dropConnection: true, count: 1 });
    const obj = await c.createNodeEni('lost', { nodeSelector: onNode(1), subnetNames: ['storage-a'], securityGroupNames: ['storage-sg'], dpdkResourceName: 'sriov_kernel', dpdkPCIAddress: '0000:00:1f.7' });
    const p = await childOf(c.client, obj, 'provisionAttachment');
    await eventually('the first provisioning failed', async () => (await c.client.workflow.getHandle(p.workflowId, p.runId).describe()).status.name === 'FAILED', 60_000);
    await c.fault.clear();
    await record(c.client, 'lost-attach-answer', p.workflowId, p.runId, 'failed');
    await c.deleteNodeEni('lost');
    await eventually('lost gone', async () => (await c.getNodeEni('lost')) === undefined, 60_000);
    expect(await enisOf(c.ec2, obj.metadata.uid)).toEqual([]);
  });

  it('teardownAttachment: stuck on DeleteNetworkInterface, force-finished', async () => {
    const obj = await c.createNodeEni('stuck', { nodeSelector: onNode(1), subnetNames: ['multus-a'], ...sg });
    await eventually('stuck Ready', async () => isReady(await c.getNodeEni('stuck'), 1), 90_000);
    await c.fault.clear();
    await c.fault.addRules({ action: 'DeleteNetworkInterface', account: c.account, code: 'InternalError', message: 'injected: EC2 keeps failing' });
    await c.deleteNodeEni('stuck');
    await eventually('teardown stuck on DeleteNetworkInterface', async () => {
      const o = await c.getNodeEni('stuck');
      return !!o?.metadata.deletionTimestamp && ((await c.fault.counts(c.account)).DeleteNetworkInterface ?? 0) >= 2;
    }, 60_000);
    await forceFinish(c.client, obj.metadata.name, { reason: 'recorded: EC2 delete keeps failing', node: c.nodes[1]!.name });
    await eventually('stuck gone', async () => (await c.getNodeEni('stuck')) === undefined, 60_000);
    await c.fault.clear();
    const t = await childOf(c.client, obj, 'teardownAttachment');
    await record(c.client, 'force-finished', t.workflowId, t.runId, 'completed');
  });

  it('nodeEniEntity: provisioning while the node agent is away, retried when it starts again', async () => {
    await c.stopAgent(1);
    const obj = await c.createNodeEni('away', { nodeSelector: onNode(1), subnetNames: ['multus-a'], ...sg });
    await eventually('NodeAgentUnavailable', async () => conditionOf(await c.getNodeEni('away'), 'Degraded')?.reason === 'NodeAgentUnavailable', 60_000);
    await c.startAgent(1);
    await eventually('away Ready', async () => isReady(await c.getNodeEni('away'), 1), 60_000);
    await c.deleteNodeEni('away');
    await eventually('away gone', async () => (await c.getNodeEni('away')) === undefined, 60_000);
    await record(c.client, 'agent-away', idOf(obj), undefined, 'completed');
  });

  it('devicePluginNode: a resource published on node 0 (recorded running)', async () => {
    await c.createNodeEni('sriov', { nodeSelector: onNode(0), subnetNames: ['multus-a'], ...sg, dpdkResourceName: 'intel.com/sriov_rec' });
    await eventually('Ready with the resource published', async () => {
      const o = await c.getNodeEni('sriov');
      return isReady(o, 1) && o!.status!.attachments![0]!.dpdkResourceName === 'intel.com/sriov_rec';
    }, 90_000);
    const wf = devicePluginWorkflowId(c.nodes[0]!.name);
    await eventually('in allocatable, plugin restarted', async () => {
      const alloc = (await c.core.readNode({ name: c.nodes[0]!.name })).status?.allocatable ?? {};
      return alloc['intel.com/sriov_rec'] === '1' && (await c.client.workflow.getHandle(wf).query<{ restarts: number }>(DEVICE_PLUGIN_STATE_QUERY)).restarts >= 1;
    }, 60_000);
    await record(c.client, 'published', wf, undefined, 'running');
  });

  it('nodeEniEntity: the idle entity, still running after a resync pass', async () => {
    const handle = c.client.workflow.getHandle(idOf(idle));
    await eventually('a resync timer fired', async () => ((await handle.fetchHistory()).events ?? []).some((e) => e.eventType === EventType.EVENT_TYPE_TIMER_FIRED), 60_000);
    await record(c.client, 'idle', idOf(idle), undefined, 'running');
  });
});

describe('an entity chain that continued-as-new', () => {
  let c: TestCluster;
  beforeAll(async () => {
    c = await createTestCluster({ instances: 1, entityOptions: { maxHistoryLength: 40 } });
  });
  afterAll(async () => {
    await c?.dispose();
  });

  it('records every run of the chain, the last one completed', async () => {
    const obj = await c.createNodeEni('chain', { subnetNames: ['multus-a'], securityGroupNames: ['multus-sg'] });
    await eventually('chain Ready', async () => isReady(await c.getNodeEni('chain'), 1), 90_000);
    const id = idOf(obj);
    await eventually('three runs', async () => {
      if ((await chainOf(c.client, id)).length >= 3) return true;
      await c.client.workflow.getHandle(id).signal(RECONCILE_SIGNAL);
      await sleep(300);
      return false;
    }, 60_000);
    await c.deleteNodeEni('chain');
    await eventually('chain gone', async () => (await c.getNodeEni('chain')) === undefined, 60_000);
    await eventually('latest run completed', async () => (await c.client.workflow.getHandle(id).describe()).status.name === 'COMPLETED');
    const runs = await chainOf(c.client, id);
    for (const [i, run] of runs.entries()) {
      await record(c.client, `chain-run${i + 1}`, id, run, i === runs.length - 1 ? 'completed' : 'continued-as-new');
    }
  }, 180_000);
});

describe('resctrl', () => {
  const options: ResctrlOptions = { groupPrefix: 'pod_', cleanupOnStart: true, mode: 'monitor', resyncSeconds: 2, nodeAgentStartTimeoutMs: 8000, maxHistoryLength: 5000 };
  let c: TestCluster;
  beforeAll(async () => {
    c = await createTestCluster({ instances: 1, resctrl: { options, host: { resctrl: {}, cgroupDriver: 'systemd' } } });
  });
  afterAll(async () => {
    await c?.dispose();
  });

  it('resctrlNode: two pods reconciled (recorded running)', async () => {
    const node = c.nodes[0]!;
    const ns = `${c.runId}-pods`;
    await ensureNamespace(c.core, ns);
    const pods = [
      await runPod(c.core, node.host, { namespace: ns, name: 'web', node: node.name, containers: [{ name: 'app', threads: 2 }] }),
      await runPod(c.core, node.host, { namespace: ns, name: 'db', node: node.name, qos: 'Burstable', containers: [{ name: 'a', threads: 1 }, { name: 'b', threads: 2 }] }),
    ];
    const handle = c.client.workflow.getHandle(resctrlWorkflowId(node.name));
    await eventually('both pods reconciled', async () => {
      const { events } = await handle.query<ResctrlView>(RESCTRL_STATE_QUERY);
      return pods.every((p) => events.some((e) => e.type === 'AddOrUpdate' && e.podUid === p.uid && e.reconciledContainers === p.containers.length));
    }, 60_000);
    // Since resctrl-node-watch-on-node an idle run waits in one long activity on the node (no resync
    // timers fire, nothing completes while nothing changes): recorded as it is once both pods are done.
    await record(c.client, 'two-pods', handle.workflowId, undefined, 'running');
  });
});

describe('fixtures', () => {
  it('writes every history and the index', async () => {
    const files = [...recorded.keys()];
    const missing = REQUIRED.filter((s) => !files.includes(`${s}.json`));
    expect(missing, 'scenarios not recorded').toEqual([]);
    expect(files.filter((f) => f.startsWith('nodeEniEntity-chain-run')).length).toBeGreaterThanOrEqual(2);

    const tmp = `${outDir}.tmp`;
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    let bytes = 0;
    const index = [...recorded.values()].map((r) => r.entry).sort((a, b) => a.file.localeCompare(b.file));
    for (const { entry, json } of recorded.values()) {
      await writeFile(path.join(tmp, entry.file), `${json}\n`);
      bytes += json.length + 1;
    }
    await writeFile(path.join(tmp, 'index.json'), `${JSON.stringify(index, null, 2)}\n`);
    await rm(outDir, { recursive: true, force: true });
    await rename(tmp, outDir);
    console.log(`[record-histories] ${index.length} histories, ${bytes} bytes, in ${path.relative(ROOT, outDir)}`);
    for (const e of index) console.log(`  ${e.file}  ${e.status}  ${e.events} events`);
    expect(bytes, 'fixtures should stay small').toBeLessThan(3_000_000);
  });
});

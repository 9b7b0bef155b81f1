// One workflow per node owns that node's SR-IOV device plugin config. Entities
// publish the entries they want there; after a short quiet period (changes
// close together cause one restart) it writes the merged config on the node,
// restarts the plugin when the content changed, verifies the node's
// allocatable, and answers every entity that asked. Applying that fails is
// retried after back-off; meanwhile the askers hear "retrying" (so they keep
// the device where it is and say why). It ends itself when no entity wants
// anything on the node and the node is gone.
import { continueAsNew, getExternalWorkflowHandle, isCancellation, log, patched, proxyActivities, setCurrentDetails, setHandler, workflowInfo } from '@temporalio/workflow';
import { buildDevicePluginConfig, devicePluginEntryProblem, resourcesOf, type DevicePluginConfig } from '../common/device-plugin.js';
import {
  devicePluginAppliedSignal,
  devicePluginRecheckSignal,
  devicePluginStateQuery,
  publishEntriesSignal,
  type DevicePluginApplied,
  type DevicePluginNodeInput,
  type PassFailure,
  type PublishEntries,
} from '../common/workflow-api.js';
import type { DevicePluginKubeActivities } from '../activities/kube/device-plugin-activities.js';
import type { DevicePluginConfigMapActivities } from '../activities/kube/device-plugin-configmap.js';
import type { PodActivities } from '../activities/kube/pod-activities.js';
import { isNodeAgentUnavailable } from './failures.js';
import { legacyDevicePluginNode } from './legacy/device-plugin-node-v1.js';
import { onNode } from './proxies.js';
import { Reconciler, type PassResult } from './reconciler.js';

/** Marks histories written by this implementation; runs started by v1 keep v1 until they continue-as-new. */
export const DEVICE_PLUGIN_V2_PATCH = 'device-plugin-node-v2';

/** Idle: nothing to do until an entity publishes; look now and then whether the node is still there. */
const IDLE_CHECK_MS = 3600_000;

const kube = proxyActivities<DevicePluginKubeActivities & DevicePluginConfigMapActivities & Pick<PodActivities, 'nodeExists' | 'recordNodeEvent'>>({
  startToCloseTimeout: '5m',
  heartbeatTimeout: '30s',
  // A pass gives up after these and is retried by the loop, with the failure reported.
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 5 },
});

export async function devicePluginNode(input: DevicePluginNodeInput): Promise<void> {
  if (!patched(DEVICE_PLUGIN_V2_PATCH)) return legacyDevicePluginNode(input);
  await new DevicePluginNode(input).run();
}

class DevicePluginNode {
  private readonly s: Required<Pick<DevicePluginNodeInput, 'owners' | 'restarts' | 'pending' | 'rejected' | 'reconciler'>> & DevicePluginNodeInput;
  private readonly loop: Reconciler;
  private readonly node: ReturnType<typeof onNode>;
  /** When the oldest unanswered request and the latest change arrived (this run; a new run applies at once). */
  private firstPendingAt = 0;
  private lastChangeAt = 0;
  private seq = 0;

  constructor(input: DevicePluginNodeInput) {
    this.s = { ...input, owners: input.owners ?? {}, restarts: input.restarts ?? 0, pending: input.pending ?? [], rejected: input.rejected ?? {}, reconciler: input.reconciler ?? {} };
    this.node = onNode(input.nodeName, input.options.nodeAgentStartTimeoutMs);
    this.loop = new Reconciler(this.s.reconciler, {
      resyncMs: IDLE_CHECK_MS,
      backoff: { initialMs: 1000, maxMs: 5 * 60_000 },
      maxHistoryLength: input.options.maxHistoryLength,
      idleSummary: 'wait for entries',
      reportFailure: (f, first) => this.reportPassFailure(f, first),
      continueAsNew: () => continueAsNew<typeof devicePluginNode>({ ...this.s }),
    });
    setHandler(publishEntriesSignal, (req) => this.publish(req), { description: "An entity's complete list of entries for this node." });
    setHandler(devicePluginRecheckSignal, () => this.loop.markDirty(), { description: 'The node changed or went: look again (the workflow ends once the node is gone and nothing is published).' });
    setHandler(devicePluginStateQuery, () => ({
      nodeName: this.s.nodeName, owners: this.s.owners, applied: this.s.applied, lastResult: this.s.lastResult, restarts: this.s.restarts, failure: this.loop.failure,
    }), { description: 'Entries per entity, the config applied, the last result and restarts.' });
  }

  async run(): Promise<void> {
    await this.loop.run(() => this.pass());
  }

  private publish(req: PublishEntries): void {
    const { owners, rejected } = this.s;
    // An entry the plugin could not load must not stall the node: keep it out, and say so in the answer.
    const problems = req.entries.map(devicePluginEntryProblem).filter((p): p is string => p !== undefined);
    const entries = req.entries.filter((e) => devicePluginEntryProblem(e) === undefined);
    if (problems.length > 0) rejected[req.owner] = problems;
    else delete rejected[req.owner];
    if (entries.length === 0) delete owners[req.owner];
    else owners[req.owner] = entries;
    this.s.pending = [...this.s.pending.filter((p) => p.owner !== req.owner), req];
    const now = Date.now();
    if (this.firstPendingAt === 0) this.firstPendingAt = now;
    this.lastChangeAt = now;
    this.loop.markDirty();
  }

  private async pass(): Promise<PassResult> {
    const { options, nodeName } = this.s;
    if (this.s.pending.length === 0) {
      const gone = Object.keys(this.s.owners).length === 0 && !(await kube.nodeExists({ nodeName }));
      return gone ? { done: true } : {};
    }
    // Debounce: wait for a quiet period, but not forever.
    const now = Date.now();
    const quietIn = this.lastChangeAt + options.debounceMs - now;
    const deadlineIn = this.firstPendingAt + options.maxDelayMs - now;
    if (this.firstPendingAt !== 0 && quietIn > 0 && deadlineIn > 0) return { wakeInMs: Math.max(50, Math.min(quietIn, deadlineIn)) };

    const answering = this.s.pending;
    const result = await this.apply(buildDevicePluginConfig(Object.values(this.s.owners).flat()));
    this.s.lastResult = result;
    this.s.pending = this.s.pending.filter((p) => !answering.includes(p));
    this.firstPendingAt = this.s.pending.length > 0 ? Date.now() : 0;
    for (const req of answering) {
      const problems = this.s.rejected[req.owner];
      await this.answer(req, problems ? { ...result, ok: false, message: `entries rejected: ${problems.join('; ')}` } : result);
    }
    setCurrentDetails(`**node ${nodeName}**: ${Object.keys(this.s.owners).length} NodeENIs publish here; ${this.s.restarts} plugin restarts; last: ${result.message}`);
    if (Object.keys(this.s.owners).length === 0 && this.s.pending.length === 0 && !(await kube.nodeExists({ nodeName }))) return { done: true };
    return this.s.pending.length > 0 ? { wakeInMs: 1 } : {};
  }

  private async apply(config: DevicePluginConfig): Promise<DevicePluginApplied> {
    const { nodeName, options } = this.s;
    const base = { nodeName, requestId: '' };
    let changed: boolean;
    try {
      ({ changed } = await this.node.writeDevicePluginConfig({ config }));
    } catch (err) {
      if (!isNodeAgentUnavailable(err)) throw err;
      return { ...base, ok: false, podFound: false, restarted: false, message: `the agent of node ${nodeName} is unavailable; config not written` };
    }
    if (options.configMap) await kube.writeDevicePluginConfigMap({ ...options.configMap, nodeName, config });
    // Owed until a restart went through: a pass that fails after the write restarts on its retry.
    if (changed) this.s.restartOwed = true;
    if (!this.s.restartOwed) {
      this.s.applied = config;
      return { ...base, ok: true, podFound: this.s.lastResult?.podFound ?? true, restarted: false, message: 'config already as wanted' };
    }
    // Resources dropped since the plugin last loaded its config must leave allocatable (seed 000's stale resource).
    const expect: Record<string, number> = {};
    for (const r of Object.keys(this.s.applied ? resourcesOf(this.s.applied) : {})) expect[r] = 0;
    Object.assign(expect, resourcesOf(config));
    const res = await kube.restartDevicePlugin({ nodeName, namespaces: options.namespaces, labelSelectors: options.labelSelectors, expect, timeoutMs: options.restartTimeoutMs });
    this.s.applied = config;
    this.s.restartOwed = false;
    if (res.restarted) this.s.restarts++;
    return { ...base, ok: res.podFound, podFound: res.podFound, restarted: res.restarted, message: res.message };
  }

  private async answer(req: PublishEntries, answer: DevicePluginApplied): Promise<void> {
    try {
      await getExternalWorkflowHandle(req.owner).signal(devicePluginAppliedSignal, { ...answer, requestId: req.requestId });
    } catch (err) {
      if (isCancellation(err)) throw err;
      log.info('entity gone before the answer', { owner: req.owner, error: String(err) });
    }
  }

  private async reportPassFailure(f: PassFailure, firstOfItsKind: boolean): Promise<void> {
    const retryIn = Math.max(0, Math.round((f.retryAt - Date.now()) / 1000));
    const message = `device plugin config of node ${this.s.nodeName} not applied (${f.attempts} failures in a row): ${f.reason}: ${f.message}; retrying in ${retryIn} s`;
    setCurrentDetails(message);
    if (!firstOfItsKind) return;
    // Not an answer: the askers keep their devices where they are and show why.
    for (const req of this.s.pending) await this.answer(req, { nodeName: this.s.nodeName, requestId: req.requestId, ok: false, podFound: true, restarted: false, message, retrying: true });
    const { workflowId, runId } = workflowInfo();
    await kube.recordNodeEvent({ nodeName: this.s.nodeName, eventId: `${workflowId}/${runId}/${++this.seq}`, type: 'Warning', reason: 'DevicePluginNotApplied', message, component: 'nodeeni-controller' });
  }
}

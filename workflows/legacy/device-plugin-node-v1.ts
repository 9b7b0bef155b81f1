// The v1 device-plugin workflow (commit a3ab700), kept so that runs it
// started replay unchanged. At its next message on this code it
// continues-as-new into the current implementation with its entries and the
// requests still to answer. Delete it with the DEVICE_PLUGIN_V2 patch once no
// v1 run remains (see the README, Upgrades).
import { allHandlersFinished, condition, continueAsNew, getExternalWorkflowHandle, log, patched, proxyActivities, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import { buildDevicePluginConfig, devicePluginEntryProblem, resourcesOf, type DevicePluginConfig, type DevicePluginEntry } from '../../common/device-plugin.js';
import type { DevicePluginKubeActivities } from '../../activities/kube/device-plugin-activities.js';
import type { DevicePluginConfigMapActivities } from '../../activities/kube/device-plugin-configmap.js';
import { devicePluginAppliedSignal, devicePluginStateQuery, publishEntriesSignal, type DevicePluginApplied, type DevicePluginNodeInput, type PublishEntries } from '../../common/workflow-api.js';
import { isNodeAgentUnavailable } from '../failures.js';
import { onNode } from '../proxies.js';

/** Present in a v1 run's history from the moment it handed over to the current implementation. */
export const DEVICE_PLUGIN_V1_UPGRADE_PATCH = 'device-plugin-node-v1-upgrade';

const kube = proxyActivities<DevicePluginKubeActivities & DevicePluginConfigMapActivities>({
  startToCloseTimeout: '5m',
  heartbeatTimeout: '30s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 5 },
});

export async function legacyDevicePluginNode(input: DevicePluginNodeInput): Promise<void> {
  const { nodeName, options } = input;
  const owners: Record<string, DevicePluginEntry[]> = input.owners ?? {};
  let applied = input.applied;
  let restarts = input.restarts ?? 0;
  let lastResult: DevicePluginApplied | undefined;
  let pending: PublishEntries[] = [];
  let lastChange = 0;

  const rejected: Record<string, string[]> = {};
  setHandler(publishEntriesSignal, (req) => {
    // An entry the plugin could not load must not stall the node: keep it out, and say so in the answer.
    const problems = req.entries.map(devicePluginEntryProblem).filter((p): p is string => p !== undefined);
    const entries = req.entries.filter((e) => devicePluginEntryProblem(e) === undefined);
    if (problems.length > 0) rejected[req.owner] = problems;
    else delete rejected[req.owner];
    if (entries.length === 0) delete owners[req.owner];
    else owners[req.owner] = entries;
    pending.push(req);
    lastChange = Date.now();
  }, { description: "An entity's complete list of entries for this node." });
  setHandler(devicePluginStateQuery, () => ({ nodeName, owners, applied, lastResult, restarts }));

  const node = onNode(nodeName, options.nodeAgentStartTimeoutMs);
  for (;;) {
    await condition(() => pending.length > 0);
    // Hand over to the current implementation, with the requests still to answer.
    if (patched(DEVICE_PLUGIN_V1_UPGRADE_PATCH)) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof legacyDevicePluginNode>({ nodeName, options, owners, applied, restarts, pending, rejected, lastResult });
    }
    // Debounce: wait for a quiet period, but not forever.
    const firstSeen = Date.now();
    while (Date.now() - lastChange < options.debounceMs && Date.now() - firstSeen < options.maxDelayMs) {
      await sleep(Math.max(50, options.debounceMs - (Date.now() - lastChange)));
    }
    const answering = pending;
    pending = [];
    const config = buildDevicePluginConfig(Object.values(owners).flat());
    lastResult = await apply(config);
    for (const req of answering) {
      const problems = rejected[req.owner];
      const answer = problems ? { ...lastResult, ok: false, message: `entries rejected: ${problems.join('; ')}` } : lastResult;
      try {
        await getExternalWorkflowHandle(req.owner).signal(devicePluginAppliedSignal, { ...answer, requestId: req.requestId });
      } catch (err) {
        log.info('entity gone before the answer', { owner: req.owner, error: String(err) });
      }
    }
    if (pending.length === 0 && workflowInfo().historyLength > options.maxHistoryLength) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof legacyDevicePluginNode>({ nodeName, options, owners, applied, restarts });
    }
  }

  async function apply(config: DevicePluginConfig): Promise<DevicePluginApplied> {
    const base = { nodeName, requestId: '' };
    let changed: boolean;
    try {
      ({ changed } = await node.writeDevicePluginConfig({ config }));
    } catch (err) {
      if (!isNodeAgentUnavailable(err)) throw err;
      return { ...base, ok: false, podFound: false, restarted: false, message: `the agent of node ${nodeName} is unavailable; config not written` };
    }
    if (options.configMap) await kube.writeDevicePluginConfigMap({ ...options.configMap, nodeName, config });
    const previous = applied;
    applied = config;
    if (!changed) {
      return { ...base, ok: true, podFound: lastResult?.podFound ?? true, restarted: false, message: 'config already as wanted' };
    }
    // Resources dropped since the last config must leave allocatable (seed 000's stale resource).
    const expect: Record<string, number> = {};
    for (const r of Object.keys(previous ? resourcesOf(previous) : {})) expect[r] = 0;
    Object.assign(expect, resourcesOf(config));
    const res = await kube.restartDevicePlugin({ nodeName, namespaces: options.namespaces, labelSelectors: options.labelSelectors, expect, timeoutMs: options.restartTimeoutMs });
    if (res.restarted) restarts++;
    return { ...base, ok: res.podFound, podFound: res.podFound, restarted: res.restarted, message: res.message };
  }
}

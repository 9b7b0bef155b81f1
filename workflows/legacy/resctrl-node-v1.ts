// The v1 resctrl workflow (commit a3ab700), kept so that runs it started
// replay unchanged. At its first wake-up on this code it continues-as-new into
// the current implementation, carrying its state. Delete it with the
// RESCTRL_V2 patch once no v1 run remains (see the README, Upgrades).
import { allHandlersFinished, condition, continueAsNew, metricMeter, patched, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import { podsChangedSignal, resctrlStateQuery, type PodRecord, type ResctrlEvent, type ResctrlNodeInput } from '../../common/workflow-api.js';
import type { PodActivities, NodePod } from '../../activities/kube/pod-activities.js';
import type { ResctrlActivities } from '../../activities/node/resctrl-activities.js';
import { nodeTaskQueue } from '../../common/names.js';
import { counts, describeEvent, emptyResctrlState, pendingEvent } from '../resctrl-state.js';

/** Present in a v1 run's history from the moment it handed over to the current implementation. */
export const RESCTRL_V1_UPGRADE_PATCH = 'resctrl-node-v1-upgrade';

const POD_CONCURRENCY = 8;

async function inBatches<T>(items: T[], size: number, fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

const kube = proxyActivities<PodActivities>({
  startToCloseTimeout: '30s',
  heartbeatTimeout: '10s',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '30s' },
});

export async function legacyResctrlNode(input: ResctrlNodeInput): Promise<void> {
  const { nodeName, options } = input;
  const state = input.state ?? emptyResctrlState();
  // Events of this run, for the query; the durable record is the Kubernetes Event.
  const events: ResctrlEvent[] = [];
  let dirty = true;
  let seq = 0;
  setHandler(podsChangedSignal, () => { dirty = true; }, { description: 'A pod of this node changed: reconcile now.' });
  setHandler(resctrlStateQuery, () => ({ state, events }), { description: 'Per-pod groups, container states and the events of this run.' });

  const node = proxyActivities<ResctrlActivities>({
    taskQueue: nodeTaskQueue(nodeName),
    scheduleToStartTimeout: options.nodeAgentStartTimeoutMs,
    startToCloseTimeout: '60s',
    retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 10 },
  });
  const gauges = {
    total: metricMeter.createGauge('nodeeni_resctrl_pod_total_containers', 'int', '', 'containers known for the pod'),
    reconciled: metricMeter.createGauge('nodeeni_resctrl_pod_reconciled_containers', 'int', '', 'containers whose threads are all in the pod group'),
    llc: metricMeter.createGauge('nodeeni_resctrl_pod_llc_occupancy_bytes', 'int', 'bytes', 'L3 occupancy of the pod group'),
    mbmTotal: metricMeter.createGauge('nodeeni_resctrl_pod_mbm_total_bytes', 'int', 'bytes', 'memory bandwidth total counter of the pod group'),
    mbmLocal: metricMeter.createGauge('nodeeni_resctrl_pod_mbm_local_bytes', 'int', 'bytes', 'memory bandwidth local counter of the pod group'),
  };

  async function emit(pod: Pick<PodRecord, 'uid' | 'namespace' | 'name'>, e: ResctrlEvent | undefined) {
    if (!e) return;
    events.push(e);
    await kube.recordPodEvent({
      namespace: pod.namespace, podName: pod.name, podUid: pod.uid,
      eventId: `${workflowInfo().workflowId}/${workflowInfo().runId}/${++seq}`,
      type: 'Normal', reason: e.type === 'Removed' ? 'ResctrlGroupRemoved' : 'ResctrlGroupUpdated', message: describeEvent(e),
    });
  }

  async function ensureGroup(pod: PodRecord): Promise<boolean> {
    const res = await node.ensurePodGroup({ podUid: pod.uid, prefix: options.groupPrefix, mode: options.mode });
    pod.group = res.ok ? { kind: 'Exists', path: res.path } : { kind: 'Failed', reason: `${res.kind}: ${res.message}` };
    return res.ok || (res.kind !== 'Capacity' && res.kind !== 'CapacityLimbo');
  }

  async function reconcileContainers(pod: PodRecord, live: NodePod) {
    for (const c of live.containers) {
      pod.containers[c.id] ??= 'Partial';
      if (pod.group.kind !== 'Exists') continue;
      let res = await node.reconcileContainer({ podUid: pod.uid, qosClass: live.qosClass, containerId: c.id, groupPath: pod.group.path });
      if (res.groupGone) {
        // A container runtime with its own RDT config deleted the group: make it again.
        await ensureGroup(pod);
        if (pod.group.kind !== 'Exists') continue;
        res = await node.reconcileContainer({ podUid: pod.uid, qosClass: live.qosClass, containerId: c.id, groupPath: pod.group.path });
      }
      pod.containers[c.id] = res.complete ? 'Reconciled' : 'Partial';
    }
    for (const id of Object.keys(pod.containers)) if (!live.containers.some((c) => c.id === id)) delete pod.containers[id];
  }

  for (;;) {
    await condition(() => dirty, options.resyncSeconds * 1000);
    dirty = false;
    // Hand over to the current implementation with the state as it is.
    if (patched(RESCTRL_V1_UPGRADE_PATCH)) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof legacyResctrlNode>({ nodeName, options, state });
    }
    if (!state.cleanedUp) {
      if (options.cleanupOnStart) await node.cleanupResctrl({ prefix: options.groupPrefix });
      state.cleanedUp = true;
    }
    const live = new Map((await kube.listNodePods({ nodeName })).map((p) => [p.uid, p]));

    for (const pod of Object.values(state.pods)) {
      if (live.has(pod.uid)) continue;
      delete state.pods[pod.uid];
      await emit(pod, { type: 'Removed', podUid: pod.uid });
      if (pod.group.kind === 'Exists') await node.removePodGroup({ groupPath: pod.group.path });
    }
    // retry_all_once: failed groups in order, stopping at the first capacity error.
    let capacityHit = false;
    for (const pod of Object.values(state.pods)) {
      if (pod.group.kind !== 'Failed' || capacityHit) continue;
      capacityHit = !(await ensureGroup(pod));
    }
    // Pods are independent: work on several at once (bounded, to spare the node agent).
    await inBatches([...live.values()], POD_CONCURRENCY, async (p) => {
      let pod = state.pods[p.uid];
      if (!pod) {
        pod = { uid: p.uid, namespace: p.namespace, name: p.name, group: { kind: 'Failed', reason: 'not created yet' }, containers: {} };
        state.pods[p.uid] = pod;
        await ensureGroup(pod);
        await emit(pod, pendingEvent(pod));
      }
      await reconcileContainers(pod, p);
      await emit(pod, pendingEvent(pod));
      const c = counts(pod);
      const tags = { node: nodeName, pod_uid: pod.uid, namespace: pod.namespace, pod: pod.name };
      gauges.total.set(c.total, tags);
      gauges.reconciled.set(c.reconciled, tags);
      if (pod.group.kind === 'Exists') {
        const mon = await node.readPodMonData({ groupPath: pod.group.path });
        if (mon.llcOccupancy !== undefined) gauges.llc.set(mon.llcOccupancy, tags);
        if (mon.mbmTotalBytes !== undefined) gauges.mbmTotal.set(mon.mbmTotalBytes, tags);
        if (mon.mbmLocalBytes !== undefined) gauges.mbmLocal.set(mon.mbmLocalBytes, tags);
      }
    });

    if (!dirty && workflowInfo().historyLength > options.maxHistoryLength) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof legacyResctrlNode>({ nodeName, options, state });
    }
  }
}

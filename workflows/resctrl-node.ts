// One workflow per node keeps a resctrl group per pod (seed 004), with pods
// taken from the Kubernetes API and container threads from cgroup v2. Each
// pass: (the first time this node's workflow ever runs) clean up groups left
// by an earlier incarnation, sparing the groups of pods running now; drop
// groups of pods that went, create groups for new pods, assign every container
// thread, retry failed groups once (stopping at the first capacity error) and
// partial containers, then report events and metrics. Passes run when the
// watcher signals a pod change and on a timer (late containers, exec'd
// processes, groups a container runtime deleted): since v3 that idle loop runs
// on the node (watchResctrl: cheap reads every resync, one activity per change)
// so the history shows what changed, not a timer and a pass per tick; while a
// group failed for capacity the timer retries it. A pass that fails (the
// node's agent away, the API server refusing) is retried after back-off; the
// workflow ends itself when its node is gone.
import { ActivityCancellationType, type ActivityInterfaceFor, continueAsNew, metricMeter, patched, proxyActivities, setCurrentDetails, setHandler, workflowInfo } from '@temporalio/workflow';
import { nodeTaskQueue } from '../common/names.js';
import { resctrlMonGauges } from '../common/metrics.js';
import {
  podsChangedSignal,
  resctrlStateQuery,
  type PassFailure,
  type PodRecord,
  type ResctrlEvent,
  type ResctrlNodeInput,
  type ResctrlOptions,
  type ResctrlState,
} from '../common/workflow-api.js';
import type { NodePod, PodActivities } from '../activities/kube/pod-activities.js';
import type { ResctrlActivities, WatchedPod } from '../activities/node/resctrl-activities.js';
import { legacyResctrlNode } from './legacy/resctrl-node-v1.js';
import { Reconciler, type PassResult } from './reconciler.js';
import { counts, describeEvent, emptyResctrlState, pendingEvent } from './resctrl-state.js';

/** Marks histories written by this implementation; runs started by v1 keep v1 until they continue-as-new. */
export const RESCTRL_V2_PATCH = 'resctrl-node-v2';

/** v3: the idle loop watches on the node instead of a timer and a pass per resync. */
export const RESCTRL_WATCH_PATCH = 'resctrl-node-watch-on-node';

const POD_CONCURRENCY = 8;
/** A full pass at least this often, whatever the watch says (pods the watcher's signal missed). */
const FULL_PASS_EVERY_MS = 10 * 60_000;

const kube = proxyActivities<PodActivities>({
  startToCloseTimeout: '30s',
  heartbeatTimeout: '10s',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10 },
});

export async function resctrlNode(input: ResctrlNodeInput): Promise<void> {
  if (!patched(RESCTRL_V2_PATCH)) return legacyResctrlNode(input);
  await new ResctrlNode(input).run();
}

async function inBatches<T>(items: T[], size: number, fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

class ResctrlNode {
  private readonly nodeName: string;
  private readonly options: ResctrlOptions;
  private readonly state: ResctrlState;
  /** Events of this run, for the query; the durable record is the Kubernetes Event. */
  private readonly events: ResctrlEvent[] = [];
  private readonly loop: Reconciler;
  private readonly node: ActivityInterfaceFor<ResctrlActivities>;
  private seq = 0;
  /** v3: the idle loop watches on the node; a gone pod's group is removed before the pod is forgotten and announced. */
  private readonly v3: boolean;
  /** What the node watches between passes: the pods whose group exists, as the last pass left them. */
  private watched: WatchedPod[] = [];
  /** Threads a pass could not move, per pod: the watch does not wake for them again. */
  private readonly outside = new Map<string, Set<number>>();
  private readonly gauges = {
    total: metricMeter.createGauge('nodeeni_resctrl_pod_total_containers', 'int', '', 'containers known for the pod'),
    reconciled: metricMeter.createGauge('nodeeni_resctrl_pod_reconciled_containers', 'int', '', 'containers whose threads are all in the pod group'),
    ...resctrlMonGauges(metricMeter),
  };

  constructor(input: ResctrlNodeInput) {
    this.nodeName = input.nodeName;
    this.options = input.options;
    this.state = input.state ?? emptyResctrlState();
    this.node = proxyActivities<ResctrlActivities>({
      taskQueue: nodeTaskQueue(this.nodeName),
      scheduleToStartTimeout: this.options.nodeAgentStartTimeoutMs,
      startToCloseTimeout: '60s',
      heartbeatTimeout: '10s',
      retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 10 },
    });
    this.v3 = patched(RESCTRL_WATCH_PATCH);
    this.loop = new Reconciler((this.state.reconciler ??= {}), {
      resyncMs: this.options.resyncSeconds * 1000,
      backoff: { initialMs: 1000, maxMs: 5 * 60_000 },
      maxHistoryLength: this.options.maxHistoryLength,
      idleSummary: 'look for late containers and exec\'d processes',
      reportFailure: (f, first) => this.reportPassFailure(f, first),
      continueAsNew: () => continueAsNew<typeof resctrlNode>({ nodeName: this.nodeName, options: this.options, state: this.state }),
      ...(this.v3 ? { idleWatch: () => this.watchOnNode() } : {}),
    });
    setHandler(podsChangedSignal, () => this.loop.markDirty(), { description: 'A pod of this node changed: reconcile now.' });
    setHandler(resctrlStateQuery, () => ({ state: this.state, events: this.events, failure: this.loop.failure }), { description: 'Per-pod groups, container states and the events of this run.' });
  }

  async run(): Promise<void> {
    await this.loop.run(() => this.pass());
  }

  private async pass(): Promise<PassResult> {
    const { state, options, nodeName } = this;
    const pods = await kube.listNodePods({ nodeName });
    // A node with no pods, or whose agent did not answer, may be gone: then there is nothing left to keep.
    if ((pods.length === 0 || this.loop.failure) && !(await kube.nodeExists({ nodeName }))) {
      setCurrentDetails(`node ${nodeName} is gone; nothing left to keep`);
      return { done: true };
    }
    if (!state.cleanedUp) {
      if (options.cleanupOnStart) await this.node.cleanupResctrl({ prefix: options.groupPrefix, keepPodUids: pods.map((p) => p.uid) });
      state.cleanedUp = true;
    }
    const live = new Map(pods.map((p) => [p.uid, p]));

    for (const pod of Object.values(state.pods)) {
      if (live.has(pod.uid)) continue;
      if (this.v3) {
        // The group goes first: a pass failing here still knows the group and removes it next time.
        if (pod.group.kind === 'Exists') await this.node.removePodGroup({ groupPath: pod.group.path });
        delete state.pods[pod.uid];
        await this.emit(pod, { type: 'Removed', podUid: pod.uid });
        continue;
      }
      delete state.pods[pod.uid];
      await this.emit(pod, { type: 'Removed', podUid: pod.uid });
      if (pod.group.kind === 'Exists') await this.node.removePodGroup({ groupPath: pod.group.path });
    }
    // retry_all_once: failed groups in order, stopping at the first capacity error.
    let capacityHit = false;
    for (const pod of Object.values(state.pods)) {
      if (pod.group.kind !== 'Failed' || capacityHit) continue;
      capacityHit = !(await this.ensureGroup(pod));
    }
    // Pods are independent: work on several at once (bounded, to spare the node agent).
    await inBatches([...live.values()], POD_CONCURRENCY, (p) => this.reconcilePod(p));
    const all = Object.values(state.pods);
    const failed = all.filter((p) => p.group.kind === 'Failed').length;
    setCurrentDetails(`**node ${nodeName}**: ${all.length} pods, ${failed} groups failed`);
    this.watched = [...live.values()].flatMap((p) => {
      const group = state.pods[p.uid]?.group;
      return group?.kind === 'Exists'
        ? [{ podUid: p.uid, namespace: p.namespace, name: p.name, qosClass: p.qosClass, groupPath: group.path, containerIds: p.containers.map((c) => c.id), knownOutside: [...(this.outside.get(p.uid) ?? [])] }]
        : [];
    });
    for (const uid of this.outside.keys()) if (!live.has(uid)) this.outside.delete(uid);
    // A group that failed (capacity, limbo) is retried on the resync timer: nothing on the node announces capacity.
    return failed > 0 ? { wakeInMs: options.resyncSeconds * 1000 } : {};
  }

  private async watchOnNode(): Promise<void> {
    const pods = this.watched;
    const pollMs = this.options.resyncSeconds * 1000;
    await this.node.watchResctrl.executeWithOptions({
      summary: `watch ${pods.length} pod groups for drift`,
      scheduleToStartTimeout: this.options.nodeAgentStartTimeoutMs,
      startToCloseTimeout: FULL_PASS_EVERY_MS + 60_000,
      // Heartbeats carry the cancel of a watch a pod change made obsolete; the SDK sends at most one per
      // 0.8 × this timeout, so a timeout near the poll period ends an obsolete watch within about one poll.
      heartbeatTimeout: Math.max(Math.round(1.25 * pollMs), 2000),
      cancellationType: ActivityCancellationType.TRY_CANCEL,
      // An agent older than this workflow lacks the activity: the timer serves this round.
      retry: { initialInterval: '1s', maximumAttempts: 3, nonRetryableErrorTypes: ['NotFoundError'] },
    }, [{ pods, pollMs, maxWaitMs: FULL_PASS_EVERY_MS }]);
  }

  private async reconcilePod(p: NodePod): Promise<void> {
    const { state, nodeName, gauges } = this;
    let pod = state.pods[p.uid];
    if (!pod) {
      pod = { uid: p.uid, namespace: p.namespace, name: p.name, group: { kind: 'Failed', reason: 'not created yet' }, containers: {} };
      state.pods[p.uid] = pod;
      await this.ensureGroup(pod);
      await this.emit(pod, pendingEvent(pod));
    }
    await this.reconcileContainers(pod, p);
    await this.emit(pod, pendingEvent(pod));
    const c = counts(pod);
    const tags = { node: nodeName, pod_uid: pod.uid, namespace: pod.namespace, pod: pod.name };
    gauges.total.set(c.total, tags);
    gauges.reconciled.set(c.reconciled, tags);
    if (pod.group.kind === 'Exists') {
      const mon = await this.node.readPodMonData({ groupPath: pod.group.path });
      if (mon.groupGone) {
        // Deleted underneath (a pod with no container left to notice it): make it again; the next pass
        // assigns its containers. A failing pass here would fail every pass after it.
        await this.ensureGroup(pod);
        for (const id of Object.keys(pod.containers)) pod.containers[id] = 'Partial';
        return;
      }
      if (mon.llcOccupancy !== undefined) gauges.llc.set(mon.llcOccupancy, tags);
      if (mon.mbmTotalBytes !== undefined) gauges.mbmTotal.set(mon.mbmTotalBytes, tags);
      if (mon.mbmLocalBytes !== undefined) gauges.mbmLocal.set(mon.mbmLocalBytes, tags);
    }
  }

  /** False when the group could not be made for lack of capacity (the caller stops retrying others). */
  private async ensureGroup(pod: PodRecord): Promise<boolean> {
    const res = await this.node.ensurePodGroup({ podUid: pod.uid, prefix: this.options.groupPrefix, mode: this.options.mode });
    pod.group = res.ok ? { kind: 'Exists', path: res.path } : { kind: 'Failed', reason: `${res.kind}: ${res.message}` };
    return res.ok || (res.kind !== 'Capacity' && res.kind !== 'CapacityLimbo');
  }

  private async reconcileContainers(pod: PodRecord, live: NodePod): Promise<void> {
    for (const c of live.containers) {
      pod.containers[c.id] ??= 'Partial';
      if (pod.group.kind !== 'Exists') continue;
      let res = await this.node.reconcileContainer({ podUid: pod.uid, qosClass: live.qosClass, containerId: c.id, groupPath: pod.group.path });
      if (res.groupGone) {
        // A container runtime with its own RDT config deleted the group: make it again.
        await this.ensureGroup(pod);
        if (pod.group.kind !== 'Exists') continue;
        res = await this.node.reconcileContainer({ podUid: pod.uid, qosClass: live.qosClass, containerId: c.id, groupPath: pod.group.path });
      }
      pod.containers[c.id] = res.complete ? 'Reconciled' : 'Partial';
      const outside = this.outside.get(pod.uid) ?? new Set<number>();
      for (const r of res.rejected) outside.add(r.tid);
      if (outside.size > 0) this.outside.set(pod.uid, outside);
    }
    for (const id of Object.keys(pod.containers)) if (!live.containers.some((c) => c.id === id)) delete pod.containers[id];
  }

  private async emit(pod: Pick<PodRecord, 'uid' | 'namespace' | 'name'>, e: ResctrlEvent | undefined): Promise<void> {
    if (!e) return;
    this.events.push(e);
    const { workflowId, runId } = workflowInfo();
    await kube.recordPodEvent({
      namespace: pod.namespace, podName: pod.name, podUid: pod.uid,
      eventId: `${workflowId}/${runId}/${++this.seq}`,
      type: 'Normal', reason: e.type === 'Removed' ? 'ResctrlGroupRemoved' : 'ResctrlGroupUpdated', message: describeEvent(e),
    });
  }

  private async reportPassFailure(f: PassFailure, firstOfItsKind: boolean): Promise<void> {
    const retryIn = Math.max(0, Math.round((f.retryAt - Date.now()) / 1000));
    const message = `resctrl reconcile of node ${this.nodeName} failed (${f.attempts} in a row): ${f.reason}: ${f.message}; retrying in ${retryIn} s`;
    setCurrentDetails(message);
    if (!firstOfItsKind) return;
    const { workflowId, runId } = workflowInfo();
    await kube.recordNodeEvent({ nodeName: this.nodeName, eventId: `${workflowId}/${runId}/${++this.seq}`, type: 'Warning', reason: 'ResctrlReconcileFailed', message, component: 'nodeeni-resctrl' });
  }
}

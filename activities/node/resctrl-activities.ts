// Node activities for per-pod resctrl groups (seed 004): the group of a pod,
// every thread of a container assigned to it, removal, cleanup at start, and
// the monitoring counters. Capacity is an answer, not an exception: the
// workflow decides when to try again.
import { Context } from '@temporalio/activity';
import { resctrlMonGauges } from '../../common/metrics.js';
import { ApplicationFailure } from '@temporalio/common';
import type { Host } from '../../host/host.js';
import { containerCgroupPath, containerThreads, type QosClass } from '../../host/cgroup.js';
import { assignTasks, cleanupPrefix, ensureGroup, podGroupPath, readMonData, readTasks, removeGroup, resctrlMount, ResctrlError, sanitizePodUid, validateGroupPrefix } from '../../host/resctrl.js';

export type EnsurePodGroupResult =
  | { ok: true; path: string }
  | { ok: false; kind: 'Capacity' | 'CapacityLimbo' | 'NoPermission' | 'Unsupported'; message: string };

export interface ReconcileContainerResult {
  groupGone: boolean;
  /** Every thread found in the container's cgroup is in the pod group now. */
  complete: boolean;
  threads: number;
  assigned: number;
  rejected: { tid: number; reason: string }[];
}

/** A pod whose group exists, as the last pass left it: what the node watches between passes. */
export interface WatchedPod {
  podUid: string;
  namespace: string;
  name: string;
  qosClass: QosClass;
  groupPath: string;
  containerIds: string[];
  /** Threads the last pass could not move (in another control group): not news. */
  knownOutside: number[];
}

export interface WatchResctrlInput {
  pods: WatchedPod[];
  pollMs: number;
  /** Return after this long even if nothing changed (the workflow's full pass). */
  maxWaitMs: number;
}

/** What the watch found; `change` undefined when it ran for maxWaitMs and found nothing. */
export interface WatchResctrlResult {
  change?: string;
  polls: number;
}

function failure(err: unknown): unknown {
  if (err instanceof ResctrlError) {
    const retryable = err.kind === 'Io';
    return ApplicationFailure.create({ type: `Resctrl${err.kind}`, message: err.message, nonRetryable: !retryable, details: [err.details] });
  }
  return err;
}

export function createResctrlActivities({ host }: { host: Host; nodeName: string }) {
  async function root(): Promise<string | undefined> {
    return resctrlMount(host);
  }

  /** Why this pod needs a pass now, or undefined. Updates the pod's monitoring gauges on the way. */
  async function podChange(pod: WatchedPod, gauges: MonGauges): Promise<string | undefined> {
    try {
      const mon = await readMonData(host, pod.groupPath);
      const tags = { pod_uid: pod.podUid, namespace: pod.namespace, pod: pod.name };
      if (mon.llcOccupancy !== undefined) gauges.llc.set(mon.llcOccupancy, tags);
      if (mon.mbmTotalBytes !== undefined) gauges.mbmTotal.set(mon.mbmTotalBytes, tags);
      if (mon.mbmLocalBytes !== undefined) gauges.mbmLocal.set(mon.mbmLocalBytes, tags);
      const inGroup = new Set([...(await readTasks(host, pod.groupPath)), ...pod.knownOutside]);
      for (const containerId of pod.containerIds) {
        const cgroup = await containerCgroupPath(host, { podUid: pod.podUid, qos: pod.qosClass, containerId });
        if (!cgroup) continue;
        const outside = (await containerThreads(host, cgroup)).filter((tid) => !inGroup.has(tid));
        if (outside.length > 0) return `pod ${pod.namespace}/${pod.name}: ${outside.length} threads of container ${containerId.slice(0, 12)} outside its group`;
      }
      return undefined;
    } catch (err) {
      if (err instanceof ResctrlError && err.kind === 'GroupGone') return `pod ${pod.namespace}/${pod.name}: its group ${pod.groupPath} is gone`;
      throw failure(err);
    }
  }

  return {
    /**
     * The idle loop, on the node where it belongs: polls the watched pods' groups and
     * container threads every pollMs (cheap reads, no writes) and returns as soon as a
     * pass has something to do: a group deleted underneath, a thread outside its group
     * (exec'd process, late container). The workflow's history records one activity per
     * change instead of a timer and a pass per tick. Cancelled by the workflow when a
     * pod change arrives; heartbeats (the worker's interceptor) let a lost agent be noticed.
     */
    async watchResctrl(input: WatchResctrlInput): Promise<WatchResctrlResult> {
      const ctx = Context.current();
      const gauges = resctrlMonGauges(ctx.metricMeter);
      const deadline = Date.now() + input.maxWaitMs;
      for (let polls = 1; ; polls++) {
        for (const pod of input.pods) {
          const change = await podChange(pod, gauges);
          if (change) return { change, polls };
        }
        const left = deadline - Date.now();
        if (left <= 0) return { polls };
        ctx.heartbeat({ polls });
        await ctx.sleep(Math.min(input.pollMs, left));
      }
    },

    async ensurePodGroup(input: { podUid: string; prefix: string; mode: 'monitor' | 'control' }): Promise<EnsurePodGroupResult> {
      const mount = await root();
      if (!mount) return { ok: false, kind: 'Unsupported', message: 'resctrl is not mounted on this node (no resctrl line in /proc/mounts)' };
      try {
        // Inside the try: a hostile pod UID or prefix is refused before any path exists.
        const path = podGroupPath(mount, input.prefix, input.podUid, input.mode);
        await ensureGroup(host, path);
        return { ok: true, path };
      } catch (err) {
        if (err instanceof ResctrlError && (err.kind === 'Capacity' || err.kind === 'CapacityLimbo' || err.kind === 'NoPermission' || err.kind === 'Unsupported')) {
          return { ok: false, kind: err.kind, message: err.message };
        }
        throw failure(err);
      }
    },

    async reconcileContainer(input: { podUid: string; qosClass: QosClass; containerId: string; groupPath: string }): Promise<ReconcileContainerResult> {
      try {
        const cgroup = await containerCgroupPath(host, { podUid: input.podUid, qos: input.qosClass, containerId: input.containerId });
        if (!cgroup) return { groupGone: false, complete: false, threads: 0, assigned: 0, rejected: [] };
        const tids = await containerThreads(host, cgroup);
        if (tids.length === 0) return { groupGone: false, complete: false, threads: 0, assigned: 0, rejected: [] };
        const res = await assignTasks(host, input.groupPath, tids);
        return { groupGone: false, complete: res.rejected.length === 0, threads: tids.length, assigned: res.assigned, rejected: res.rejected };
      } catch (err) {
        if (err instanceof ResctrlError && err.kind === 'GroupGone') return { groupGone: true, complete: false, threads: 0, assigned: 0, rejected: [] };
        throw failure(err);
      }
    },

    async removePodGroup(input: { groupPath: string }): Promise<{ removed: boolean }> {
      try {
        return { removed: await removeGroup(host, input.groupPath) };
      } catch (err) {
        throw failure(err);
      }
    },

    /** Removes prefixed groups left by an earlier incarnation; the groups of `keepPodUids` (pods on the node now) stay. */
    async cleanupResctrl(input: { prefix: string; keepPodUids?: string[] }): Promise<{ mounted: boolean; removed: number; failures: number; kept: number }> {
      const mount = await root();
      if (!mount) return { mounted: false, removed: 0, failures: 0, kept: 0 };
      try {
        const keep = new Set((input.keepPodUids ?? []).map((uid) => validateGroupPrefix(input.prefix) + sanitizePodUid(uid)));
        const res = await cleanupPrefix(host, mount, input.prefix, keep);
        return { mounted: true, removed: res.removed, failures: res.failures, kept: res.kept };
      } catch (err) {
        throw failure(err);
      }
    },

    /** The group's monitoring data; `groupGone` when the group was deleted underneath (the workflow makes it again). */
    async readPodMonData(input: { groupPath: string }): Promise<{ llcOccupancy?: number; mbmTotalBytes?: number; mbmLocalBytes?: number; groupGone?: boolean }> {
      try {
        return await readMonData(host, input.groupPath);
      } catch (err) {
        if (err instanceof ResctrlError && err.kind === 'GroupGone') return { groupGone: true };
        throw failure(err);
      }
    },
  };
}

type MonGauges = ReturnType<typeof resctrlMonGauges>;

export type ResctrlActivities = ReturnType<typeof createResctrlActivities>;

// Node activities for per-pod resctrl groups (seed 004): the group of a pod,
// every thread of a container assigned to it, removal, cleanup at start, and
// the monitoring counters. Capacity is an answer, not an exception: the
// workflow decides when to try again.
import { ApplicationFailure } from '@temporalio/common';
import type { Host } from '../../host/host.js';
import { containerCgroupPath, containerThreads, type QosClass } from '../../host/cgroup.js';
import { assignTasks, cleanupPrefix, ensureGroup, podGroupPath, readMonData, removeGroup, resctrlMount, ResctrlError, sanitizePodUid, validateGroupPrefix } from '../../host/resctrl.js';

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

  return {
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

export type ResctrlActivities = ReturnType<typeof createResctrlActivities>;

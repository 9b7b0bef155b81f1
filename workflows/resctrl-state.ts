// Per-pod resctrl bookkeeping of one node, with seed 004's event rules: an
// AddOrUpdate when a pod is first seen, then only when its group state or its
// counters change; Removed when it goes; nothing for cleanup-only activity.
// Pure and deterministic: the node's workflow drives it, tests call it directly.

import type { GroupState, PodRecord, ResctrlEvent, ResctrlState } from '../common/workflow-api.js';

export function emptyResctrlState(): ResctrlState {
  return { pods: {}, cleanedUp: false };
}

export function counts(p: PodRecord): { total: number; reconciled: number } {
  const states = Object.values(p.containers);
  return { total: states.length, reconciled: states.filter((s) => s === 'Reconciled').length };
}

function groupStateText(g: GroupState): string {
  return g.kind === 'Exists' ? `Exists(${g.path})` : 'Failed';
}

/** The AddOrUpdate event this pod is owed, if its observable state changed since the last one. */
export function pendingEvent(p: PodRecord): ResctrlEvent | undefined {
  const { total, reconciled } = counts(p);
  const text = `${groupStateText(p.group)}|${total}|${reconciled}`;
  if (p.announced === text) return undefined;
  p.announced = text;
  return { type: 'AddOrUpdate', podUid: p.uid, groupState: groupStateText(p.group), totalContainers: total, reconciledContainers: reconciled };
}

export function describeEvent(e: ResctrlEvent): string {
  return e.type === 'Removed'
    ? `Removed {pod_uid: ${e.podUid}}`
    : `AddOrUpdate {pod_uid: ${e.podUid}, group_state: ${e.groupState}, total_containers: ${e.totalContainers}, reconciled_containers: ${e.reconciledContainers}}`;
}

// How workflows read failures: the reason (an EC2 code, a Kubernetes reason,
// our own type) and message an operator sees, and whether a node's agent
// never picked a task up. Pure.
import { ActivityFailure, ApplicationFailure, TimeoutFailure } from '@temporalio/workflow';
import { TimeoutType } from '@temporalio/common';

/** The node agent never picked up the task: the node is down or gone, not the spec at fault. */
export function isNodeAgentUnavailable(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof TimeoutFailure && err.cause.timeoutType === TimeoutType.SCHEDULE_TO_START;
}

export function failureReason(err: unknown, fallback = 'ProvisioningFailed'): string {
  if (isNodeAgentUnavailable(err)) return 'NodeAgentUnavailable';
  let e: unknown = err;
  while (e instanceof Error) {
    if (e instanceof ApplicationFailure && e.type) return e.type;
    if (e instanceof TimeoutFailure) return 'Timeout';
    e = (e as Error & { cause?: unknown }).cause;
  }
  return fallback;
}

export function failureMessage(err: unknown): string {
  let e: unknown = err;
  let last = String(err);
  while (e instanceof Error) {
    last = e.message;
    if (e instanceof ApplicationFailure) return e.message;
    e = (e as Error & { cause?: unknown }).cause;
  }
  return last;
}

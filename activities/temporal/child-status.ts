// How the entity's children ended, read from Temporal itself: the level-
// triggered check behind the children's own reports (a child terminated by an
// operator, or one whose report was lost, is found here).
import { getClient } from '@temporalio/activity';
import { WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import type { ChildOutcome, ChildRecord, ConfiguredAttachment, StepRetry, TeardownResult } from '../../common/workflow-api.js';

/** A running child, with the step it keeps retrying if any (Temporal retries activities without telling the workflow). */
export type ChildStatus = { workflowId: string; running: true; retrying?: StepRetry } | { workflowId: string; running: false; outcome: ChildOutcome };

type PendingActivity = NonNullable<Awaited<ReturnType<ReturnType<ReturnType<typeof getClient>['workflow']['getHandle']>['describe']>>['raw']['pendingActivities']>[number];

const millis = (t: { seconds?: unknown; nanos?: number | null } | null | undefined): number | undefined =>
  t?.seconds === undefined || t.seconds === null ? undefined : Number(t.seconds) * 1000 + Math.floor((t.nanos ?? 0) / 1e6);

/** The first pending activity that has failed at least once: what the child is stuck on (also for `nodeeni explain`). */
export function retryOf(pending: PendingActivity[] | null | undefined): StepRetry | undefined {
  const failing = (pending ?? []).find((a) => (a.attempt ?? 0) > 1 && a.lastFailure);
  if (!failing) return undefined;
  const f = failing.lastFailure!;
  return {
    activity: failing.activityType?.name ?? 'activity',
    attempt: failing.attempt ?? 0,
    reason: f.applicationFailureInfo?.type || (f.timeoutFailureInfo ? 'Timeout' : 'ActivityFailed'),
    message: (f.message ?? '').slice(0, 500),
    nextRetryAt: millis(failing.nextAttemptScheduleTime),
  };
}

function causeOf(err: WorkflowFailedError): { reason: string; message: string } {
  const cause = err.cause as (Error & { type?: string }) | undefined;
  return { reason: cause?.type || cause?.name || 'ChildFailed', message: cause?.message ?? err.message };
}

/**
 * Describes in flight at once. One after the other, a window of 100 children took 5 s of a busy
 * 1,000-node run, and the entity's pass (and the next window of creates) waited for it.
 */
export const DESCRIBES_IN_FLIGHT = 16;

async function describeChild(client: ReturnType<typeof getClient>, { workflowId, op }: Pick<ChildRecord, 'workflowId' | 'op'>): Promise<ChildStatus> {
  const handle = client.workflow.getHandle(workflowId);
  try {
    const { status, raw } = await handle.describe();
    if (status.name === 'RUNNING') {
      const retrying = retryOf(raw.pendingActivities);
      return { workflowId, running: true, ...(retrying ? { retrying } : {}) };
    }
    if (status.name === 'COMPLETED') {
      const result = await handle.result();
      return {
        workflowId,
        running: false,
        outcome: op === 'provision'
          ? { workflowId, op, ok: true, result: result as ConfiguredAttachment }
          : { workflowId, op, ok: true, result: result as TeardownResult },
      };
    }
    let reason: string = status.name;
    let message = `the ${op} workflow ended ${status.name.toLowerCase()}`;
    if (status.name === 'FAILED') {
      try {
        await handle.result();
      } catch (err) {
        if (err instanceof WorkflowFailedError) ({ reason, message } = causeOf(err));
      }
    }
    return { workflowId, running: false, outcome: { workflowId, op, ok: false, reason, message } };
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
    return { workflowId, running: false, outcome: { workflowId, op, ok: false, reason: 'ChildNotFound', message: `the ${op} workflow ${workflowId} does not exist` } };
  }
}

export function createChildStatusActivities() {
  return {
    /** Each child's status, in the order asked. */
    async describeChildren(input: { children: Pick<ChildRecord, 'workflowId' | 'op'>[] }): Promise<ChildStatus[]> {
      const client = getClient();
      const out: ChildStatus[] = new Array(input.children.length);
      let next = 0;
      const describer = async () => {
        for (let i = next++; i < input.children.length; i = next++) out[i] = await describeChild(client, input.children[i]!);
      };
      await Promise.all(Array.from({ length: Math.min(DESCRIBES_IN_FLIGHT, input.children.length) }, describer));
      return out;
    },
  };
}

export type ChildStatusActivities = ReturnType<typeof createChildStatusActivities>;

// How the entity's children ended, read from Temporal itself: the level-
// triggered check behind the children's own reports (a child terminated by an
// operator, or one whose report was lost, is found here).
import { getClient } from '@temporalio/activity';
import { WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import type { ChildOutcome, ChildRecord, ConfiguredAttachment, TeardownResult } from '../../common/workflow-api.js';

export type ChildStatus = { workflowId: string; running: true } | { workflowId: string; running: false; outcome: ChildOutcome };

function causeOf(err: WorkflowFailedError): { reason: string; message: string } {
  const cause = err.cause as (Error & { type?: string }) | undefined;
  return { reason: cause?.type || cause?.name || 'ChildFailed', message: cause?.message ?? err.message };
}

export function createChildStatusActivities() {
  return {
    async describeChildren(input: { children: Pick<ChildRecord, 'workflowId' | 'op'>[] }): Promise<ChildStatus[]> {
      const client = getClient();
      const out: ChildStatus[] = [];
      for (const { workflowId, op } of input.children) {
        const handle = client.workflow.getHandle(workflowId);
        try {
          const { status } = await handle.describe();
          if (status.name === 'RUNNING') {
            out.push({ workflowId, running: true });
            continue;
          }
          if (status.name === 'COMPLETED') {
            const result = await handle.result();
            out.push({
              workflowId,
              running: false,
              outcome: op === 'provision'
                ? { workflowId, op, ok: true, result: result as ConfiguredAttachment }
                : { workflowId, op, ok: true, result: result as TeardownResult },
            });
            continue;
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
          out.push({ workflowId, running: false, outcome: { workflowId, op, ok: false, reason, message } });
        } catch (err) {
          if (!(err instanceof WorkflowNotFoundError)) throw err;
          out.push({ workflowId, running: false, outcome: { workflowId, op, ok: false, reason: 'ChildNotFound', message: `the ${op} workflow ${workflowId} does not exist` } });
        }
      }
      return out;
    },
  };
}

export type ChildStatusActivities = ReturnType<typeof createChildStatusActivities>;

// Starts an entity's provisioning and teardown workflows through the worker's
// client, a window at a time. As child workflows each cost the entity four
// history events and a start confirmation its pass waited for; started here
// they cost one activity per window, and each reports back by signal as before.
import { getClient } from '@temporalio/activity';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { SA_NODE_NAME, SA_NODEENI } from '../../common/search-attributes.js';
import type { ChildStart } from '../../common/workflow-api.js';

export function createChildStarter() {
  return {
    /**
     * Starts each workflow unless one with its ID already runs or has completed (then that one is
     * adopted: a retry of this activity, or a start an earlier entity run made). A retry after the
     * worker died must not run a child that already finished a second time: its report would be
     * ignored, and what it did (an ENI created for a key the entity has moved on from) with it. Only
     * an ID whose last run failed starts again: the entity retries a failed teardown under its ID.
     * Every start is tried; if any failed, the activity fails after the others and its retry starts
     * only what is still missing.
     */
    async startChildren(input: { taskQueue: string; starts: ChildStart[] }): Promise<void> {
      const client = getClient();
      const results = await Promise.allSettled(input.starts.map((s) =>
        client.workflow.start(s.workflowType, {
          workflowId: s.workflowId,
          taskQueue: input.taskQueue,
          args: [s.input],
          workflowIdConflictPolicy: 'USE_EXISTING',
          workflowIdReusePolicy: 'ALLOW_DUPLICATE_FAILED_ONLY',
          // This worker serves the children's task queue: the server may hand it the first workflow task
          // with the start's answer, without a trip through matching (eager workflow start).
          requestEagerStart: true,
          staticSummary: s.summary,
          typedSearchAttributes: [{ key: SA_NODEENI, value: s.nodeEniName }, { key: SA_NODE_NAME, value: s.nodeName }],
        })));
      const failed = results.flatMap((r, i) => (r.status === 'rejected' && !(r.reason instanceof WorkflowExecutionAlreadyStartedError) ? [`${input.starts[i]!.workflowId}: ${String(r.reason)}`] : []));
      if (failed.length > 0) throw new Error(`${failed.length} of ${input.starts.length} workflows did not start: ${failed.slice(0, 3).join('; ')}`);
    },
  };
}

export type ChildStarterActivities = ReturnType<typeof createChildStarter>;

// When a node agent starts, whatever happened to its node while it was away
// (a reboot the kubelet has not reported yet, an interface reset by hand or by
// another tool, an agent upgrade) is found at once instead of at the next
// resync: the agent tells every running NodeENI entity, and an entity with an
// interface on this node asks the agent to verify it (drift repair re-applies
// what differs). The agent has no Kubernetes API access, so it finds the
// entities through Temporal's visibility, with the connection it polls on.
import { Client } from '@temporalio/client';
import type { NativeConnection } from '@temporalio/worker';
import type { Logger } from '@temporalio/common';
import { nodeAgentStartedSignal } from '../common/workflow-api.js';
import { dataConverter } from './payload-codec.js';

const ENTITIES = `WorkflowType = 'nodeEniEntity' AND ExecutionStatus = 'Running'`;
const ATTEMPTS = 5;

/** Signals every running entity that this node's agent started; retried a few times, then left to the resync. */
export async function announceNodeAgentStart(opts: { connection: NativeConnection; namespace: string; nodeName: string; logger: Logger; retryDelayMs?: number }): Promise<number> {
  const client = new Client({ connection: opts.connection, namespace: opts.namespace, dataConverter });
  for (let attempt = 1; ; attempt++) {
    try {
      let told = 0;
      for await (const wf of client.workflow.list({ query: ENTITIES })) {
        try {
          await client.workflow.getHandle(wf.workflowId, wf.runId).signal(nodeAgentStartedSignal, { nodeName: opts.nodeName });
          told++;
        } catch (err) {
          // An entity that ended between the listing and the signal has nothing to verify.
          opts.logger.debug('entity not told of the agent start', { workflowId: wf.workflowId, error: String(err) });
        }
      }
      opts.logger.info('told the NodeENI entities that this agent started', { node: opts.nodeName, entities: told });
      return told;
    } catch (err) {
      if (attempt >= ATTEMPTS) {
        opts.logger.warn('could not tell the NodeENI entities that this agent started; their next resync verifies this node', { node: opts.nodeName, error: String(err) });
        return 0;
      }
      await new Promise((r) => setTimeout(r, (opts.retryDelayMs ?? 2000) * attempt));
    }
  }
}

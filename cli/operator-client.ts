// Operator actions on NodeENI entity workflows, shared by the CLI and tests.
import { WorkflowUpdateFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { forceFinishUpdate, stateQuery, type EntityView, type ForceFinishRequest, type ForceFinishResult } from '../common/workflow-api.js';

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** The running entity workflow of a NodeENI, found through the NodeENI search attribute. */
export async function findEntity(client: Client, name: string): Promise<WorkflowHandle> {
  if (!NAME.test(name) || name.length > 253) throw new Error(`"${name}" is not a valid NodeENI name`);
  const query = `WorkflowType = 'nodeEniEntity' AND NodeENI = '${name}' AND ExecutionStatus = 'Running'`;
  for await (const wf of client.workflow.list({ query })) {
    return client.workflow.getHandle(wf.workflowId);
  }
  throw new Error(`no running entity workflow for NodeENI ${name}`);
}

export async function forceFinish(client: Client, name: string, req: ForceFinishRequest): Promise<ForceFinishResult> {
  const handle = await findEntity(client, name);
  try {
    return await handle.executeUpdate(forceFinishUpdate, { args: [req] });
  } catch (err) {
    // The validator's reason is what an operator needs to read.
    if (err instanceof WorkflowUpdateFailedError && err.cause) throw new Error(`force-finish rejected: ${err.cause.message}`);
    throw err;
  }
}

export async function entityView(client: Client, name: string): Promise<EntityView> {
  const handle = await findEntity(client, name);
  return handle.query(stateQuery);
}

// A child's last word to its entity. Sent to the entity's workflow ID (no run
// ID), so it reaches the current run even after the entity continued-as-new.
import { getExternalWorkflowHandle, isCancellation, log } from '@temporalio/workflow';
import { childFinishedSignal, type ChildOutcome } from '../common/workflow-api.js';
import { failureMessage } from './failures.js';

export async function reportToEntity(entityId: string | undefined, outcome: ChildOutcome): Promise<void> {
  if (!entityId) return;
  try {
    await getExternalWorkflowHandle(entityId).signal(childFinishedSignal, outcome);
  } catch (err) {
    if (isCancellation(err)) throw err;
    // The entity finished (its NodeENI is gone); nobody is left to tell.
    log.info('entity gone before the child reported', { entityId, error: failureMessage(err) });
  }
}

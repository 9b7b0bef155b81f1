// Signals, updates and queries of the workflows. Pure: shared with the watcher, CLI and tests.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { EntityView } from './entity-state.js';

export interface ForceFinishRequest {
  /** Why the operator gives up on the remaining cleanup; recorded in status, an Event and an EC2 tag. */
  reason: string;
  /** Only the teardowns on this node; all of this NodeENI's teardowns when omitted. */
  node?: string;
}

export interface ForceFinishResult {
  /** The ENIs left behind in EC2, now tagged for the leaked-ENI sweeper. */
  leftBehind: string[];
}

/** "Something about this NodeENI or its nodes changed": the entity re-reads everything. */
export const reconcileSignal = defineSignal<[]>('reconcile');

/** Operator escape hatch for a stuck teardown: acknowledged, validated, auditable. */
export const forceFinishUpdate = defineUpdate<ForceFinishResult, [ForceFinishRequest]>('forceFinish');

/** The same request as a Signal, for tools that cannot send Updates. */
export const forceFinishSignal = defineSignal<[ForceFinishRequest]>('forceFinishSignal');

/** A teardown child's own force-finish (the entity forwards requests to it). */
export const teardownForceSignal = defineSignal<[ForceFinishRequest]>('forceFinish');

export const stateQuery = defineQuery<EntityView>('state');

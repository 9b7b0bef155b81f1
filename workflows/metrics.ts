// Our metrics from workflow code, through the workflow's own meter: nothing is
// emitted while a history replays, and recording adds no command to it.
import { metricMeter, workflowInfo } from '@temporalio/workflow';
import { nodeEniMetrics, type NodeEniMetrics, type Outcome } from '../common/metrics.js';
import type { NodeENIStatus } from '../common/types.js';
import type { ManagedEni } from '../activities/ec2/ec2-activities.js';

export function metrics(): NodeEniMetrics {
  return nodeEniMetrics(metricMeter);
}

/** Seconds since this workflow started, in workflow time. */
export function secondsSinceStart(): number {
  return (Date.now() - workflowInfo().startTime.getTime()) / 1000;
}

/** How a failed child ended: an operator's force-finish, or a failure. */
export function failedOutcome(reason: string): Outcome {
  return reason === 'ForceFinished' ? 'forced' : 'failed';
}

/** Sets the NodeENI's gauges from the status its entity is about to write, and hands the status on. */
export function withAttachmentGauges(nodeEni: string, managed: ManagedEni[], status: NodeENIStatus): NodeENIStatus {
  metrics().nodeEniAttachments(nodeEni, { desired: status.desiredCount ?? 0, ready: status.readyCount ?? 0, managed: managed.filter((e) => !e.leaked).length, passAt: Date.now() });
  return status;
}

/** The NodeENI is gone: its gauges drop to zero. */
export function attachmentGaugesGone(nodeEni: string): void {
  metrics().nodeEniAttachments(nodeEni, { desired: 0, ready: 0, managed: 0, passAt: Date.now() });
}

// Where a single node's time goes: the events of every workflow run started
// since a moment (the entity, its children), in time order, relative to that
// moment. `npm run bench -- --runs R --profile` prints it for the first and the
// median run of each phase.
import type { Client } from '@temporalio/client';
import proto, { type temporal } from '@temporalio/proto';

const EventType = proto.temporal.api.enums.v1.EventType;

export interface TimelineEvent {
  /** Seconds since the moment given. */
  at: number;
  workflow: string;
  what: string;
}

/** `entity`, or a child's kind and node (`provision node-7`): one child's events can be followed among a thousand. */
const short = (workflowId: string) => {
  const child = /\/(provision|teardown)\/([^/]+)\//.exec(workflowId);
  return child ? `${child[1]} ${child[2]}` : 'entity';
};

function label(e: temporal.api.history.v1.IHistoryEvent, scheduled: Map<string, string>): string | undefined {
  const type = EventType[e.eventType ?? 0]?.replace(/^EVENT_TYPE_/, '').toLowerCase() ?? String(e.eventType);
  const id = String(e.eventId);
  const a = e.activityTaskScheduledEventAttributes;
  if (a) {
    scheduled.set(id, `${a.activityType?.name}@${a.taskQueue?.name?.replace(/^.*-ec2-/, 'ec2-') ?? ''}`);
    return `${type} ${scheduled.get(id)}`;
  }
  const ref = e.activityTaskStartedEventAttributes?.scheduledEventId ?? e.activityTaskCompletedEventAttributes?.scheduledEventId ?? e.activityTaskFailedEventAttributes?.scheduledEventId;
  if (ref != null) return `${type} ${scheduled.get(String(ref)) ?? ''}`;
  if (e.markerRecordedEventAttributes) return `${type} ${e.markerRecordedEventAttributes.markerName}`;
  if (e.workflowExecutionSignaledEventAttributes) return `${type} ${e.workflowExecutionSignaledEventAttributes.signalName}`;
  if (e.startChildWorkflowExecutionInitiatedEventAttributes) return `${type} ${short(e.startChildWorkflowExecutionInitiatedEventAttributes.workflowId ?? '').split(' ')[0]}`;
  if (e.workflowTaskTimedOutEventAttributes) return `${type} ${proto.temporal.api.enums.v1.TimeoutType[e.workflowTaskTimedOutEventAttributes.timeoutType ?? 0] ?? ''}`;
  if (e.workflowTaskFailedEventAttributes) return `${type} ${proto.temporal.api.enums.v1.WorkflowTaskFailedCause[e.workflowTaskFailedEventAttributes.cause ?? 0] ?? ''}`;
  if (e.signalExternalWorkflowExecutionInitiatedEventAttributes) return `${type} ${e.signalExternalWorkflowExecutionInitiatedEventAttributes.signalName}`;
  return type;
}

const seconds = (t: temporal.api.history.v1.IHistoryEvent['eventTime']) => Number(t?.seconds ?? 0) + (t?.nanos ?? 0) / 1e9;

/** Every event of every run started at or after `since` (ms), for workflows whose ID contains `idPart`. */
export async function timeline(client: Client, since: number, idPart: string): Promise<TimelineEvent[]> {
  const out: TimelineEvent[] = [];
  for await (const wf of client.workflow.list({ query: `StartTime >= "${new Date(since).toISOString()}"` })) {
    if (!wf.workflowId.includes(idPart)) continue;
    const history = await client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
    const scheduled = new Map<string, string>();
    for (const e of history.events ?? []) {
      const what = label(e, scheduled);
      // Large events are what make a long history slow to replay: say how large.
      const bytes = proto.temporal.api.history.v1.HistoryEvent.encode(e).finish().length;
      if (what) out.push({ at: seconds(e.eventTime) - since / 1000, workflow: short(wf.workflowId), what: bytes >= 4096 ? `${what} (${(bytes / 1024).toFixed(0)} KiB)` : what });
    }
  }
  return out.sort((x, y) => x.at - y.at);
}

export function formatTimeline(title: string, events: TimelineEvent[], extra: TimelineEvent[] = []): string {
  const all = [...events, ...extra].sort((x, y) => x.at - y.at);
  return [title, ...all.map((e) => `  ${e.at.toFixed(3).padStart(7)} s  ${e.workflow.padEnd(30)} ${e.what}`)].join('\n');
}

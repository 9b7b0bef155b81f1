// Kubernetes Events written by activities. The name derives from a
// deterministic event ID, so a retried activity creates the Event once.
import { createHash } from 'node:crypto';
import type { CoreV1Api, V1ObjectReference } from '@kubernetes/client-node';
import { httpCode, toKubeFailure } from './errors.js';

export interface EventSpec {
  namespace: string;
  involvedObject: V1ObjectReference & { name: string };
  eventId: string;
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  component: string;
}

export async function createEvent(core: CoreV1Api, e: EventSpec): Promise<void> {
  const now = new Date();
  try {
    await core.createNamespacedEvent({
      namespace: e.namespace,
      body: {
        metadata: { name: `${e.involvedObject.name.slice(0, 200)}.${createHash('sha256').update(e.eventId).digest('hex').slice(0, 20)}`, namespace: e.namespace },
        involvedObject: e.involvedObject,
        type: e.type,
        reason: e.reason,
        message: e.message.slice(0, 1024),
        source: { component: e.component },
        reportingComponent: `nodeeni.networking.k8s.aws/${e.component}`,
        reportingInstance: e.component,
        action: e.reason,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
    });
  } catch (err) {
    if (httpCode(err) === 409) return; // created by an earlier attempt of this activity
    throw toKubeFailure(err, `record Event ${e.reason} on ${e.involvedObject.kind} ${e.involvedObject.name}`);
  }
}

// Kubernetes activities: observe a NodeENI and its nodes, write its status
// (the entity workflow is the single writer), manage the finalizer, record Events.
import {
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
} from '@kubernetes/client-node';
import { httpCode, kubeCall, toKubeFailure } from './errors.js';
import { createEvent } from './events.js';
import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { API_GROUP, API_VERSION, FINALIZER, NODEENI_KIND, NODEENI_PLURAL } from '../../common/names.js';
import type { Condition, NodeENIObject, NodeENISpec, NodeENIStatus } from '../../common/types.js';
import { labelSelectorString, observeNode, type ObservedNode } from './node-identity.js';

export interface ObservedNodeENI {
  /** False when the object is gone, or was replaced by one with another UID. */
  exists: boolean;
  generation: number;
  deleting: boolean;
  hasFinalizer: boolean;
  spec: NodeENISpec;
  status: NodeENIStatus;
  /**
   * statusDigest(status) as read: writeStatus compares the pass's new status with it and writes it in
   * one request, without reading the object again. Absent in results recorded before it existed.
   */
  statusDigest?: string;
  /** Where our finalizer stood in metadata.finalizers as read: removeFinalizer removes it in one request. Absent when it was not there, and in results recorded before it existed. */
  finalizerIndex?: number;
  nodes: ObservedNode[];
}

/** A digest of a status that ignores the order of keys (the API server's order need not be ours). */
export function statusDigest(status: NodeENIStatus): string {
  return createHash('sha256').update(canonicalJson(JSON.parse(JSON.stringify(status)))).digest('hex');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export interface EventInput {
  name: string;
  uid: string;
  /** Deterministic per workflow step, so a retried activity creates the Event once. */
  eventId: string;
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

const EVENT_NAMESPACE = 'default';

export function createKubeActivities({ kc }: { kc: KubeConfig }) {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const ref = (name: string) => ({ group: API_GROUP, version: API_VERSION, plural: NODEENI_PLURAL, name });
  const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  const jsonPatch = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);

  async function getNodeEni(name: string, uid: string): Promise<NodeENIObject | undefined> {
    try {
      const obj = (await custom.getClusterCustomObject(ref(name))) as NodeENIObject;
      return obj.metadata.uid === uid ? obj : undefined;
    } catch (err) {
      if (httpCode(err) === 404) return undefined;
      throw toKubeFailure(err, `get NodeENI ${name}`);
    }
  }

  function recordOne(input: EventInput): Promise<void> {
    return createEvent(core, {
      namespace: EVENT_NAMESPACE,
      involvedObject: { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: NODEENI_KIND, name: input.name, uid: input.uid },
      eventId: input.eventId, type: input.type, reason: input.reason, message: input.message, component: 'nodeeni-controller',
    });
  }

  return {
    /** Reads the NodeENI and the nodes its selector picks, fresh from the API server. */
    async observeNodeEni(input: { name: string; uid: string }): Promise<ObservedNodeENI> {
      const obj = await getNodeEni(input.name, input.uid);
      if (!obj) return { exists: false, generation: 0, deleting: false, hasFinalizer: false, spec: { nodeSelector: {} }, status: {}, nodes: [] };
      const selector = obj.spec.nodeSelector ?? {};
      const nodes =
        Object.keys(selector).length === 0
          ? []
          : (await kubeCall('list nodes', () => core.listNode({ labelSelector: labelSelectorString(selector) }))).items.map(observeNode);
      return {
        exists: true,
        generation: obj.metadata.generation ?? 0,
        deleting: obj.metadata.deletionTimestamp !== undefined,
        hasFinalizer: (obj.metadata.finalizers ?? []).includes(FINALIZER),
        spec: obj.spec,
        status: obj.status ?? {},
        statusDigest: statusDigest(obj.status ?? {}),
        ...((obj.metadata.finalizers ?? []).includes(FINALIZER) ? { finalizerIndex: obj.metadata.finalizers!.indexOf(FINALIZER) } : {}),
        nodes: nodes.sort((a, b) => a.name.localeCompare(b.name)),
      };
    },

    /**
     * Writes status only when it differs from what is stored: no churn, no hot loop. With the digest of
     * the status the pass observed, one request: nothing when the new status is the same, else the
     * status replaced whole on the condition that the object is still the one with this UID (a JSON
     * patch's `test`), so a NodeENI re-created under the same name is never written to. The entity is
     * the status's single writer, so what its pass observed is what is stored.
     */
    async writeStatus(input: { name: string; uid: string; status: NodeENIStatus; observedDigest?: string }): Promise<{ changed: boolean; digest?: string }> {
      // `digest`: of the status stored now, when the object is still this one (the next pass may compare with it).
      const digest = statusDigest(input.status);
      if (input.observedDigest !== undefined) {
        if (digest === input.observedDigest) return { changed: false, digest };
        const ops = [
          { op: 'test', path: '/metadata/uid', value: input.uid },
          { op: 'add', path: '/status', value: input.status },
        ];
        try {
          await custom.patchClusterCustomObjectStatus({ ...ref(input.name), body: ops }, jsonPatch);
          return { changed: true, digest };
        } catch (err) {
          if (httpCode(err) === 404) return { changed: false };
          // A failed `test` and a status the schema refuses both answer 422 (the first without details):
          // the path below reads the object and tells them apart.
          if (httpCode(err) !== 422) throw toKubeFailure(err, `patch NodeENI ${input.name} status`);
        }
      }
      const obj = await getNodeEni(input.name, input.uid);
      if (!obj) return { changed: false };
      if (isDeepStrictEqual(JSON.parse(JSON.stringify(obj.status ?? {})), JSON.parse(JSON.stringify(input.status)))) return { changed: false, digest };
      // A merge patch replaces lists whole; `null` clears fields we no longer report.
      const body: Record<string, unknown> = { status: { ...nullsFor(obj.status ?? {}), ...input.status } };
      await kubeCall(`patch NodeENI ${input.name} status`, () =>
        custom.patchClusterCustomObjectStatus({ ...ref(input.name), body }, mergePatch),
      );
      return { changed: true, digest };
    },

    /**
     * Sets one condition and leaves the rest of the status alone: how a failed
     * pass is reported when no full status could be computed. The transition
     * time moves only when the condition's status changes.
     */
    async setCondition(input: { name: string; uid: string; condition: Omit<Condition, 'lastTransitionTime'> }): Promise<{ changed: boolean }> {
      const obj = await getNodeEni(input.name, input.uid);
      if (!obj) return { changed: false };
      const conditions = obj.status?.conditions ?? [];
      const before = conditions.find((c) => c.type === input.condition.type);
      if (before && before.status === input.condition.status && before.reason === input.condition.reason && before.message === input.condition.message) return { changed: false };
      const next: Condition = {
        ...before,
        ...input.condition,
        lastTransitionTime: before && before.status === input.condition.status ? before.lastTransitionTime : new Date().toISOString(),
      };
      const body = { metadata: { resourceVersion: obj.metadata.resourceVersion }, status: { conditions: [...conditions.filter((c) => c.type !== next.type), next] } };
      await kubeCall(`patch NodeENI ${input.name} condition ${next.type}`, () =>
        custom.patchClusterCustomObjectStatus({ ...ref(input.name), body }, mergePatch),
      );
      return { changed: true };
    },

    /** Removes our finalizer with optimistic concurrency (resourceVersion), once cleanup is complete. */
    /**
     * Removes our finalizer. With where the pass saw it (`finalizerIndex`), one JSON patch that holds
     * only while the object is still this one and the finalizer still stands there; when either test
     * fails (422), or without the index, the object is read and patched with its resourceVersion.
     */
    async removeFinalizer(input: { name: string; uid: string; finalizerIndex?: number }): Promise<{ removed: boolean }> {
      if (input.finalizerIndex !== undefined) {
        const at = `/metadata/finalizers/${input.finalizerIndex}`;
        const ops = [
          { op: 'test', path: '/metadata/uid', value: input.uid },
          { op: 'test', path: at, value: FINALIZER },
          { op: 'remove', path: at },
        ];
        try {
          await custom.patchClusterCustomObject({ ...ref(input.name), body: ops }, jsonPatch);
          return { removed: true };
        } catch (err) {
          if (httpCode(err) === 404) return { removed: false };
          if (httpCode(err) !== 422) throw toKubeFailure(err, `remove finalizer from NodeENI ${input.name}`);
        }
      }
      const obj = await getNodeEni(input.name, input.uid);
      if (!obj || !(obj.metadata.finalizers ?? []).includes(FINALIZER)) return { removed: false };
      const finalizers = (obj.metadata.finalizers ?? []).filter((f) => f !== FINALIZER);
      await kubeCall(`remove finalizer from NodeENI ${input.name}`, () =>
        custom.patchClusterCustomObject(
          { ...ref(input.name), body: { metadata: { finalizers, resourceVersion: obj.metadata.resourceVersion } } },
          mergePatch,
        ),
      );
      return { removed: true };
    },

    async recordEvent(input: EventInput): Promise<void> {
      await recordOne(input);
    },

    /** Several Events side by side; a retry records them all again (each updates its own Event). */
    async recordEvents(inputs: EventInput[]): Promise<void> {
      const failed = (await Promise.allSettled(inputs.map(recordOne))).filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed.length > 0) throw failed[0]!.reason;
    },
  };
}

function nullsFor(status: NodeENIStatus): Record<string, null> {
  return Object.fromEntries(Object.keys(status).map((k) => [k, null]));
}

export type KubeActivities = ReturnType<typeof createKubeActivities>;

// Pods of one node, as the resctrl workflow needs them, and Events on pods.
import { CoreV1Api, type KubeConfig, type V1ContainerStatus, type V1Pod } from '@kubernetes/client-node';
import type { QosClass } from '../../host/cgroup.js';
import { httpCode, kubeCall, toKubeFailure } from './errors.js';
import { createEvent } from './events.js';

export interface NodePodContainer {
  name: string;
  /** Runtime container ID without its `containerd://` prefix. */
  id: string;
  running: boolean;
}

export interface NodePod {
  uid: string;
  namespace: string;
  name: string;
  qosClass: QosClass;
  containers: NodePodContainer[];
}

const CONTAINER_ID = /^[a-z0-9-]+:\/\/([0-9a-f]{12,64})$/;

function containersOf(statuses: V1ContainerStatus[] | undefined): NodePodContainer[] {
  return (statuses ?? []).flatMap((s) => {
    const m = CONTAINER_ID.exec(s.containerID ?? '');
    return m ? [{ name: s.name, id: m[1]!, running: s.state?.running !== undefined }] : [];
  });
}

/** Pods that hold (or will hold) processes on the node: not finished, not gone. */
function isLive(p: V1Pod): boolean {
  return !p.metadata?.deletionTimestamp && p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed';
}

export function createPodActivities({ kc }: { kc: KubeConfig }) {
  const core = kc.makeApiClient(CoreV1Api);
  return {
    async listNodePods(input: { nodeName: string }): Promise<NodePod[]> {
      const list = await kubeCall(`list pods of node ${input.nodeName}`, () =>
        core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${input.nodeName}` }),
      );
      return list.items
        .filter(isLive)
        .map((p) => ({
          uid: p.metadata!.uid!,
          namespace: p.metadata!.namespace!,
          name: p.metadata!.name!,
          qosClass: (p.status?.qosClass ?? 'BestEffort') as NodePod['qosClass'],
          containers: [
            ...containersOf(p.status?.initContainerStatuses),
            ...containersOf(p.status?.containerStatuses),
            ...containersOf(p.status?.ephemeralContainerStatuses),
          ].filter((c) => c.running),
        }))
        .sort((a, b) => a.uid.localeCompare(b.uid));
    },

    /** False once the Node object is gone: the per-node workflows end then. */
    async nodeExists(input: { nodeName: string }): Promise<boolean> {
      try {
        await core.readNode({ name: input.nodeName });
        return true;
      } catch (err) {
        if (httpCode(err) === 404) return false;
        throw toKubeFailure(err, `read node ${input.nodeName}`);
      }
    },

    async recordNodeEvent(input: { nodeName: string; eventId: string; type: 'Normal' | 'Warning'; reason: string; message: string; component: string }): Promise<void> {
      await createEvent(core, {
        namespace: 'default',
        involvedObject: { apiVersion: 'v1', kind: 'Node', name: input.nodeName, uid: input.nodeName },
        eventId: input.eventId, type: input.type, reason: input.reason, message: input.message, component: input.component,
      });
    },

    async recordPodEvent(input: { namespace: string; podName: string; podUid: string; eventId: string; type: 'Normal' | 'Warning'; reason: string; message: string }): Promise<void> {
      await createEvent(core, {
        namespace: input.namespace,
        involvedObject: { apiVersion: 'v1', kind: 'Pod', namespace: input.namespace, name: input.podName, uid: input.podUid },
        eventId: input.eventId, type: input.type, reason: input.reason, message: input.message, component: 'nodeeni-resctrl',
      });
    },
  };
}

export type PodActivities = ReturnType<typeof createPodActivities>;

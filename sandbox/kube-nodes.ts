// Kubernetes Node objects for EC2 instances, as a cloud provider would register
// them: providerID, zone label and hostname. Shared by the sandbox and tests.
import { CoreV1Api, type KubeConfig, type V1Node } from '@kubernetes/client-node';
import { ZONE_LABEL } from '../common/names.js';

export interface NodeForInstance {
  name: string;
  instanceId: string;
  az: string;
  labels?: Record<string, string>;
}

export function nodeObject(n: NodeForInstance): V1Node {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: n.name,
      labels: {
        'kubernetes.io/hostname': n.name,
        'kubernetes.io/os': 'linux',
        [ZONE_LABEL]: n.az,
        'topology.kubernetes.io/region': n.az.slice(0, -1),
        ...n.labels,
      },
    },
    spec: { providerID: `aws:///${n.az}/${n.instanceId}` },
  };
}

/** Creates the nodes, or replaces their labels when they exist already. */
export async function registerNodes(kc: KubeConfig, nodes: NodeForInstance[]): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  for (const n of nodes) {
    const body = nodeObject(n);
    try {
      await core.createNode({ body });
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw err;
      const current = await core.readNode({ name: n.name });
      current.metadata!.labels = body.metadata!.labels;
      await core.replaceNode({ name: n.name, body: current });
    }
  }
}

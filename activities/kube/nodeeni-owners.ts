// Which NodeENI objects exist: the leaked-ENI sweeper's ownership check (an
// ENI whose NodeENI still exists is that NodeENI's business, not the
// sweeper's), also used by the CLI's status table.
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { API_GROUP, API_VERSION, NODEENI_PLURAL } from '../../common/names.js';
import type { NodeENIObject } from '../../common/types.js';
import { kubeCall } from './errors.js';

/** Every NodeENI (matching the label selector, when given), read in chunks of 500. */
export async function listNodeEnis(custom: CustomObjectsApi, labelSelector?: string): Promise<NodeENIObject[]> {
  const out: NodeENIObject[] = [];
  let next: string | undefined;
  do {
    const page = (await kubeCall('list NodeENIs', () =>
      custom.listClusterCustomObject({ group: API_GROUP, version: API_VERSION, plural: NODEENI_PLURAL, labelSelector, limit: 500, _continue: next }),
    )) as { items: NodeENIObject[]; metadata?: { continue?: string } };
    out.push(...page.items);
    next = page.metadata?.continue || undefined;
  } while (next);
  return out;
}

export function createSweeperKubeActivities({ kc }: { kc: KubeConfig }) {
  const custom = kc.makeApiClient(CustomObjectsApi);
  return {
    /**
     * Of these NodeENI UIDs, the ones an existing object has (being deleted
     * or not), with its name. Asked after the ENIs were listed: an ENI carries
     * the UID of an object that existed before the ENI did, so a UID missing
     * now belongs to an object that is gone for good.
     */
    async liveNodeEnis(input: { uids: string[] }): Promise<Record<string, string>> {
      const wanted = new Set(input.uids);
      const live: Record<string, string> = {};
      for (const o of await listNodeEnis(custom)) if (wanted.has(o.metadata.uid)) live[o.metadata.uid] = o.metadata.name;
      return live;
    },
  };
}

export type SweeperKubeActivities = ReturnType<typeof createSweeperKubeActivities>;

// What a pass knows of the NodeENI's ENIs when it re-read only those its children reported
// (REPORTED_REREADS_PATCH in nodeeni-entity.ts).
import type { ManagedEni } from '../activities/ec2/ec2-activities.js';

/**
 * The last listing with the re-read ENIs replaced by what EC2 said of them now (absent: gone), in the
 * listing's order. Whatever else the answer holds wins too: a control worker of an older release
 * ignores `eniIds` and lists every ENI.
 */
export function mergeRereads(last: ManagedEni[], reread: string[], fresh: ManagedEni[]): ManagedEni[] {
  const byId = new Map(last.map((e) => [e.eniId, e]));
  for (const id of reread) byId.delete(id);
  for (const e of fresh) byId.set(e.eniId, e);
  return [...byId.values()].sort((a, b) => a.eniId.localeCompare(b.eniId));
}

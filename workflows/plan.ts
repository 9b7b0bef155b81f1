// Reconcile planning: desired attachments from the spec and the nodes, compared
// with the ENIs observed in EC2. Pure and deterministic; unit-tested directly.
import { attachmentKeyString, type AttachmentKey } from '../common/names.js';
import type { GoControllerEni, InstanceInfo, ManagedEni, ResolvedSpec, ResolvedSubnet, SpecProblem } from '../activities/ec2/ec2-activities.js';
import type { ObservedNodeENI } from '../activities/kube/kube-activities.js';
import type { NodeENIStatus } from '../common/types.js';
import type { EntityState } from '../common/workflow-api.js';

export interface DesiredAttachment {
  key: AttachmentKey;
  keyString: string;
  subnet: ResolvedSubnet;
  securityGroupIds: string[];
  preferredDeviceIndex: number;
}

export interface PlanInput {
  uid: string;
  observed: ObservedNodeENI;
  instances: InstanceInfo[];
  /** Resolution of the spec per VPC of the selected nodes. */
  resolved: ResolvedSpec[];
  managed: ManagedEni[];
  state: EntityState;
  /** Attachment keys with a provisioning or teardown child running. */
  busyKeys: ReadonlySet<string>;
  /** ENI ids with a teardown child running. */
  busyEnis: ReadonlySet<string>;
  now: number;
}

export interface Plan {
  desired: DesiredAttachment[];
  problems: SpecProblem[];
  /** Subnets left out for a node because they lie in another zone: expected with multi-AZ subnet lists. */
  skipped: SpecProblem[];
  /** The ENI currently serving each desired key, if any. */
  eniByKey: Map<string, ManagedEni>;
  provision: DesiredAttachment[];
  /** Every ENI on its way out (being torn down now, waiting, or backing off). */
  removing: ManagedEni[];
  /** The part of `removing` to start tearing down now. */
  teardown: ManagedEni[];
  /** ENIs we keep although no longer desired, because the spec does not fully resolve. */
  retained: ManagedEni[];
}

/** Everything this NodeENI should have right now. */
export function desiredAttachments(input: Pick<PlanInput, 'uid' | 'observed' | 'instances' | 'resolved'>): { desired: DesiredAttachment[]; problems: SpecProblem[]; skipped: SpecProblem[] } {
  const { observed } = input;
  const problems: SpecProblem[] = [];
  const skipped: SpecProblem[] = [];
  const desired: DesiredAttachment[] = [];
  if (!observed.exists || observed.deleting) return { desired, problems, skipped };
  const byInstance = new Map(input.instances.map((i) => [i.instanceId, i]));
  const byVpc = new Map(input.resolved.map((r) => [r.vpcId, r]));
  for (const r of input.resolved) for (const p of r.problems) problems.push(p);
  const base = observed.spec.deviceIndex ?? 1;
  for (const node of observed.nodes) {
    if (!node.instanceId) {
      problems.push({ reason: 'NodeWithoutInstance', message: `node ${node.name} has no AWS providerID yet` });
      continue;
    }
    const instance = byInstance.get(node.instanceId);
    if (!instance) {
      problems.push({ reason: 'InstanceNotFound', message: `instance ${node.instanceId} of node ${node.name} does not exist` });
      continue;
    }
    const resolved = byVpc.get(instance.vpcId);
    if (!resolved) continue;
    if (resolved.securityGroupIds.length === 0) {
      problems.push({ reason: 'NoSecurityGroups', message: `no security group resolves in ${instance.vpcId}; node ${node.name} gets no ENI` });
      continue;
    }
    let position = 0;
    for (const subnet of resolved.subnets) {
      if (subnet.az !== instance.az) {
        skipped.push({
          reason: 'SubnetZoneMismatch',
          message: `subnet ${subnet.id} is in ${subnet.az}, node ${node.name} in ${instance.az}: skipped`,
        });
        continue;
      }
      const key = { nodeName: node.name, instanceId: instance.instanceId, subnetId: subnet.id };
      desired.push({
        key,
        keyString: attachmentKeyString(input.uid, key),
        subnet,
        securityGroupIds: resolved.securityGroupIds,
        preferredDeviceIndex: base + position,
      });
      position++;
    }
    if (position === 0 && resolved.subnets.length > 0) {
      problems.push({ reason: 'NoSubnetInZone', message: `none of the subnets is in ${instance.az}, the zone of node ${node.name}` });
    }
  }
  return { desired, problems: dedupeProblems(problems), skipped };
}

function dedupeProblems(problems: SpecProblem[]): SpecProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const k = `${p.reason}\u0000${p.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** A failure of this key at this generation whose retry time has not come. */
export function inBackoff(state: EntityState, key: string, generation: number, now: number): boolean {
  const f = state.failures[key];
  return f !== undefined && f.generation === generation && f.retryAt > now;
}

export function needsProvisioning(d: DesiredAttachment, eni: ManagedEni | undefined, state: EntityState, generation: number): boolean {
  if (!eni || !eni.attachment || eni.attachment.instanceId !== d.key.instanceId || eni.attachment.status !== 'attached') return true;
  const done = state.configured[d.keyString];
  return !done || done.eniId !== eni.eniId || done.attachmentId !== eni.attachment.attachmentId || done.generation !== generation;
}

export function planReconcile(input: PlanInput): Plan {
  const { desired, problems, skipped } = desiredAttachments(input);
  const generation = input.observed.generation;
  const leakedIds = new Set(input.state.leaked.map((l) => l.eniID));
  const desiredKeys = new Set(desired.map((d) => d.keyString));
  // Keep ENIs of still-selected nodes while a subnet reference does not resolve:
  // a missing Name tag must not tear down a working interface.
  const subnetsUnresolved = problems.some((p) => p.reason.startsWith('Subnet'));
  const selectedNodes = new Set(input.observed.exists && !input.observed.deleting ? input.observed.nodes.map((n) => n.name) : []);

  const eniByKey = new Map<string, ManagedEni>();
  const removing: ManagedEni[] = [];
  const retained: ManagedEni[] = [];
  for (const eni of input.managed) {
    if (eni.leaked || leakedIds.has(eni.eniId)) continue;
    const key = eni.attachmentKey;
    if (key !== undefined && desiredKeys.has(key) && !eniByKey.has(key)) {
      eniByKey.set(key, eni);
      continue;
    }
    if (subnetsUnresolved && eni.nodeName !== undefined && selectedNodes.has(eni.nodeName) && !(key && desiredKeys.has(key))) {
      retained.push(eni);
      continue;
    }
    removing.push(eni);
  }
  const teardown = removing.filter(
    (eni) =>
      !input.busyEnis.has(eni.eniId) &&
      !(eni.attachmentKey !== undefined && input.busyKeys.has(eni.attachmentKey)) &&
      !inBackoff(input.state, `eni:${eni.eniId}`, generation, input.now),
  );
  const provision = desired.filter(
    (d) =>
      !input.busyKeys.has(d.keyString) &&
      !inBackoff(input.state, d.keyString, generation, input.now) &&
      needsProvisioning(d, eniByKey.get(d.keyString), input.state, generation),
  );
  return { desired, problems, skipped, eniByKey, provision, removing, teardown, retained };
}

// ---- migration from the Go controller ----------------------------------------

/** A row of status.attachments as the Go controller wrote it (read through our CRD). */
export interface GoStatusRow {
  nodeID: string;
  instanceID: string;
  eniID: string;
  subnetID?: string;
}

/**
 * The rows the Go controller wrote: ours always carry a `phase` (the CRD
 * requires it); its rows never do (its own `status: attached` and
 * `lastUpdated` are unknown to our schema and pruned when read).
 */
export function goControllerRows(status: NodeENIStatus | undefined): GoStatusRow[] {
  return (status?.attachments ?? [])
    .filter((r) => (r as { phase?: unknown }).phase === undefined && typeof r.eniID === 'string' && r.eniID !== '')
    .map((r) => ({ nodeID: r.nodeID ?? '', instanceID: r.instanceID ?? '', eniID: r.eniID!, subnetID: r.subnetID }));
}

export interface GoAdoptionInput extends Pick<PlanInput, 'uid' | 'observed' | 'instances' | 'resolved' | 'managed'> {
  nodeEniName: string;
  /** What findGoControllerEnis returned. */
  candidates: GoControllerEni[];
}

export interface GoAdoption {
  eni: GoControllerEni;
  key: AttachmentKey;
  keyString: string;
}

export interface GoRefusal {
  eniId: string;
  nodeName?: string;
  reason: string;
  message: string;
}

export interface GoAdoptionPlan {
  adopt: GoAdoption[];
  refuse: GoRefusal[];
}

/**
 * Which of the Go controller's ENIs this NodeENI takes over. Evidence that an
 * ENI is this NodeENI's: the Go controller's tags name this NodeENI, or the
 * status it wrote on this very object lists the ENI. It is adopted for node N
 * only when all of this holds, and refused (left alone, reported) otherwise:
 *  - it carries the Go controller's managed-by tag (every version wrote it; the IAM policy lets us tag only those);
 *  - it carries none of our tags (else it is ours already, or another NodeENI's or cluster's);
 *  - no Go tag names another NodeENI, and its node (Go tag `Node`, or the status row) is N, a node the NodeENI selects;
 *  - it is a secondary interface (not device index 0, not managed by an AWS service);
 *  - it is attached to N's current instance, or unattached but listed in the Go status for N on that
 *    instance (its own tags alone do not tie an unattached ENI to this cluster);
 *  - its subnet is one the spec resolves to for N (N's zone), and no other ENI already serves that (N, subnet).
 * While the NodeENI is being deleted, the subnet conditions do not apply: what is adopted is torn down,
 * as the Go controller would have done. The first of several candidates for one (N, subnet) wins: one
 * the status lists, then one attached, then the lower device index, then the lower ENI ID.
 */
export function planGoAdoption(input: GoAdoptionInput): GoAdoptionPlan {
  const { observed, uid } = input;
  const out: GoAdoptionPlan = { adopt: [], refuse: [] };
  if (!observed.exists) return out;
  const rows = new Map(goControllerRows(observed.status).map((r) => [r.eniID, r]));
  const nodes = new Map(observed.nodes.map((n) => [n.name, n]));
  const { desired, problems } = desiredAttachments(input);
  const desiredBy = new Map(desired.map((d) => [`${d.key.nodeName}\u0000${d.key.subnetId}`, d]));
  const subnetsUnresolved = problems.some((p) => p.reason.startsWith('Subnet'));
  const served = new Set(input.managed.filter((m) => !m.leaked && m.attachmentKey !== undefined).map((m) => m.attachmentKey!));
  const ours = new Set(input.managed.map((m) => m.eniId));

  const rank = (e: GoControllerEni) => [rows.has(e.eniId) ? 0 : 1, e.attachment ? 0 : 1, e.attachment?.deviceIndex ?? 0] as const;
  const candidates = input.candidates
    .filter((e) => !ours.has(e.eniId) && e.owner.uid !== uid)
    .sort((a, b) => {
      const [x, y] = [rank(a), rank(b)];
      return x[0] - y[0] || x[1] - y[1] || x[2] - y[2] || a.eniId.localeCompare(b.eniId);
    });

  for (const eni of candidates) {
    const row = rows.get(eni.eniId);
    const tagged = eni.go.managedBy && eni.go.nodeEni === input.nodeEniName;
    if (!tagged && !row) continue; // not this NodeENI's, by either kind of evidence
    const nodeName = eni.go.node ?? row?.nodeID;
    const refuse = (reason: string, message: string) => out.refuse.push({ eniId: eni.eniId, nodeName, reason, message });
    if (!eni.go.managedBy) {
      refuse('NotGoControllerTagged', 'listed in the status, but without the Go controller\'s managed-by tag');
      continue;
    }
    if (eni.owner.managedBy !== undefined || eni.owner.uid !== undefined || eni.owner.cluster !== undefined) {
      refuse('OwnedByOther', `carries our tags for another owner (NodeENI uid ${eni.owner.uid ?? 'unknown'}, cluster ${eni.owner.cluster ?? 'unknown'})`);
      continue;
    }
    if (eni.go.nodeEni !== undefined && eni.go.nodeEni !== input.nodeEniName) {
      refuse('OtherNodeENI', `listed in the status, but its Go controller tags name NodeENI ${eni.go.nodeEni}`);
      continue;
    }
    if (eni.go.node !== undefined && row && row.nodeID !== eni.go.node) {
      refuse('NodeMismatch', `its Go controller tags name node ${eni.go.node}, the status node ${row.nodeID}`);
      continue;
    }
    if (!nodeName) {
      refuse('NodeUnknown', 'neither its tags nor the status name its node');
      continue;
    }
    const node = nodes.get(nodeName);
    if (!node) {
      refuse('NodeNotSelected', `node ${nodeName} is not selected by the NodeENI (or is gone)`);
      continue;
    }
    if (!node.instanceId) {
      refuse('NodeWithoutInstance', `node ${nodeName} has no AWS providerID yet`);
      continue;
    }
    if (eni.requesterManaged || eni.attachment?.deviceIndex === 0) {
      refuse('NotSecondary', `is ${eni.requesterManaged ? 'managed by an AWS service' : 'the primary interface (device index 0)'}`);
      continue;
    }
    if (eni.attachment && eni.attachment.instanceId !== node.instanceId) {
      refuse('AttachedToOtherInstance', `attached to ${eni.attachment.instanceId}, not to ${node.instanceId}, the instance of node ${nodeName}`);
      continue;
    }
    if (!eni.attachment && !row) {
      refuse('NotAttached', `not attached, and the status the Go controller wrote does not list it: nothing ties it to node ${nodeName} of this cluster`);
      continue;
    }
    if (!eni.attachment && row && row.instanceID !== node.instanceId) {
      refuse('ListedForOtherInstance', `not attached, and listed for ${row.instanceID || 'no instance'}, not for ${node.instanceId}, the instance of node ${nodeName}`);
      continue;
    }
    const key = { nodeName, instanceId: node.instanceId, subnetId: eni.subnetId };
    if (observed.deleting) {
      out.adopt.push({ eni, key, keyString: attachmentKeyString(uid, key) });
      continue;
    }
    const d = desiredBy.get(`${nodeName}\u0000${eni.subnetId}`);
    if (!d) {
      if (subnetsUnresolved) refuse('SpecUnresolved', `in subnet ${eni.subnetId}; the spec's subnets do not all resolve yet, so it is not known whether node ${nodeName} wants it`);
      else refuse('SubnetNotInSpec', `in subnet ${eni.subnetId}, which is not among the subnets the spec resolves to for node ${nodeName}`);
      continue;
    }
    if (served.has(d.keyString)) {
      refuse('Duplicate', `node ${nodeName} already has an ENI for subnet ${eni.subnetId}`);
      continue;
    }
    served.add(d.keyString);
    out.adopt.push({ eni, key: d.key, keyString: d.keyString });
  }
  return out;
}

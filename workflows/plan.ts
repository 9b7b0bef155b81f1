// Reconcile planning: desired attachments from the spec and the nodes, compared
// with the ENIs observed in EC2. Pure and deterministic; unit-tested directly.
import { attachmentKeyString, type AttachmentKey } from '../common/names.js';
import type { InstanceInfo, ManagedEni, ResolvedSpec, ResolvedSubnet, SpecProblem } from '../activities/ec2/ec2-activities.js';
import type { ObservedNodeENI } from '../activities/kube/kube-activities.js';
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

function inBackoff(state: EntityState, key: string, generation: number, now: number): boolean {
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

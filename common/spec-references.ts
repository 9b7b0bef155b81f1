// A NodeENI's subnet and security-group references, resolved within one VPC.
// EC2 is read once (activities: lookUpSpecReferences); which of the found
// resources a VPC gets, and what is missing or ambiguous there, is decided
// here, by pure code that workflows and activities both run. So the entity can
// read the references while it is still reading its nodes' instances, before
// it knows their VPCs, and resolve them for each VPC afterwards.
import type { NodeENISpec } from './types.js';

export interface ResolvedSubnet {
  id: string;
  name?: string;
  az: string;
  cidr?: string;
}

export interface SpecProblem {
  reason: string;
  message: string;
}

export interface ResolvedSpec {
  vpcId: string;
  subnets: ResolvedSubnet[];
  securityGroupIds: string[];
  problems: SpecProblem[];
}

export interface FoundSubnet {
  id: string;
  vpcId: string;
  /** Its Name tag. */
  name?: string;
  az: string;
  cidr?: string;
}

export interface FoundGroup {
  id: string;
  vpcId: string;
  groupName?: string;
  /** Its Name tag. */
  name?: string;
}

/**
 * What EC2 holds for the spec's references: subnets by ID and by Name tag, security groups by ID, by
 * group name and by Name tag. Read in one VPC (`vpcId`) or in all of them; resolving for a VPC ignores
 * whatever lies elsewhere.
 */
export interface SpecReferences {
  subnetsById: FoundSubnet[];
  subnetsByName: FoundSubnet[];
  groupsById: FoundGroup[];
  groupsByGroupName: FoundGroup[];
  groupsByNameTag: FoundGroup[];
  /**
   * The security-group names looked up by Name tag: those no group has as its group name (in the VPC
   * read, or in any VPC when read across them). A VPC where another name is no group name needs a
   * look of its own (resolveSpecInVpc answers undefined).
   */
  namesLookedUpByTag: string[];
}

export function subnetIdsOf(spec: NodeENISpec): string[] {
  return [...new Set([spec.subnetID, ...(spec.subnetIDs ?? [])].filter((x): x is string => !!x))];
}

export function subnetNamesOf(spec: NodeENISpec): string[] {
  return [...new Set([spec.subnetName, ...(spec.subnetNames ?? [])].filter((x): x is string => !!x))];
}

export function groupNamesOf(spec: NodeENISpec): string[] {
  return [...new Set(spec.securityGroupNames ?? [])];
}

/**
 * Subnets are taken in the spec's order (IDs, then names), each once; groups sorted. Anything
 * unresolvable is a problem, not an exception. Undefined when `refs` cannot tell: a security-group name
 * that is no group name in this VPC was not looked up by its Name tag (it is a group name elsewhere).
 */
export function resolveSpecInVpc(spec: NodeENISpec, refs: SpecReferences, vpcId: string): ResolvedSpec | undefined {
  const problems: SpecProblem[] = [];
  const subnets: ResolvedSubnet[] = [];
  const taken = new Set<string>();
  const add = (s: FoundSubnet, name = s.name) => {
    if (taken.has(s.id)) return;
    taken.add(s.id);
    subnets.push({ id: s.id, name, az: s.az, cidr: s.cidr });
  };

  const subnetById = new Map(refs.subnetsById.map((s) => [s.id, s]));
  for (const id of subnetIdsOf(spec)) {
    const s = subnetById.get(id);
    if (!s) problems.push({ reason: 'SubnetNotFound', message: `subnet ${id} does not exist` });
    else if (s.vpcId !== vpcId) problems.push({ reason: 'SubnetInOtherVPC', message: `subnet ${id} is in ${s.vpcId}, not in the nodes' VPC ${vpcId}` });
    else add(s);
  }
  for (const name of subnetNamesOf(spec)) {
    const found = refs.subnetsByName.filter((s) => s.vpcId === vpcId && s.name === name);
    if (found.length === 0) problems.push({ reason: 'SubnetNotFound', message: `no subnet named "${name}" in ${vpcId}` });
    else if (found.length > 1) problems.push({ reason: 'SubnetNameAmbiguous', message: `${found.length} subnets named "${name}" in ${vpcId}` });
    else add(found[0]!, name);
  }

  const groups = new Set<string>();
  const groupsHere = new Set(refs.groupsById.filter((g) => g.vpcId === vpcId).map((g) => g.id));
  for (const id of spec.securityGroupIDs ?? []) {
    if (groupsHere.has(id)) groups.add(id);
    else problems.push({ reason: 'SecurityGroupNotFound', message: `security group ${id} does not exist in ${vpcId}` });
  }
  for (const name of spec.securityGroupNames ?? []) {
    // A name is a group name first; only where no group has it is it looked for as a Name tag.
    const byGroupName = refs.groupsByGroupName.filter((g) => g.vpcId === vpcId && g.groupName === name);
    if (byGroupName.length === 0 && !refs.namesLookedUpByTag.includes(name)) return undefined;
    const found = byGroupName.length > 0 ? byGroupName : refs.groupsByNameTag.filter((g) => g.vpcId === vpcId && g.name === name);
    if (found.length === 0) problems.push({ reason: 'SecurityGroupNotFound', message: `no security group named "${name}" in ${vpcId}` });
    else if (found.length > 1) problems.push({ reason: 'SecurityGroupNameAmbiguous', message: `${found.length} security groups named "${name}" in ${vpcId}` });
    else groups.add(found[0]!.id);
  }
  return { vpcId, subnets, securityGroupIds: [...groups].sort(), problems };
}

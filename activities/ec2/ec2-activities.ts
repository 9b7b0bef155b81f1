// EC2 activities, built by a factory that takes its client
// (samples-typescript activities-dependency-injection). Every activity is
// idempotent: it describes first, adopts what already exists, and treats
// "already gone" as done.
import { createHash } from 'node:crypto';
import {
  AttachNetworkInterfaceCommand,
  CreateNetworkInterfaceCommand,
  CreateTagsCommand,
  DeleteNetworkInterfaceCommand,
  DescribeInstancesCommand,
  DescribeInstanceTypesCommand,
  DescribeNetworkInterfacesCommand,
  DetachNetworkInterfaceCommand,
  ModifyNetworkInterfaceAttributeCommand,
  paginateDescribeInstances,
  paginateDescribeNetworkInterfaces,
  paginateDescribeSecurityGroups,
  paginateDescribeSubnets,
  type EC2Client,
  type Filter,
  type NetworkInterface,
  type Tag,
  type _InstanceType,
} from '@aws-sdk/client-ec2';
import { ApplicationFailure } from '@temporalio/common';
import { Context } from '@temporalio/activity';
import { GO_CONTROLLER_MANAGED_BY_VALUE, GO_CONTROLLER_NAME, GO_CONTROLLER_TAG, MANAGED_BY_VALUE, MAX_ENIS_PER_NARROW_READ, TAG } from '../../common/names.js';
import type { NodeENISpec } from '../../common/types.js';
import { groupNamesOf, resolveSpecInVpc, subnetIdsOf, subnetNamesOf, type FoundGroup, type FoundSubnet, type ResolvedSpec, type SpecReferences } from '../../common/spec-references.js';
import { ec2Call, isEc2Code, toEc2Failure } from './errors.js';
import { EniStatusPoller } from './eni-status-poller.js';
import { TransitionClock, type Transition } from './transition-clock.js';

/** The value of a resource's Name tag. */
function nameTag(tags: Tag[] | undefined): string | undefined {
  return tags?.find((t) => t.Key === 'Name')?.Value;
}

export interface InstanceInfo {
  instanceId: string;
  az: string;
  vpcId: string;
  state: string;
  instanceType?: string;
}

/** An instance as a reconcile pass needs it: also the device indices in use on network card 0. */
export interface PassInstance extends InstanceInfo {
  usedDeviceIndices: number[];
}

export interface PassInstances {
  instances: PassInstance[];
  /** Network interfaces each instance type takes, for the types not already known to the caller. */
  maxInterfaces: Record<string, number>;
}

export type { ResolvedSpec, ResolvedSubnet, SpecProblem } from '../../common/spec-references.js';

export interface ManagedEni {
  eniId: string;
  status: string;
  subnetId: string;
  macAddress: string;
  attachmentKey?: string;
  nodeName?: string;
  instanceId?: string;
  leaked: boolean;
  /** Sorted. Absent in results recorded before it was added. */
  securityGroupIds?: string[];
  attachment?: { attachmentId: string; instanceId: string; deviceIndex: number; status: string; deleteOnTermination: boolean };
}

/**
 * An ENI the Go controller created (its tags), or one its NodeENI status
 * lists: what migration may adopt. The ManagedEni fields come from EC2 and
 * from our tags, if someone already put them on it.
 */
export interface GoControllerEni extends ManagedEni {
  /** The Go controller's tags. */
  go: { managedBy: boolean; nodeEni?: string; node?: string; subnetId?: string };
  /** Our tags naming an owner, when present (then it is ours already, or another NodeENI's or cluster's). */
  owner: { managedBy?: string; uid?: string; cluster?: string };
  /** Managed by an AWS service (a trunk/branch, an endpoint): never adoptable. */
  requesterManaged: boolean;
  /** Its VPC: a look across VPCs keeps only the nodes' (absent in looks recorded before it was added). */
  vpcId?: string;
}

/** Whose an ENI is: what our owner tags say (ownerTags). */
export interface EniOwner {
  attachmentKey: string;
  clusterName: string;
  nodeEniName: string;
  nodeEniUid: string;
  nodeName: string;
  instanceId: string;
  subnetId: string;
}

export interface AdoptGoEniInput extends EniOwner {
  eniId: string;
}

export interface EnsureEniInput extends EniOwner {
  /**
   * Identifies one provisioning attempt (the child workflow's ID and run): its
   * ClientToken. Retries of the activity reuse it; the next attempt differs, so
   * EC2 never answers a new attempt with an ENI an earlier one created and
   * maybe deleted, nor rejects it as a parameter mismatch.
   */
  attemptId: string;
  securityGroupIds: string[];
  description?: string;
  /**
   * What the entity's pass saw for this key: `absent` (no ENI), so the first
   * try creates without describing first. Later tries (a lost response) and
   * callers that say nothing look for an ENI by tag before creating.
   */
  observed?: 'absent';
}

export interface AttachEniInput {
  eniId: string;
  instanceId: string;
  preferredDeviceIndex: number;
  /**
   * The device index the entity chose from what its pass saw of the instance:
   * the first try attaches there at once. A lost race (DeviceIndexInUse) is
   * retried, and retries describe the instance and pick again.
   */
  planned?: { deviceIndex: number; usedInterfaces: number; maxInterfaces?: number };
}

/** What tagging a force-finished ENI for the sweeper found: `found: false` when EC2 no longer has it. */
export interface LeakTagResult {
  found: boolean;
}

export interface Ec2Deps {
  ec2: EC2Client;
  /**
   * The shared polls of the ENIs the waiting activities await send one request (200 ENIs each) per
   * `pollMs` on average: 5 DescribeNetworkInterfaces per second, a quarter of EC2's describe refill;
   * up to 10 saved up while idle are spent every `pollMs` / 4, so a short wait sees its change within 50 ms.
   * A wait's first poll comes when the transition is likely over (transition-clock.ts), which keeps
   * the saved requests for the polls that can find it over.
   */
  pollMs?: number;
}

function tagValue(ni: NetworkInterface, key: string): string | undefined {
  return ni.TagSet?.find((t) => t.Key === key)?.Value;
}

function toManagedEni(ni: NetworkInterface): ManagedEni {
  const a = ni.Attachment;
  return {
    eniId: ni.NetworkInterfaceId!,
    status: ni.Status ?? 'unknown',
    subnetId: ni.SubnetId ?? '',
    macAddress: ni.MacAddress ?? '',
    attachmentKey: tagValue(ni, TAG.attachmentKey),
    nodeName: tagValue(ni, TAG.node),
    instanceId: tagValue(ni, TAG.instanceId),
    leaked: tagValue(ni, TAG.leaked) !== undefined,
    securityGroupIds: (ni.Groups ?? []).map((g) => g.GroupId!).sort(),
    attachment:
      a?.AttachmentId && a.Status !== 'detached'
        ? {
            attachmentId: a.AttachmentId,
            instanceId: a.InstanceId ?? '',
            deviceIndex: a.DeviceIndex ?? -1,
            status: a.Status ?? 'unknown',
            deleteOnTermination: a.DeleteOnTermination ?? false,
          }
        : undefined,
  };
}

/** Our tags that say whose an ENI is: written when we create it, and when we adopt one. */
function ownerTags(o: EniOwner): Tag[] {
  return [
    { Key: TAG.managedBy, Value: MANAGED_BY_VALUE },
    { Key: TAG.cluster, Value: o.clusterName },
    { Key: TAG.nodeEniName, Value: o.nodeEniName },
    { Key: TAG.nodeEniUid, Value: o.nodeEniUid },
    { Key: TAG.node, Value: o.nodeName },
    { Key: TAG.instanceId, Value: o.instanceId },
    { Key: TAG.subnetId, Value: o.subnetId },
    { Key: TAG.attachmentKey, Value: o.attachmentKey },
    { Key: TAG.createdAt, Value: new Date().toISOString() },
    { Key: TAG.vpcCniNoManage, Value: 'true' },
  ];
}

function toGoControllerEni(ni: NetworkInterface): GoControllerEni {
  return {
    ...toManagedEni(ni),
    go: {
      managedBy: tagValue(ni, GO_CONTROLLER_TAG.managedBy) === GO_CONTROLLER_MANAGED_BY_VALUE,
      nodeEni: tagValue(ni, GO_CONTROLLER_TAG.nodeEni),
      node: tagValue(ni, GO_CONTROLLER_TAG.node),
      subnetId: tagValue(ni, GO_CONTROLLER_TAG.subnetId),
    },
    owner: { managedBy: tagValue(ni, TAG.managedBy), uid: tagValue(ni, TAG.nodeEniUid), cluster: tagValue(ni, TAG.cluster) },
    requesterManaged: ni.RequesterManaged === true,
    vpcId: ni.VpcId,
  };
}

/** EC2 ClientTokens are at most 64 ASCII characters: hash the attempt's identity. */
export function clientTokenFor(attemptId: string): string {
  return `nodeeni-${createHash('sha256').update(attemptId).digest('hex').slice(0, 48)}`;
}

export function createEc2Activities({ ec2, pollMs = 200 }: Ec2Deps) {
  const poller = new EniStatusPoller(ec2, pollMs);
  const clock = new TransitionClock();

  /**
   * Polls `eniId` until `over` says the transition ended, or until `bound.at`, when the last look decides.
   * A first try's first poll waits until the earliest moment recent waits found the transition over (a
   * retry may come after it ended, and polls at once).
   */
  async function awaitTransition<T>(
    eniId: string, transition: Transition,
    over: (eni: NetworkInterface | undefined) => T | undefined,
    bound?: { at: number; still: (eni: NetworkInterface) => T },
  ): Promise<T> {
    const ctx = Context.current();
    const start = Date.now();
    const fresh = ctx.info.attempt === 1;
    // Kept for every poll of the wait: one that rode along early does not make the next one due.
    const dueAt = fresh ? Math.min(bound?.at ?? Infinity, start + clock.firstPollDelayMs(transition)) : 0;
    let polls = 0;
    for (;;) {
      const { eni, sentAt } = await Promise.race([poller.next(eniId, dueAt), ctx.cancelled]);
      polls++;
      const done = over(eni);
      if (done !== undefined) {
        if (fresh) clock.waitEnded(transition, sentAt - start, polls === 1);
        return done;
      }
      // A look at the bound leaves no sample: it says nothing of when the transition ends.
      if (bound && Date.now() >= bound.at) return bound.still(eni!);
      ctx.heartbeat(eni?.Attachment?.Status);
    }
  }

  /** Whether this is the activity's first try (a retry may follow a lost response or a lost race). */
  const firstTry = () => Context.current().info.attempt === 1;

  async function describeEnis(filters: Filter[]): Promise<NetworkInterface[]> {
    const out: NetworkInterface[] = [];
    await ec2Call('DescribeNetworkInterfaces', async () => {
      for await (const page of paginateDescribeNetworkInterfaces({ client: ec2, pageSize: 1000 }, { Filters: filters })) out.push(...(page.NetworkInterfaces ?? []));
    });
    return out;
  }

  /** Describes one ENI; undefined when it no longer exists. */
  async function describeEni(eniId: string): Promise<NetworkInterface | undefined> {
    try {
      const res = await ec2.send(new DescribeNetworkInterfacesCommand({ NetworkInterfaceIds: [eniId] }));
      return res.NetworkInterfaces?.[0];
    } catch (err) {
      if (isEc2Code(err, 'InvalidNetworkInterfaceID.NotFound')) return undefined;
      throw toEc2Failure(err, `DescribeNetworkInterfaces ${eniId}`);
    }
  }

  /**
   * Interfaces per instance type, as EC2 answered: fixed for a type, so asked once per process. A new
   * NodeENI's first pass then costs DescribeInstances alone, one round trip less before its ENIs.
   */
  const interfacesByType = new Map<string, number>();
  async function lookUpInstanceTypes(types: string[]): Promise<Record<string, number>> {
    const missing = types.filter((t) => !interfacesByType.has(t));
    if (missing.length > 0) {
      const res = await ec2Call('DescribeInstanceTypes', () => ec2.send(new DescribeInstanceTypesCommand({ InstanceTypes: missing as _InstanceType[] })));
      for (const t of res.InstanceTypes ?? []) {
        if (t.InstanceType && t.NetworkInfo?.MaximumNetworkInterfaces !== undefined) interfacesByType.set(t.InstanceType, t.NetworkInfo.MaximumNetworkInterfaces);
      }
    }
    return Object.fromEntries(types.flatMap((t) => (interfacesByType.has(t) ? [[t, interfacesByType.get(t)!]] : [])));
  }

  async function maxInterfaces(instanceType: string | undefined): Promise<number | undefined> {
    if (!instanceType) return undefined;
    return (await lookUpInstanceTypes([instanceType]))[instanceType];
  }

  async function describeInstance(instanceId: string) {
    const res = await ec2Call('DescribeInstances', () =>
      ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'instance-id', Values: [instanceId] }] })),
    );
    return res.Reservations?.flatMap((r) => r.Instances ?? [])[0];
  }

  /**
   * Every reference of the spec in one call per kind, side by side (each call can be refused, and under
   * throttling a pass that needs fewer calls gets through sooner). A Name tag is looked up only for the
   * security-group names no group has (in the VPC, or in any VPC without one).
   */
  async function lookUpReferences(spec: NodeENISpec, vpcId?: string): Promise<SpecReferences> {
    const inVpc: Filter[] = vpcId ? [{ Name: 'vpc-id', Values: [vpcId] }] : [];
    const ids = subnetIdsOf(spec);
    const names = subnetNamesOf(spec);
    const groupIds = [...new Set(spec.securityGroupIDs ?? [])];
    const groupNames = groupNamesOf(spec);
    // Subnet IDs are looked up everywhere: one in another VPC is a problem of its own (SubnetInOtherVPC).
    const subnets = (filters: Filter[]) => ec2Call('DescribeSubnets', async () => {
      const out: FoundSubnet[] = [];
      for await (const page of paginateDescribeSubnets({ client: ec2, pageSize: 1000 }, { Filters: filters })) {
        for (const s of page.Subnets ?? []) out.push({ id: s.SubnetId!, vpcId: s.VpcId ?? '', name: nameTag(s.Tags), az: s.AvailabilityZone ?? '', cidr: s.CidrBlock });
      }
      return out;
    });
    const groups = (filters: Filter[]) => ec2Call('DescribeSecurityGroups', async () => {
      const out: FoundGroup[] = [];
      for await (const page of paginateDescribeSecurityGroups({ client: ec2, pageSize: 1000 }, { Filters: filters })) {
        for (const g of page.SecurityGroups ?? []) out.push({ id: g.GroupId!, vpcId: g.VpcId ?? '', groupName: g.GroupName, name: nameTag(g.Tags) });
      }
      return out;
    });
    const none = Promise.resolve([]);
    const [subnetsById, subnetsByName, groupsById, groupsByGroupName] = await Promise.all([
      ids.length === 0 ? none : subnets([{ Name: 'subnet-id', Values: ids }]),
      names.length === 0 ? none : subnets([...inVpc, { Name: 'tag:Name', Values: names }]),
      groupIds.length === 0 ? none : groups([...inVpc, { Name: 'group-id', Values: groupIds }]),
      groupNames.length === 0 ? none : groups([...inVpc, { Name: 'group-name', Values: groupNames }]),
    ]);
    const namesLookedUpByTag = groupNames.filter((n) => !groupsByGroupName.some((g) => g.groupName === n));
    const groupsByNameTag = namesLookedUpByTag.length === 0 ? [] : await groups([...inVpc, { Name: 'tag:Name', Values: namesLookedUpByTag }]);
    return { subnetsById, subnetsByName, groupsById, groupsByGroupName, groupsByNameTag, namesLookedUpByTag };
  }

  return {
    /** The instances behind the selected nodes; instances that no longer exist are left out. */
    async describeInstances(input: { instanceIds: string[] }): Promise<InstanceInfo[]> {
      if (input.instanceIds.length === 0) return [];
      const res = await ec2Call('DescribeInstances', () =>
        ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'instance-id', Values: input.instanceIds }] })),
      );
      return (res.Reservations ?? [])
        .flatMap((r) => r.Instances ?? [])
        .filter((i) => i.InstanceId && i.State?.Name !== 'terminated')
        .map((i) => ({
          instanceId: i.InstanceId!,
          az: i.Placement?.AvailabilityZone ?? '',
          vpcId: i.VpcId ?? '',
          state: i.State?.Name ?? 'unknown',
          instanceType: i.InstanceType,
        }));
    },

    /**
     * The instances behind the selected nodes with the device indices in use,
     * and the interface limit of each instance type the caller does not know
     * yet: everything a pass needs to plan attachments without more calls.
     */
    async describeInstancesForPass(input: { instanceIds: string[]; knownTypes: string[] }): Promise<PassInstances> {
      const instances: PassInstance[] = [];
      for (let i = 0; i < input.instanceIds.length; i += 200) {
        const chunk = input.instanceIds.slice(i, i + 200);
        await ec2Call('DescribeInstances', async () => {
          for await (const page of paginateDescribeInstances({ client: ec2, pageSize: 1000 }, { Filters: [{ Name: 'instance-id', Values: chunk }] })) {
            for (const inst of (page.Reservations ?? []).flatMap((r) => r.Instances ?? [])) {
              if (!inst.InstanceId || inst.State?.Name === 'terminated') continue;
              instances.push({
                instanceId: inst.InstanceId,
                az: inst.Placement?.AvailabilityZone ?? '',
                vpcId: inst.VpcId ?? '',
                state: inst.State?.Name ?? 'unknown',
                instanceType: inst.InstanceType,
                usedDeviceIndices: (inst.NetworkInterfaces ?? [])
                  .filter((n) => n.Attachment && n.Attachment.Status !== 'detached' && (n.Attachment.NetworkCardIndex ?? 0) === 0)
                  .map((n) => n.Attachment!.DeviceIndex!)
                  .sort((a, b) => a - b),
              });
            }
          }
        });
      }
      const known = new Set(input.knownTypes);
      const types = [...new Set(instances.map((i) => i.instanceType).filter((t): t is string => !!t && !known.has(t)))];
      return { instances, maxInterfaces: types.length > 0 ? await lookUpInstanceTypes(types) : {} };
    },

    /**
     * Resolves the spec's subnet and security-group references within one VPC.
     * Names are looked up by tag (security groups also by group name) inside
     * that VPC only; anything unresolvable becomes a problem, not an exception.
     */
    async resolveSpec(input: { spec: NodeENISpec; vpcId: string }): Promise<ResolvedSpec> {
      const resolved = resolveSpecInVpc(input.spec, await lookUpReferences(input.spec, input.vpcId), input.vpcId);
      // Looked up in this VPC, every name no group has here was looked up by tag.
      if (!resolved) throw ApplicationFailure.nonRetryable(`the references of VPC ${input.vpcId} were read incompletely`, 'IncompleteReferences');
      return resolved;
    },

    /**
     * The spec's references in every VPC, read before the nodes' VPCs are known; the entity resolves
     * them per VPC (resolveSpecInVpc), and asks resolveSpec for a VPC where that cannot tell.
     */
    async lookUpSpecReferences(input: { spec: NodeENISpec }): Promise<SpecReferences> {
      return lookUpReferences(input.spec);
    },

    /**
     * Every ENI this NodeENI owns, found by tag: the observed side of reconcile. With `eniIds` (at most
     * MAX_ENIS_PER_NARROW_READ), only those of them that are still its: one request whatever the
     * cluster's size, for a pass that re-reads what its children reported.
     */
    async listManagedEnis(input: { nodeEniUid: string; eniIds?: string[] }): Promise<ManagedEni[]> {
      const filters: Filter[] = [{ Name: `tag:${TAG.nodeEniUid}`, Values: [input.nodeEniUid] }];
      if (input.eniIds) {
        if (input.eniIds.length === 0) return [];
        if (input.eniIds.length > MAX_ENIS_PER_NARROW_READ) throw ApplicationFailure.nonRetryable(`${input.eniIds.length} ENIs asked for, at most ${MAX_ENIS_PER_NARROW_READ}`, 'TooManyEnis');
        // The ids first: EC2 (and moto) narrow by them before looking at tags.
        filters.unshift({ Name: 'network-interface-id', Values: input.eniIds });
      }
      const enis = await describeEnis(filters);
      return enis.map(toManagedEni).sort((a, b) => a.eniId.localeCompare(b.eniId));
    },

    /**
     * Migration: the ENIs the Go controller created for this NodeENI (its
     * tags name the NodeENI), in the nodes' VPCs, and the ENIs its status
     * lists by ID. Deciding which to adopt is the planner's (planGoAdoption).
     */
    async findGoControllerEnis(input: { nodeEniName: string; vpcIds: string[]; eniIds: string[] }): Promise<GoControllerEni[]> {
      const found = new Map<string, NetworkInterface>();
      const vpc: Filter[] = input.vpcIds.length > 0 ? [{ Name: 'vpc-id', Values: input.vpcIds }] : [];
      const tagged = await describeEnis([
        ...vpc,
        { Name: `tag:${GO_CONTROLLER_TAG.managedBy}`, Values: [GO_CONTROLLER_MANAGED_BY_VALUE] },
        { Name: `tag:${GO_CONTROLLER_TAG.nodeEni}`, Values: [input.nodeEniName] },
      ]);
      for (const ni of tagged) found.set(ni.NetworkInterfaceId!, ni);
      const ids = [...new Set(input.eniIds)].filter((id) => !found.has(id));
      for (let i = 0; i < ids.length; i += 200) {
        // A filter, not NetworkInterfaceIds: an ID that no longer exists is left out instead of failing the call.
        for (const ni of await describeEnis([{ Name: 'network-interface-id', Values: ids.slice(i, i + 200) }])) found.set(ni.NetworkInterfaceId!, ni);
      }
      return [...found.values()].map(toGoControllerEni).sort((a, b) => a.eniId.localeCompare(b.eniId));
    },

    /**
     * Migration: adds our tags to an ENI the Go controller created (theirs
     * stay), so from now on it is found, configured and torn down as ours.
     * Looks first: an ENI someone tagged as ours in the meantime is not
     * re-tagged (the IAM policy allows this CreateTags only on ENIs without
     * our managed-by tag); one already tagged for this very key is done.
     */
    async adoptGoControllerEni(input: AdoptGoEniInput): Promise<{ adopted: true } | { adopted: false; reason: string; message: string }> {
      const ni = await describeEni(input.eniId);
      if (!ni) return { adopted: false, reason: 'NotFound', message: `${input.eniId} no longer exists` };
      const uid = tagValue(ni, TAG.nodeEniUid);
      if (uid === input.nodeEniUid && tagValue(ni, TAG.attachmentKey) === input.attachmentKey) return { adopted: true };
      if (uid !== undefined || tagValue(ni, TAG.managedBy) !== undefined) {
        return { adopted: false, reason: 'OwnedByOther', message: `${input.eniId} was tagged by another owner meanwhile (NodeENI uid ${uid ?? 'unknown'}, cluster ${tagValue(ni, TAG.cluster) ?? 'unknown'})` };
      }
      await ec2Call(`CreateTags ${input.eniId} (adopt)`, () =>
        ec2.send(
          new CreateTagsCommand({
            Resources: [input.eniId],
            Tags: [...ownerTags(input), { Key: TAG.adoptedFrom, Value: GO_CONTROLLER_NAME }],
          }),
        ),
      );
      return { adopted: true };
    },

    /**
     * Creates the ENI for one attachment key, or adopts the one a crashed
     * earlier attempt created (found by tag; ClientToken covers a lost response).
     */
    async ensureEni(input: EnsureEniInput): Promise<{ eniId: string; macAddress: string; created: boolean }> {
      const lookFirst = input.observed !== 'absent' || !firstTry();
      const existing = lookFirst ? await describeEnis([{ Name: `tag:${TAG.attachmentKey}`, Values: [input.attachmentKey] }]) : [];
      const adopted = existing.filter((e) => tagValue(e, TAG.leaked) === undefined).sort((a, b) => a.NetworkInterfaceId!.localeCompare(b.NetworkInterfaceId!))[0];
      if (adopted) {
        const current = (adopted.Groups ?? []).map((g) => g.GroupId!).sort();
        if (current.join(',') !== [...input.securityGroupIds].sort().join(',')) {
          await ec2Call('ModifyNetworkInterfaceAttribute Groups', () =>
            ec2.send(new ModifyNetworkInterfaceAttributeCommand({ NetworkInterfaceId: adopted.NetworkInterfaceId, Groups: input.securityGroupIds })),
          );
        }
        return { eniId: adopted.NetworkInterfaceId!, macAddress: adopted.MacAddress ?? '', created: false };
      }
      const tags = [{ Key: 'Name', Value: `nodeeni-${input.nodeEniName}-${input.nodeName}`.slice(0, 255) }, ...ownerTags(input)];
      const res = await ec2Call('CreateNetworkInterface', () =>
        ec2.send(
          new CreateNetworkInterfaceCommand({
            SubnetId: input.subnetId,
            Groups: input.securityGroupIds,
            Description: input.description ?? `ENI for node ${input.nodeName} from NodeENI ${input.nodeEniName}`,
            ClientToken: clientTokenFor(input.attemptId),
            TagSpecifications: [{ ResourceType: 'network-interface', Tags: tags }],
          }),
        ),
      );
      const ni = res.NetworkInterface!;
      return { eniId: ni.NetworkInterfaceId!, macAddress: ni.MacAddress ?? '', created: true };
    },

    /**
     * Attaches the ENI at the preferred device index, or the next free one on
     * network card 0. Indices in every non-detached state count as used. A
     * lost race surfaces as DeviceIndexInUse, which Temporal retries.
     */
    async attachEni(input: AttachEniInput): Promise<{ attachmentId: string; deviceIndex: number; attachedNow: boolean }> {
      const { planned } = input;
      // The pass's view may be stale: a full instance, by its count, is checked again below, against EC2.
      const roomByPlan = planned !== undefined && (planned.maxInterfaces === undefined || planned.usedInterfaces < planned.maxInterfaces);
      if (planned && roomByPlan && firstTry()) {
        const res = await ec2Call(`AttachNetworkInterface ${input.eniId} to ${input.instanceId} at ${planned.deviceIndex}`, () =>
          ec2.send(new AttachNetworkInterfaceCommand({ NetworkInterfaceId: input.eniId, InstanceId: input.instanceId, DeviceIndex: planned.deviceIndex, NetworkCardIndex: 0 })),
        );
        return { attachmentId: res.AttachmentId!, deviceIndex: planned.deviceIndex, attachedNow: true };
      }
      const eni = await describeEni(input.eniId);
      if (!eni) throw ApplicationFailure.nonRetryable(`ENI ${input.eniId} disappeared before attach`, 'InvalidNetworkInterfaceID.NotFound');
      const current = eni.Attachment;
      if (current?.AttachmentId && current.Status !== 'detached') {
        if (current.InstanceId === input.instanceId) {
          return { attachmentId: current.AttachmentId, deviceIndex: current.DeviceIndex ?? -1, attachedNow: false };
        }
        if (current.Status === 'detaching') {
          throw ApplicationFailure.retryable(`ENI ${input.eniId} is still detaching from ${current.InstanceId}`, 'IncorrectState');
        }
        throw ApplicationFailure.nonRetryable(`ENI ${input.eniId} is attached to another instance ${current.InstanceId}`, 'AttachedElsewhere');
      }
      const onInstance = await describeEnis([{ Name: 'attachment.instance-id', Values: [input.instanceId] }]);
      const used = new Set(
        onInstance
          .filter((n) => n.Attachment && n.Attachment.Status !== 'detached' && (n.Attachment.NetworkCardIndex ?? 0) === 0)
          .map((n) => n.Attachment!.DeviceIndex!),
      );
      // The pass knew the instance's type limit: a retry need not read the instance and its type again
      // (each call can be refused under throttling); EC2 itself refuses an attach to an instance that is gone.
      const knownLimit = planned?.maxInterfaces;
      const instance = knownLimit === undefined ? await describeInstance(input.instanceId) : undefined;
      if (knownLimit === undefined && (!instance || instance.State?.Name === 'terminated' || instance.State?.Name === 'shutting-down')) {
        throw ApplicationFailure.nonRetryable(`instance ${input.instanceId} is gone`, 'InvalidInstanceID.NotFound');
      }
      const limit = knownLimit ?? (await maxInterfaces(instance?.InstanceType));
      if (limit !== undefined && used.size >= limit) {
        throw ApplicationFailure.nonRetryable(
          `instance ${input.instanceId}${instance?.InstanceType ? ` (${instance.InstanceType})` : ''} already has ${used.size} of ${limit} network interfaces`,
          'AttachmentLimitExceeded',
        );
      }
      let index = Math.max(1, input.preferredDeviceIndex);
      while (used.has(index)) index++;
      const res = await ec2Call(`AttachNetworkInterface ${input.eniId} to ${input.instanceId} at ${index}`, () =>
        ec2.send(
          new AttachNetworkInterfaceCommand({ NetworkInterfaceId: input.eniId, InstanceId: input.instanceId, DeviceIndex: index, NetworkCardIndex: 0 }),
        ),
      );
      return { attachmentId: res.AttachmentId!, deviceIndex: index, attachedNow: true };
    },

    /** Sets the ENI's security groups (a spec change on an adopted ENI). */
    async setSecurityGroups(input: { eniId: string; securityGroupIds: string[] }): Promise<void> {
      await ec2Call(`ModifyNetworkInterfaceAttribute Groups ${input.eniId}`, () =>
        ec2.send(new ModifyNetworkInterfaceAttributeCommand({ NetworkInterfaceId: input.eniId, Groups: input.securityGroupIds })),
      );
    },

    async setDeleteOnTermination(input: { eniId: string; attachmentId: string; deleteOnTermination: boolean }): Promise<void> {
      await ec2Call('ModifyNetworkInterfaceAttribute DeleteOnTermination', () =>
        ec2.send(
          new ModifyNetworkInterfaceAttributeCommand({
            NetworkInterfaceId: input.eniId,
            Attachment: { AttachmentId: input.attachmentId, DeleteOnTermination: input.deleteOnTermination },
          }),
        ),
      );
    },

    /** Polls until the attachment reports `attached`; heartbeats so cancellation reaches it. */
    async waitForAttachment(input: { eniId: string; attachmentId: string }): Promise<{ macAddress: string; deviceIndex: number }> {
      return awaitTransition(input.eniId, 'attaching', (eni) => {
        const a = eni?.Attachment;
        if (!eni || !a || a.AttachmentId !== input.attachmentId || a.Status === 'detached' || a.Status === 'detaching') {
          throw ApplicationFailure.nonRetryable(`attachment ${input.attachmentId} of ${input.eniId} went away while attaching`, 'AttachmentLost');
        }
        return a.Status === 'attached' ? { macAddress: eni.MacAddress ?? '', deviceIndex: a.DeviceIndex ?? -1 } : undefined;
      });
    },

    /** Detaches (without Force unless asked); an ENI with no attachment is already done. */
    /**
     * Detaches (without Force unless asked); an ENI with no attachment is already done.
     * With the `attachmentId` a pass saw, the first try detaches without describing first.
     */
    async detachEni(input: { eniId: string; force: boolean; attachmentId?: string }): Promise<{ detached: 'requested' | 'already' }> {
      let attachmentId = input.attachmentId;
      if (!attachmentId || !firstTry()) {
        const eni = await describeEni(input.eniId);
        const a = eni?.Attachment;
        if (!eni || !a?.AttachmentId || a.Status === 'detached') return { detached: 'already' };
        if (a.Status === 'detaching' && !input.force) return { detached: 'requested' };
        attachmentId = a.AttachmentId;
      }
      const a = { AttachmentId: attachmentId };
      try {
        await ec2.send(new DetachNetworkInterfaceCommand({ AttachmentId: a.AttachmentId, Force: input.force }));
      } catch (err) {
        if (isEc2Code(err, 'InvalidAttachmentID.NotFound', 'InvalidNetworkInterfaceID.NotFound')) return { detached: 'already' };
        throw toEc2Failure(err, `DetachNetworkInterface ${a.AttachmentId}${input.force ? ' (force)' : ''}`);
      }
      return { detached: 'requested' };
    },

    /** Waits up to `timeoutMs` for the ENI to become available (or vanish); false when the bound passes. */
    async waitForDetached(input: { eniId: string; timeoutMs: number }): Promise<{ detached: boolean; status?: string }> {
      return awaitTransition<{ detached: boolean; status?: string }>(
        input.eniId, 'detaching',
        (eni) => (!eni || eni.Status === 'available' || !eni.Attachment || eni.Attachment.Status === 'detached' ? { detached: true } : undefined),
        { at: Date.now() + input.timeoutMs, still: (eni) => ({ detached: false, status: eni.Attachment?.Status }) },
      );
    },

    async deleteEni(input: { eniId: string }): Promise<{ deleted: 'now' | 'already' }> {
      try {
        await ec2.send(new DeleteNetworkInterfaceCommand({ NetworkInterfaceId: input.eniId }));
        return { deleted: 'now' };
      } catch (err) {
        if (isEc2Code(err, 'InvalidNetworkInterfaceID.NotFound')) return { deleted: 'already' };
        throw toEc2Failure(err, `DeleteNetworkInterface ${input.eniId}`);
      }
    },

    /** Marks an ENI left behind by a force-finish, for the leaked-ENI sweeper. */
    async tagLeaked(input: { eniId: string; reason: string }): Promise<LeakTagResult> {
      try {
        await ec2.send(
          new CreateTagsCommand({ Resources: [input.eniId], Tags: [{ Key: TAG.leaked, Value: input.reason.slice(0, 255) }] }),
        );
        return { found: true };
      } catch (err) {
        // Deleted meanwhile (a teardown that ended well just before it was told to stop): nothing is left behind.
        if (isEc2Code(err, 'InvalidNetworkInterfaceID.NotFound')) return { found: false };
        throw toEc2Failure(err, `CreateTags ${input.eniId}`);
      }
    },
  };
}

export type Ec2Activities = ReturnType<typeof createEc2Activities>;

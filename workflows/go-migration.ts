// Migration from the Go controller: one extra observation in the entity's
// pass. The ENIs the Go controller created for this NodeENI (found by its
// tags, and by the status rows it wrote) are adopted (our tags added, theirs
// kept) before the pass plans, so the planner sees them as ours and creates
// no duplicate; what may not be adopted is left alone and reported (Degraded,
// one Warning Event each). Workflow code: deterministic, state rebuilt by replay.
import type { GoControllerEni, InstanceInfo, ManagedEni, ResolvedSpec, SpecProblem } from '../activities/ec2/ec2-activities.js';
import type { ObservedNodeENI } from '../activities/kube/kube-activities.js';
import { goControllerRows, planGoAdoption, type GoRefusal } from './plan.js';
import { pacedEc2 } from './proxies.js';

/** Entity runs that record this marker look for the Go controller's ENIs; runs recorded before do not. */
export const ADOPT_GO_PATCH = 'nodeeni-entity-adopt-go';

export interface GoAdoptionContext {
  name: string;
  uid: string;
  clusterName: string;
  event(type: 'Normal' | 'Warning', reason: string, message: string): Promise<void>;
}

export interface GoAdoptionPass {
  observed: ObservedNodeENI;
  instances: InstanceInfo[];
  resolved: ResolvedSpec[];
  managed: ManagedEni[];
  /** When the pass last read the instances and the spec in full (a new value: a full pass). */
  fullReadAt: number;
}

/** A pass's look, started early by the entity; `found` is undefined when none was due. */
export interface GoLook {
  found?: Promise<GoControllerEni[]>;
  /** Looked in every VPC (before the instances were known): the pass keeps the finds in the nodes' VPCs and those the status lists. */
  acrossVpcs?: { rowIds: string[] };
}

export class GoControllerAdoption {
  /** The last look found nothing of the Go controller's left to adopt or to report. */
  private done = false;
  private looked = false;
  private lastFullReadAt = -1;
  private refused: GoRefusal[] = [];
  private readonly reported = new Set<string>();

  constructor(private readonly ctx: GoAdoptionContext) {}

  /**
   * Looks while the status still shows rows the Go controller wrote, on the
   * first pass of a run, and on full passes until a look finds nothing left
   * (refused ENIs are looked at again on each full pass, so their report
   * stays current). Returns `managed` with the ENIs adopted now. `look`: this pass's look, if the entity
   * started it early (see `look`); otherwise the pass looks now.
   */
  async pass(p: GoAdoptionPass, look?: GoLook): Promise<ManagedEni[]> {
    const { ctx } = this;
    if (!p.observed.exists) return p.managed;
    const found = look ? look.found : this.look(p).found;
    if (!found) return p.managed;
    const candidates = inNodesVpcs(await found, p.instances, look?.acrossVpcs);
    const plan = planGoAdoption({ uid: ctx.uid, nodeEniName: ctx.name, observed: p.observed, instances: p.instances, resolved: p.resolved, managed: p.managed, candidates });
    const modify = pacedEc2().modify;
    const results = await Promise.all(plan.adopt.map((a) =>
      modify.adoptGoControllerEni({
        eniId: a.eni.eniId, attachmentKey: a.keyString, clusterName: ctx.clusterName, nodeEniName: ctx.name, nodeEniUid: ctx.uid,
        nodeName: a.key.nodeName, instanceId: a.key.instanceId, subnetId: a.key.subnetId,
      })));

    const adopted: ManagedEni[] = [];
    const refused = [...plan.refuse];
    const events: Promise<void>[] = [];
    for (const [i, a] of plan.adopt.entries()) {
      const r = results[i]!;
      if (!r.adopted) {
        refused.push({ eniId: a.eni.eniId, nodeName: a.key.nodeName, reason: r.reason, message: r.message });
        continue;
      }
      const e = a.eni;
      adopted.push({
        eniId: e.eniId, status: e.status, subnetId: e.subnetId, macAddress: e.macAddress, leaked: e.leaked, securityGroupIds: e.securityGroupIds, attachment: e.attachment,
        attachmentKey: a.keyString, nodeName: a.key.nodeName, instanceId: a.key.instanceId,
      });
      const where = a.eni.attachment ? `attached at device index ${a.eni.attachment.deviceIndex}` : 'not attached';
      events.push(ctx.event('Normal', 'ENIAdopted',
        `${a.eni.eniId} (created by the Go controller) adopted for node ${a.key.nodeName}, subnet ${a.key.subnetId}, ${where}${p.observed.deleting ? ', to be torn down' : ''}: our tags added, its own kept`));
    }
    for (const r of refused) {
      const key = `${r.eniId}/${r.reason}`;
      if (this.reported.has(key)) continue;
      this.reported.add(key);
      events.push(ctx.event('Warning', 'ENINotAdopted', `${describe(r)}; left as it is`));
    }
    await Promise.all(events);
    this.refused = refused;
    this.done = refused.length === 0;
    return adopted.length === 0 ? p.managed : [...p.managed, ...adopted].sort((a, b) => a.eniId.localeCompare(b.eniId));
  }

  /**
   * Starts the look of this pass if one is due: it needs only the object and the instances, so the
   * entity can run it beside the spec's resolution. Call once per pass, before `pass`. `acrossVpcs`:
   * look before the instances are known, in every VPC (`pass` keeps what lies in the nodes' VPCs).
   */
  look(p: Pick<GoAdoptionPass, 'observed' | 'instances' | 'fullReadAt'> & { acrossVpcs?: boolean }): GoLook {
    const rows = goControllerRows(p.observed.status);
    const fullPass = p.fullReadAt !== this.lastFullReadAt;
    this.lastFullReadAt = p.fullReadAt;
    if (rows.length === 0 && (this.done || (this.looked && !fullPass))) return {};
    this.looked = true;
    const vpcIds = p.acrossVpcs ? [] : [...new Set(p.instances.map((i) => i.vpcId))].sort();
    const eniIds = rows.map((r) => r.eniID).sort();
    return {
      found: pacedEc2().read.findGoControllerEnis({ nodeEniName: this.ctx.name, vpcIds, eniIds }),
      ...(p.acrossVpcs ? { acrossVpcs: { rowIds: eniIds } } : {}),
    };
  }

  /** The Go controller's ENIs this NodeENI found and did not adopt, as problems (the Degraded condition). */
  problems(): SpecProblem[] {
    return this.refused.map((r) => ({ reason: 'ENINotAdopted', message: `Go controller ENI ${describe(r)}` }));
  }
}

/**
 * What a look across VPCs found, narrowed as a look in the nodes' VPCs would have: the ENIs in those
 * VPCs and those the status lists by ID (with no node, a look is not narrowed at all).
 */
function inNodesVpcs(found: GoControllerEni[], instances: InstanceInfo[], acrossVpcs: GoLook['acrossVpcs']): GoControllerEni[] {
  if (!acrossVpcs || instances.length === 0) return found;
  const vpcs = new Set(instances.map((i) => i.vpcId));
  const listed = new Set(acrossVpcs.rowIds);
  return found.filter((e) => listed.has(e.eniId) || (e.vpcId !== undefined && vpcs.has(e.vpcId)));
}

function describe(r: GoRefusal): string {
  return `${r.eniId}${r.nodeName ? ` (node ${r.nodeName})` : ''} not adopted: ${r.reason}: ${r.message}`;
}

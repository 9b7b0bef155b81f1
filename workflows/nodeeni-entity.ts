// One long-lived entity workflow per NodeENI object (keyed by its UID).
// Level-triggered: each pass re-reads the object, its nodes and the ENIs that
// EC2 holds for it (by tag), plans the difference, and starts one child
// workflow per attachment to close it. It is the single writer of the NodeENI
// status. A pass that fails is reported (Degraded, an Event) and retried after
// back-off; the workflow itself never fails. Children are tracked by ID in the
// durable state and report their outcome by signal, so the entity can
// continue-as-new while they run.
import {
  condition,
  getExternalWorkflowHandle,
  log,
  ParentClosePolicy,
  isCancellation,
  patched,
  makeContinueAsNewFunc,
  setCurrentDetails,
  setHandler,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { childIdPrefix, MAX_ENIS_PER_NARROW_READ, provisionWorkflowId, teardownWorkflowId } from '../common/names.js';
import { SA_NODE_NAME, SA_NODEENI } from '../common/search-attributes.js';
import type { LeakedENI, NodeENIStatus } from '../common/types.js';
import {
  childFinishedSignal,
  childForceSignal,
  DEFAULT_ENTITY_OPTIONS,
  ENTITY_WORKFLOW_TASK_TIMEOUT,
  devicePluginAppliedSignal,
  emptyEntityState,
  forceFinishSignal,
  forceFinishUpdate,
  leakTagFoundGone,
  nodeAgentStartedSignal,
  reconcileSignal,
  stateQuery,
  type CarriedWorld,
  type ChildOutcome,
  type ChildRecord,
  type ChildStart,
  type ConfiguredAttachment,
  type EntityInput,
  type EntityOptions,
  type EntityState,
  type EntityView,
  type ForceFinishRequest,
  type ForceFinishResult,
  type PassFailure,
  type ProvisionObserved,
} from '../common/workflow-api.js';
import type { InstanceInfo, ManagedEni, PassInstance, ResolvedSpec } from '../activities/ec2/ec2-activities.js';
import { resolveSpecInVpc } from '../common/spec-references.js';
import type { ObservedNodeENI } from '../activities/kube/kube-activities.js';
import { bindingChangePending, devicePluginEntries, devicePluginSettled, devicePublished } from './device-plugin-entries.js';
import { legacyNodeEniEntity } from './legacy/nodeeni-entity-v1.js';
import { ADOPT_GO_PATCH, GoControllerAdoption, type GoLook } from './go-migration.js';
import { inBackoff, planReconcile, type DesiredAttachment, type Plan } from './plan.js';
import { mergeRereads } from './rereads.js';
import { provisionAttachment } from './provision-attachment.js';
import { childStarter, childStatus, devicePluginStarter, ec2, kube, pacedEc2 } from './proxies.js';
import { Reconciler, type PassResult } from './reconciler.js';
import { NodeDrift } from './drift.js';
import { attachmentGaugesGone, metrics, withAttachmentGauges } from './metrics.js';
import { buildStatus } from './status.js';
import { teardownAttachment } from './teardown-attachment.js';

/** Marks histories written by this implementation; runs started by v1 keep v1 until they continue-as-new. */
export const ENTITY_V2_PATCH = 'nodeeni-entity-v2';
/**
 * v3: passes reuse what an earlier pass of the run read (instances, resolved
 * spec) unless something outside changed, children are given what the pass saw
 * and run their EC2 calls on the paced task queues, and at most
 * `maxConcurrentChildren` children run at once. Runs started before keep v2
 * behaviour until they continue-as-new.
 */
export const ENTITY_V3_PATCH = 'nodeeni-entity-v3';

/**
 * Drift checks in rounds kept in the state (at most `driftNodesPerPass` nodes a pass, a new round on
 * the resync or a change from outside, not on every new run), and the children check's time carried
 * across continue-as-new. Before, a new run's first pass asked every node at once: past ~650 nodes
 * that alone filled the history, so the run continued as new and the next one asked again.
 */
export const DRIFT_ROUNDS_PATCH = 'nodeeni-entity-drift-rounds';

/**
 * A run hands what it read of EC2 (instances, instance types, the resolved spec, when it last read
 * them in full) to the next run. Before, every new run read it all again before its first child
 * started: at 1,000 nodes, 3 to 6 s with no child starting, three or four times per provisioning.
 */
export const WORLD_CARRY_PATCH = 'nodeeni-entity-world-carry';

/**
 * Fewer sequential steps: the look for the Go controller's ENIs runs beside the spec's resolution (it
 * needs only the instances), children just started are first asked about after childCheckSeconds,
 * not by the pass right after their start, and the Warnings of children found retrying are recorded
 * together instead of one workflow task each. A new NodeENI's first child starts one round trip sooner,
 * and the pass that follows it no longer competes with it for the worker.
 */
export const FEWER_TRIPS_PATCH = 'nodeeni-entity-fewer-trips';

/**
 * A node's agent starting again also ends the back-off of what failed on that node: provisioning that
 * failed because the agent was away (or for anything else the agent does) is retried at once instead of
 * after the rest of a back-off that doubles up to 30 minutes.
 */
export const AGENT_START_RETRIES_PATCH = 'nodeeni-entity-agent-start-retries';

/**
 * Children are started by an activity, a window at a time, instead of as child workflows. A child
 * workflow cost the entity four history events (initiated, started, completed, and its report) and
 * the pass waited for Temporal to confirm every start: at 1,000 nodes 5–26 s per window of 100,
 * while the create queue ran dry, and a history that filled four times as fast, each
 * continue-as-new refused while reports kept arriving. Now a child costs its report alone. The
 * children run on, report and are checked exactly as before; the UI no longer shows them as the
 * entity's children (they carry the same summary and search attributes).
 */
export const STARTS_BY_ACTIVITY_PATCH = 'nodeeni-entity-starts-by-activity';

/**
 * While `pacePassesFromChildren` children run, a child's report asks for a pass that may wait: at
 * least as long after the last pass as that one took (Reconciler.markDirtySoon). At 1,000 nodes a
 * pass reads every node and ENI and writes the status, about 2.5 s on a busy machine; with reports
 * arriving at EC2's pace the passes ran back to back, and their CPU and history (megabytes of what
 * they read) slowed everything else down. Runs started before keep a pass per report until they
 * continue-as-new.
 */
export const PASS_PACING_PATCH = 'nodeeni-entity-pass-pacing';

/**
 * A pass woken by its children's reports re-reads only the ENIs they reported (by id, one
 * DescribeNetworkInterfaces) and takes the rest from the last listing, instead of listing every ENI
 * of the NodeENI again: at 1,000 nodes a listing took 2.2 s of moto, the proxy and the worker, about
 * fifty times while the ENIs were created. A pass lists them all after an outside change, at every
 * resync, after a child failed or ended without a word, when the object is going away, and before
 * its finalizer can go. Asked when the run starts; runs started before list on every pass.
 */
export const REPORTED_REREADS_PATCH = 'nodeeni-entity-reported-rereads';

/**
 * A pass woken only by provisioning children's reports, all of which ended well and say how they left
 * their ENI in EC2, takes those ENIs from the reports and the NodeENI and its nodes from the last pass
 * (with the status that pass wrote) instead of reading them again: such a pass goes straight to the
 * status write. Anything from outside (the watcher's signal, a resync, an operator, an agent start), a
 * failed pass or report, a teardown's report and the finalizer still make a pass read it all, as
 * controller-runtime acts on its cache until an event says the world moved. One node's Ready came
 * 50–70 ms after its report (an observe and a re-read); at 1,000 nodes each such pass listed every
 * node. Asked when the run starts; runs started before read on every pass.
 */
export const REPORTS_TRUSTED_PATCH = 'nodeeni-entity-reports-trusted';

/**
 * The pass that removes the finalizer goes straight to it, without writing the status first: nobody
 * reads the status of an object that is about to go (the CleanupComplete Event names what is left
 * behind). The write and its workflow task came between the last teardown's report and the removal
 * (30–40 ms in a single-node benchmark). Asked in that pass.
 */
export const LAST_PASS_PATCH = 'nodeeni-entity-last-pass-no-status';

/**
 * A full pass reads the spec's references (in every VPC) and looks for the Go controller's ENIs while it
 * reads the nodes' instances, instead of after them: their VPCs are needed only to pick from what was
 * found (resolveSpecInVpc; the look's finds outside the nodes' VPCs are dropped). A new NodeENI's first
 * child started after three reads one behind the other (the NodeENI, the instances, the references);
 * now after two. Asked when the run starts; runs started before read the references per VPC after the
 * instances.
 */
export const EARLY_REFERENCES_PATCH = 'nodeeni-entity-early-references';

/**
 * An operator's force-finish survives a pass that fails while applying it, and telling a child that
 * has just ended to stop is not a failure (its report, or the children check, says how it ended).
 * Before, the request was taken off the list before it was applied: a child that ended during the
 * pass failed the signal, the pass failed, and the request was lost, so the forceFinish update
 * waited forever. Asked in a pass that applies a request.
 */
export const FORCE_KEPT_PATCH = 'nodeeni-entity-force-kept';

/**
 * A child that ended without a word (terminated by hand) is dealt with when a force-finish finds it
 * ended, not at the next children check (childCheckSeconds, 30 s by default). A teardown whose ENI the
 * force-finish left is no longer counted in flight: before, a NodeENI being deleted kept its finalizer
 * until that check, long after the operator's force-finish had answered; and that ENI is not dealt
 * with again as one waiting for its teardown (tagged, recorded and told twice). For any other such
 * child the next pass, at once, asks Temporal how it ended: before, the forceFinish update waited for
 * the check to answer. Asked where a force-finish finds such a child, or would deal with an ENI twice.
 */
export const FORCE_ENDED_PATCH = 'nodeeni-entity-force-ended-child';

/**
 * A failure is forgotten once nothing will retry it: its attachment is no longer wanted (the node left
 * or was relabelled out, the NodeENI is going) or EC2 no longer has its ENI. Before, such records stayed
 * in the state for the entity's life, carried across continue-as-new: with nodes coming and going they
 * piled up, the UI's Current Details listed them as failing, Progressing counted them as backing off,
 * and the loop woke for their retry times. Asked in a pass that finds one.
 */
export const PRUNE_FAILURES_PATCH = 'nodeeni-entity-prune-failures';

/**
 * Drift a provisioning child is re-applying stays recorded until the child ends, and a failed repair
 * waits out its back-off like any failed provisioning. Before, a pass during the repair (every
 * childCheckSeconds while children run) forgot the drift: a repair that took a retry ended without
 * DriftRepaired, and one that failed was started again at once, over and over. Asked in a pass where
 * either happens.
 */
export const REPAIRS_KEPT_PATCH = 'nodeeni-entity-repairs-kept';

/** Children started by one activity: 25 provisioning inputs stay far below Temporal's payload warnings. */
const STARTS_PER_ACTIVITY = 25;

/** While a round of drift checks has nodes left, the next pass comes this soon. */
const DRIFT_ROUND_STEP_MS = 1000;

const MAX_BACKOFF_MS = 30 * 60_000;

/** When the NodeENI is gone: what force-finish left behind in EC2 (tagged for the sweeper), if anything. */
export interface EntityResult {
  leftBehind: LeakedENI[];
}

export async function nodeEniEntity(input: EntityInput): Promise<EntityResult | void> {
  if (!patched(ENTITY_V2_PATCH)) return legacyNodeEniEntity(input);
  const v3 = patched(ENTITY_V3_PATCH);
  // Adopting the Go controller's ENIs changes which activities a pass schedules: new runs only.
  // The markers in the order histories hold them: a replay matches them one by one.
  const adoptGo = v3 && patched(ADOPT_GO_PATCH);
  const driftRounds = v3 && patched(DRIFT_ROUNDS_PATCH);
  const fewerTrips = driftRounds && patched(FEWER_TRIPS_PATCH);
  const pacedPasses = fewerTrips && patched(PASS_PACING_PATCH);
  const reportedRereads = pacedPasses && patched(REPORTED_REREADS_PATCH);
  const reportsTrusted = reportedRereads && patched(REPORTS_TRUSTED_PATCH);
  return new NodeEniEntity(input, v3, adoptGo, driftRounds, fewerTrips, pacedPasses, reportedRereads, reportsTrusted, reportsTrusted && patched(EARLY_REFERENCES_PATCH)).run();
}

/** What an operator's force-finish touched: the update answers once these are settled. */
interface ForceOutcome {
  childIds: string[];
  eniIds: string[];
}

class NodeEniEntity {
  private readonly name: string;
  private readonly uid: string;
  private readonly opts: EntityOptions;
  private readonly state: EntityState;
  private readonly children: Record<string, ChildRecord>;
  private readonly entityId = workflowInfo().workflowId;
  private readonly loop: Reconciler;
  /** ENIs on their way out as of the last pass: what force-finish can act on. */
  private removing: ManagedEni[] = [];
  private readonly forceOutcomes = new Map<ForceFinishRequest, ForceOutcome>();
  /** Before DRIFT_ROUNDS_PATCH: when this run last asked Temporal how its children are doing (0: not yet, so a new run checks at once). */
  private runChildrenCheckedAt = 0;
  /** A reconcile signal (something outside changed) since the last pass: a new round of drift checks. */
  private outsideSignalled = false;
  /** v3: what this run last read of the world outside; rebuilt by replay, handed to the next run in its input (WORLD_CARRY_PATCH). */
  private readonly seen: SeenWorld;
  /** Child workflow IDs start with this (v3: the short `nodeeni/<name>`; v2 runs keep their entity ID). */
  private get childPrefix(): string {
    return this.v3 ? childIdPrefix(this.name) : this.entityId;
  }
  /** v3: whether this pass read the world in full (then the nodes are asked about drift too). */
  private passWasFull = false;
  private readonly nodeDrift: NodeDrift;
  /** Attachment keys whose repairing provisioning just finished well. */
  private repairedKeys: string[] = [];
  /** Migration: takes over the ENIs the Go controller created for this NodeENI (runs with ADOPT_GO_PATCH). */
  private readonly adoption?: GoControllerAdoption;
  /** STARTS_BY_ACTIVITY_PATCH: children recorded by this pass and not yet started (flushStarts). */
  private readonly pendingStarts: ChildStart[] = [];
  /** REPORTED_REREADS_PATCH: the ENIs as the last pass saw them (a listing, with the re-reads since merged in); rebuilt by replay. */
  private lastManaged?: ManagedEni[];
  /** Whether the last pass found the NodeENI alive (not being deleted). */
  private lastPassAlive = false;
  /** REPORTS_TRUSTED_PATCH: what the last pass that read the NodeENI saw of it and its nodes; rebuilt by replay. */
  private lastObserved?: ObservedNodeENI;
  /** REPORTS_TRUSTED_PATCH: the status the last pass left stored, and its digest (absent: unknown). */
  private lastStatus?: { status: NodeENIStatus; digest: string };
  /** FORCE_ENDED_PATCH: a force-finish found a child ended that has not reported: ask Temporal how at the next pass, which comes at once. */
  private askChildrenNow = false;

  constructor(input: EntityInput, private readonly v3 = false, adoptGo = false, private readonly driftRounds = false, private readonly fewerTrips = false, private readonly pacedPasses = false, private readonly reportedRereads = false, private readonly reportsTrusted = false, private readonly earlyReferences = false) {
    this.name = input.name;
    this.uid = input.uid;
    this.opts = { ...DEFAULT_ENTITY_OPTIONS, ...input.options };
    // State from a v1 run lacks the v2 fields: v1 hands over only when no child runs.
    this.state = { ...emptyEntityState(), ...input.state };
    this.state.devicePlugin ??= {};
    this.children = this.state.children ??= {};
    this.state.finished ??= [];
    this.seen = seenFromCarried(this.state.world);
    // Held in `seen` while the run lasts, written back only into the next run's input.
    delete this.state.world;
    if (adoptGo) this.adoption = new GoControllerAdoption({ name: this.name, uid: this.uid, clusterName: this.opts.clusterName, event: (t, r, m) => this.event(t, r, m) });
    this.nodeDrift = new NodeDrift(this.state, (type, reason, message) => this.event(type, reason, message), () => patched(REPAIRS_KEPT_PATCH));
    this.loop = new Reconciler((this.state.reconciler ??= {}), {
      resyncMs: this.opts.resyncSeconds * 1000,
      backoff: { initialMs: Math.min(this.opts.failureBackoffSeconds * 1000, 5000), maxMs: 5 * 60_000 },
      maxHistoryLength: this.opts.maxHistoryLength,
      idleSummary: 'resync',
      reportFailure: (f, first) => this.reportPassFailure(f, first),
      reportRecovered: (f) => this.event('Normal', 'ReconcileRecovered', `reconcile works again after ${f.attempts} failed passes (${f.reason})`),
      continueAsNew: () => makeContinueAsNewFunc<typeof nodeEniEntity>({ workflowTaskTimeout: ENTITY_WORKFLOW_TASK_TIMEOUT })({ name: this.name, uid: this.uid, options: this.opts, state: this.stateForNextRun() }),
    });

    setHandler(reconcileSignal, () => {
      this.seen.outsideChanged = true;
      this.outsideSignalled = true;
      this.loop.markDirty();
    }, { description: 'Re-read the NodeENI, its nodes and EC2, and converge.' });
    setHandler(nodeAgentStartedSignal, ({ nodeName }) => {
      const onNode = (key: string) => key.startsWith(`${this.uid}/${nodeName}/`);
      const backingOff = Object.keys(this.state.failures).filter(onNode);
      if (backingOff.length > 0 && patched(AGENT_START_RETRIES_PATCH)) {
        for (const key of backingOff) this.state.failures[key]!.retryAt = Date.now();
        this.loop.markDirty();
      }
      // Every entity hears of every agent start: only one with an interface there has anything to verify.
      if (!Object.keys(this.state.configured).some(onNode)) return;
      const nodes = (this.state.agentStarted ??= []);
      if (!nodes.includes(nodeName)) nodes.push(nodeName);
      this.loop.markDirty();
    }, { description: "A node's agent started again: verify that node's interfaces now." });
    setHandler(childFinishedSignal, (outcome) => this.onChildFinished(outcome), { description: 'A provisioning or teardown child reports how it ended.' });
    setHandler(devicePluginAppliedSignal, (answer) => {
      const dp = this.state.devicePlugin[answer.nodeName];
      if (dp && dp.requestId === answer.requestId) {
        dp.answer = { requestId: answer.requestId, ok: answer.ok, podFound: answer.podFound, message: answer.message, retrying: answer.retrying };
        this.loop.markDirty();
      }
    }, { description: 'Answer of a node device-plugin workflow to our latest entries.' });
    setHandler(stateQuery, (): EntityView => ({
      state: this.state,
      inFlight: Object.values(this.children).map((c) => ({ key: c.key, op: c.op, workflowId: c.workflowId, eniId: c.eniId, node: c.node })),
    }), { description: 'The entity state and the child workflows running now.' });
    setHandler(forceFinishSignal, async (req) => {
      try {
        this.validateForce(req);
      } catch (err) {
        log.warn('forceFinish signal ignored', { error: String(err), request: req });
        // The UI only says "signaled": the operator learns why nothing happened from an Event on the object.
        if (this.v3) await this.event('Warning', 'ForceFinishIgnored', `forceFinish signal ignored: ${err instanceof Error ? err.message : String(err)}`);
        return;
      }
      this.state.pendingForce.push(req);
      this.loop.markDirty();
    }, { description: 'Like the forceFinish update, for tools that can only signal. Input: {"reason": "...", "node": "optional"}' });
    setHandler(forceFinishUpdate, (req) => this.forceFinish(req), {
      validator: (req) => this.validateForce(req),
      description: 'End a stuck teardown or provisioning: stop, leave the ENIs (tagged) and record them. Input: {"reason": "...", "node": "optional node name"}',
    });
  }

  private stateForNextRun(): EntityState {
    return this.v3 && patched(WORLD_CARRY_PATCH) ? { ...this.state, world: carriedFromSeen(this.seen) } : this.state;
  }

  async run(): Promise<EntityResult> {
    await this.loop.run(() => this.pass());
    return { leftBehind: this.state.leaked };
  }

  // ---- messages ----------------------------------------------------------

  private matchesForce(req: ForceFinishRequest, node: string | undefined): boolean {
    return req.node === undefined || req.node === node;
  }

  /** Update validator (and the signal's check): plain errors are how validators reject. */
  private validateForce(req: ForceFinishRequest): void {
    if (typeof req?.reason !== 'string' || req.reason.trim() === '') throw new Error('forceFinish needs a non-empty "reason"');
    const stuck = this.removing.some((e) => this.matchesForce(req, e.nodeName)) || Object.values(this.children).some((c) => this.matchesForce(req, c.node));
    if (!stuck) throw new Error(`nothing to force-finish: no teardown or provisioning is pending${req.node ? ` on node ${req.node}` : ''} for NodeENI ${this.name}`);
  }

  private async forceFinish(req: ForceFinishRequest): Promise<ForceFinishResult> {
    this.state.pendingForce.push(req);
    this.loop.markDirty();
    await condition(() => {
      const o = this.forceOutcomes.get(req);
      return o !== undefined && o.childIds.every((id) => this.children[id] === undefined);
    });
    const affected = this.forceOutcomes.get(req)!;
    this.forceOutcomes.delete(req);
    return { leftBehind: affected.eniIds.filter((id) => this.state.leaked.some((l) => l.eniID === id)) };
  }

  private onChildFinished(outcome: ChildOutcome): void {
    if (!this.children[outcome.workflowId]) return;
    if (!this.state.finished!.some((o) => o.workflowId === outcome.workflowId)) this.state.finished!.push(outcome);
    if (this.pacedPasses && Object.keys(this.children).length >= this.opts.pacePassesFromChildren) this.loop.markDirtySoon();
    else this.loop.markDirty();
  }

  // ---- one pass ------------------------------------------------------------

  private async pass(): Promise<PassResult> {
    const { name, uid, state } = this;
    await this.checkChildren();
    const reported = this.applyFinished();
    for (const key of this.repairedKeys.splice(0)) await this.nodeDrift.repaired(key);

    // v3 reads EC2's ENIs while it reads the object: one round trip less on every pass.
    const rereads = this.reportedRereads ? this.rereadsOnly(reported) : undefined;
    const trusted = rereads ? this.trustedReports(reported) : undefined;
    const listing = !this.v3 ? undefined
      : trusted ? Promise.resolve(mergeRereads(this.lastManaged!, rereads!, trusted.enis))
      : rereads ? pacedEc2().read.listManagedEnis({ nodeEniUid: uid, eniIds: rereads }).then((fresh) => mergeRereads(this.lastManaged!, rereads, fresh))
      : pacedEc2().read.listManagedEnis({ nodeEniUid: uid });
    const observed = trusted ? trusted.observed : await kube.observeNodeEni({ name, uid });
    if (this.reportsTrusted) this.lastObserved = observed;
    const alive = observed.exists && !observed.deleting;
    this.lastPassAlive = alive;
    const instanceIds = [...new Set(observed.nodes.map((n) => n.instanceId).filter((i): i is string => !!i))];
    let instances: InstanceInfo[];
    let resolved: ResolvedSpec[];
    let managed: ManagedEni[];
    if (this.v3) {
      let look: GoLook | undefined;
      const lookEarly = this.adoption && this.fewerTrips ? (known: InstanceInfo[], acrossVpcs: boolean) => { look = this.adoption!.look({ observed, instances: known, fullReadAt: this.seen.fullAt, acrossVpcs }); } : undefined;
      ({ instances, resolved } = alive ? await this.readWorld(observed, instanceIds, lookEarly) : { instances: [], resolved: [] });
      managed = await listing!;
      if (this.adoption) managed = await this.adoption.pass({ observed, instances, resolved, managed, fullReadAt: this.seen.fullAt }, look);
      // With what adoption just took over: the next pass may not list it again.
      if (this.reportedRereads) this.lastManaged = managed;
    } else {
      instances = alive ? await ec2.describeInstances({ instanceIds }) : [];
      const vpcs = [...new Set(instances.map((i) => i.vpcId))].sort();
      resolved = await Promise.all(vpcs.map((vpcId) => ec2.resolveSpec({ spec: observed.spec, vpcId })));
      managed = await ec2.listManagedEnis({ nodeEniUid: uid });
    }
    const planFor = () => {
      const running = Object.values(this.children);
      const p = planReconcile({
        uid, observed, instances, resolved, managed, state,
        busyKeys: new Set(running.map((c) => c.key)),
        busyEnis: new Set(running.map((c) => c.eniId).filter((e): e is string => !!e)),
        now: Date.now(),
      });
      if (this.adoption) p.problems.push(...this.adoption.problems());
      return p;
    };
    let plan = planFor();
    this.removing = plan.removing;
    if (state.pendingForce.length > 0) {
      if (patched(FORCE_KEPT_PATCH)) {
        // Taken off the list once applied: a pass that fails in between applies it again (each step is idempotent).
        while (state.pendingForce.length > 0) {
          const req = state.pendingForce[0]!;
          this.forceOutcomes.set(req, await this.applyForce(req, plan, true));
          state.pendingForce.shift();
        }
      } else {
        for (const req of state.pendingForce.splice(0)) this.forceOutcomes.set(req, await this.applyForce(req, plan, false));
      }
      plan = planFor();
      this.removing = plan.removing;
    }

    // Nothing is created before our finalizer guards the object (the watcher adds it).
    let provision = alive && observed.hasFinalizer ? plan.provision.filter((d) => this.mayRebind(d, observed)) : [];
    let driftLeft = false;
    if (this.v3) {
      // A window of children; teardowns (started below, after the device plugin let go) get the room first.
      const room = Math.max(0, this.opts.maxConcurrentChildren - Object.keys(this.children).length - plan.teardown.length);
      provision = provision.slice(0, room);
      const indices = this.deviceIndexPlanner(instances, managed);
      await Promise.all(provision.map((d) => this.startProvision(d, observed, plan.eniByKey.get(d.keyString), indices)));
      // Started before the drift checks, whose node-local calls may fail the pass.
      await this.flushStarts();
      // Nodes are asked on full passes whether what is settled still looks so; what drifted is re-applied.
      // And a node whose agent started again (a restart may hide a reboot or a hand's change) at once.
      const agentStarted = new Set(state.agentStarted?.splice(0));
      const repairing = new Set(Object.values(this.children).filter((c) => c.op === 'provision').map((c) => c.key));
      if (this.driftRounds) {
        const round = state.driftRound;
        const startRound = this.outsideSignalled || !round || Date.now() - round.startedAt >= this.opts.resyncSeconds * 1000;
        this.outsideSignalled = false;
        if (alive && agentStarted.size > 0) await this.nodeDrift.check(this.settled(plan, observed.generation), repairing, agentStarted);
        if (alive) driftLeft = await this.nodeDrift.checkRound(this.settled(plan, observed.generation), repairing, startRound, this.opts.driftNodesPerPass);
      } else if (alive && this.passWasFull) await this.nodeDrift.check(this.settled(plan, observed.generation), repairing);
      else if (alive && agentStarted.size > 0) await this.nodeDrift.check(this.settled(plan, observed.generation), repairing, agentStarted);
      const busy = new Set(Object.values(this.children).map((c) => c.key));
      const repairs = plan.desired.filter((d) => this.nodeDrift.get(d.keyString) && !busy.has(d.keyString) && !this.repairBackingOff(d.keyString, observed.generation));
      await Promise.all(repairs.slice(0, Math.max(0, this.opts.maxConcurrentChildren - busy.size)).map((d) => this.startProvision(d, observed, plan.eniByKey.get(d.keyString), indices, true)));
      await this.flushStarts();
    } else {
      await Promise.all(provision.map((d) => this.startProvision(d, observed, plan.eniByKey.get(d.keyString))));
    }
    // The device plugin lets go of a device before the device goes (stop consumers first).
    await this.publishDevicePlugin(plan, observed);
    let teardown = plan.teardown.filter((eni) => devicePluginSettled(state, eni.nodeName));
    if (this.v3) teardown = teardown.slice(0, Math.max(0, this.opts.maxConcurrentChildren - Object.keys(this.children).length));
    for (const eni of teardown) await this.startTeardown(eni, observed.generation);
    await this.flushStarts();

    if (this.v3) this.pruneFailures(plan, managed);
    const inFlight = Object.values(this.children);
    setCurrentDetails(this.v3 ? detailsV3(name, this.entityId, plan, inFlight, state) : details(name, plan, inFlight, state));
    const finishing = !alive && inFlight.length === 0 && plan.removing.length === 0 && Object.keys(state.devicePlugin).length === 0;
    // The pass that removes the finalizer writes no status: the object goes with it, and CleanupComplete
    // says the rest. Asked here: a history recorded before wrote the status first.
    const statusGoesWithObject = finishing && !rereads && observed.exists && this.reportsTrusted && patched(LAST_PASS_PATCH);
    if (observed.exists && !statusGoesWithObject) {
      const status = withAttachmentGauges(name, managed, buildStatus({
        plan, state, spec: observed.spec, generation: observed.generation, deleting: observed.deleting, inFlight,
        previous: observed.status.conditions ?? [], now: new Date().toISOString(), maxRows: this.opts.maxStatusAttachments,
        ...(this.v3 ? { workflow: { id: this.entityId, url: workflowUrl(this.opts.uiBaseUrl, this.entityId) } } : {}),
      }));
      const { digest } = await kube.writeStatus({ name, uid, observedDigest: observed.statusDigest, status });
      this.lastStatus = digest === undefined ? undefined : { status, digest };
    }

    if (finishing) {
      // The finalizer goes only on what a full listing shows.
      if (rereads) {
        this.seen.outsideChanged = true;
        return { wakeInMs: 0 };
      }
      if (observed.exists) {
        const { removed } = await kube.removeFinalizer({ name, uid, finalizerIndex: observed.finalizerIndex });
        if (removed) await this.event('Normal', 'CleanupComplete', `every ENI of ${name} is gone${state.leaked.length ? ` or left behind (${state.leaked.map((l) => l.eniID).join(', ')})` : ''}; finalizer removed`);
      }
      attachmentGaugesGone(name);
      return { done: true };
    }
    const wakeForRetry = nextChildRetry(state);
    const wakeForCheck = this.v3 && inFlight.length > 0 ? this.opts.childCheckSeconds * 1000 : undefined;
    const wakeForDrift = driftLeft ? DRIFT_ROUND_STEP_MS : undefined;
    const wakes = [wakeForRetry, wakeForCheck, wakeForDrift].filter((ms): ms is number => ms !== undefined);
    return { wakeInMs: wakes.length > 0 ? Math.min(...wakes) : undefined };
  }

  /** When the children were last checked: kept in the state (so a new run does not check at once) with DRIFT_ROUNDS_PATCH. */
  private get childrenCheckedAt(): number {
    return this.driftRounds ? (this.state.childrenCheckedAt ?? 0) : this.runChildrenCheckedAt;
  }

  private set childrenCheckedAt(at: number) {
    if (this.driftRounds) this.state.childrenCheckedAt = at;
    else this.runChildrenCheckedAt = at;
  }

  /**
   * Children that ended without a word (terminated by an operator, or a lost report) are found by asking
   * Temporal, once per resync; v3 asks every childCheckSeconds while children run, and also learns which
   * step a child keeps retrying (Temporal retries activities without telling the workflow), to say so.
   */
  private async checkChildren(): Promise<void> {
    const running = Object.values(this.children).filter((c) => !this.state.finished!.some((o) => o.workflowId === c.workflowId));
    const everyMs = (this.v3 ? this.opts.childCheckSeconds : this.opts.resyncSeconds) * 1000;
    const now = this.askChildrenNow;
    this.askChildrenNow = false;
    if (running.length === 0 || (!now && Date.now() - this.childrenCheckedAt < everyMs)) return;
    if (!now && this.fewerTrips && this.childrenCheckedAt === 0) {
      // Never asked yet: children started moments ago. The clock starts now.
      this.childrenCheckedAt = Date.now();
      return;
    }
    this.childrenCheckedAt = Date.now();
    const warnings: Promise<void>[] = [];
    for (const s of await childStatus.describeChildren({ children: running.map(({ workflowId, op }) => ({ workflowId, op })) })) {
      if (!s.running) {
        this.onChildFinished(s.outcome);
        continue;
      }
      if (!this.v3) continue;
      const child = this.children[s.workflowId]!;
      const before = child.retrying;
      if (!s.retrying) {
        delete child.retrying;
        continue;
      }
      const same = before && before.activity === s.retrying.activity && before.reason === s.retrying.reason;
      child.retrying = { ...s.retrying, reported: same ? before.reported : false };
      if (!child.retrying.reported) {
        child.retrying.reported = true;
        // With fewer trips, all in one workflow task: at 1,000 nodes, one after the other held a pass for 6.6 s.
        const warning = this.event('Warning', retryingReason(child), describeRetry(child));
        if (this.fewerTrips) warnings.push(warning);
        else await warning;
      }
    }
    await Promise.all(warnings);
  }

  /** Applies the children's reports; says which ENIs they changed, and whether every one of them ended well. */
  private applyFinished(): Reported {
    const { state } = this;
    const reported: Reported = { eniIds: [], allOk: true, enis: [], allCarryEni: true };
    for (const outcome of state.finished!.splice(0)) {
      const child = this.children[outcome.workflowId];
      if (!child) continue;
      delete this.children[outcome.workflowId];
      if (outcome.ok) reported.eniIds.push(outcome.result.eniId);
      else reported.allOk = false;
      if (outcome.ok && outcome.op === 'provision' && outcome.eni) reported.enis.push(outcome.eni);
      else reported.allCarryEni = false;
      if (outcome.op === 'provision') {
        if (outcome.ok) {
          state.configured[child.key] = outcome.result;
          if (state.drift?.[child.key]) this.repairedKeys.push(child.key);
          delete state.failures[child.key];
        } else {
          // What is configured stays recorded (a failed re-provisioning leaves the ENI as it was): the next attempt and the teardown need it.
          this.recordFailure(child.key, outcome.reason, outcome.message, child.generation);
        }
        continue;
      }
      const failureKey = `eni:${child.eniId}`;
      if (!outcome.ok) {
        // An ENI force-finish left while its teardown was ending is not retried: nothing to back off from.
        if (!state.leaked.some((l) => l.eniID === child.eniId)) this.recordFailure(failureKey, outcome.reason, outcome.message, child.generation);
        continue;
      }
      delete state.failures[failureKey];
      if (state.configured[child.key]?.eniId === child.eniId) delete state.configured[child.key];
      if (outcome.result.outcome === 'forced' && !outcome.result.gone) this.leave({ eniID: outcome.result.eniId, nodeID: child.node, instanceID: child.instanceId ?? '', reason: outcome.result.reason });
    }
    return reported;
  }

  /**
   * The ENIs this pass re-reads instead of listing them all (REPORTED_REREADS_PATCH), or undefined for a
   * full listing: only a pass that children's reports alone woke (no outside change, no resync due, no
   * operator's request, no agent start), all of which ended well, while the object was alive.
   */
  private rereadsOnly(reported: Reported): string[] | undefined {
    const { seen, state } = this;
    const quiet = !seen.outsideChanged && Date.now() - seen.fullAt < this.opts.resyncSeconds * 1000
      && state.pendingForce.length === 0 && (state.agentStarted?.length ?? 0) === 0;
    const ids = [...new Set(reported.eniIds)].sort();
    if (!this.lastManaged || !this.lastPassAlive || !quiet || !reported.allOk || ids.length === 0 || ids.length > MAX_ENIS_PER_NARROW_READ) return undefined;
    return ids;
  }

  /**
   * What a pass woken only by reports takes instead of reading (REPORTS_TRUSTED_PATCH): the reported
   * ENIs, and the last observation with the status that pass left stored; undefined to read. Asked
   * only where the pass would re-read just the reported ENIs (rereadsOnly), after a pass that ended well.
   */
  private trustedReports(reported: Reported): { enis: ManagedEni[]; observed: ObservedNodeENI } | undefined {
    const { lastObserved, lastStatus } = this;
    if (!this.reportsTrusted || !reported.allCarryEni || reported.enis.length === 0 || !lastObserved || !lastStatus || this.loop.failure) return undefined;
    return { enis: reported.enis, observed: { ...lastObserved, status: lastStatus.status, statusDigest: lastStatus.digest } };
  }

  private recordFailure(key: string, reason: string, message: string, generation: number): void {
    const attempts = (this.state.failures[key]?.attempts ?? 0) + 1;
    const backoff = Math.min(MAX_BACKOFF_MS, this.opts.failureBackoffSeconds * 1000 * 2 ** Math.min(attempts - 1, 20));
    this.state.failures[key] = { reason, message, generation, attempts, retryAt: Date.now() + backoff };
  }

  /** A repair of this attachment failed and its back-off has not passed (REPAIRS_KEPT_PATCH). */
  private repairBackingOff(key: string, generation: number): boolean {
    return inBackoff(this.state, key, generation, Date.now()) && patched(REPAIRS_KEPT_PATCH);
  }

  /** Forgets the failures of attachments no longer wanted and of ENIs EC2 no longer has (PRUNE_FAILURES_PATCH). */
  private pruneFailures(plan: Plan, managed: ManagedEni[]): void {
    const retried = new Set([...plan.desired.map((d) => d.keyString), ...managed.map((e) => `eni:${e.eniId}`)]);
    const stale = Object.keys(this.state.failures).filter((key) => !retried.has(key));
    if (stale.length === 0 || !patched(PRUNE_FAILURES_PATCH)) return;
    for (const key of stale) delete this.state.failures[key];
  }

  private leave(record: LeakedENI): void {
    if (!this.state.leaked.some((l) => l.eniID === record.eniID)) {
      this.state.leaked.push(record);
      metrics().enisLeaked(this.name);
    }
    delete this.state.failures[`eni:${record.eniID}`];
  }

  // ---- what the world looks like (v3) ---------------------------------------

  /**
   * Instances and the resolved spec. Read in full on the first pass of a run,
   * after a signal from outside (a node or the NodeENI changed), on a new
   * generation and once per resync; passes woken by our own children reuse
   * them and read only instances not seen before. `startLook` starts the Go
   * controller look: beside the instances' read (across VPCs) with
   * EARLY_REFERENCES_PATCH, else once the instances are known.
   */
  private async readWorld(observed: ObservedNodeENI, instanceIds: string[], startLook?: (known: InstanceInfo[], acrossVpcs: boolean) => void): Promise<{ instances: InstanceInfo[]; resolved: ResolvedSpec[] }> {
    const seen = this.seen;
    const read = pacedEc2().read;
    const full = seen.outsideChanged || Date.now() - seen.fullAt >= this.opts.resyncSeconds * 1000 || seen.resolved?.generation !== observed.generation;
    this.passWasFull = full;
    const wanted = full ? instanceIds : instanceIds.filter((id) => !seen.instances.has(id));
    if (full) {
      seen.instances.clear();
      seen.fullAt = Date.now();
      seen.outsideChanged = false;
    }
    // The references do not depend on the instances: read while they are.
    const references = this.earlyReferences && instanceIds.length > 0 && (full || !seen.resolved) ? read.lookUpSpecReferences({ spec: observed.spec }) : undefined;
    // Awaited only after the instances: a failed read must not go unhandled meanwhile.
    references?.catch(() => undefined);
    if (this.earlyReferences) startLook?.([], true);
    if (wanted.length > 0) {
      const got = await read.describeInstancesForPass({ instanceIds: wanted, knownTypes: [...seen.maxInterfaces.keys()] });
      for (const i of got.instances) seen.instances.set(i.instanceId, i);
      for (const [type, max] of Object.entries(got.maxInterfaces)) seen.maxInterfaces.set(type, max);
    }
    const instances = instanceIds.map((id) => seen.instances.get(id)).filter((i): i is PassInstance => i !== undefined);
    if (!this.earlyReferences) startLook?.(instances, false);
    const vpcs = [...new Set(instances.map((i) => i.vpcId))].sort();
    if (full || !seen.resolved || vpcs.some((v) => !seen.resolved!.byVpc.has(v))) {
      let resolved: ResolvedSpec[];
      if (this.earlyReferences) {
        const found = vpcs.length === 0 ? undefined : await (references ?? read.lookUpSpecReferences({ spec: observed.spec }));
        // A VPC the references read across VPCs cannot tell about is looked up on its own.
        resolved = !found ? [] : await Promise.all(vpcs.map((vpcId) => resolveSpecInVpc(observed.spec, found, vpcId) ?? read.resolveSpec({ spec: observed.spec, vpcId })));
      } else resolved = await Promise.all(vpcs.map((vpcId) => read.resolveSpec({ spec: observed.spec, vpcId })));
      seen.resolved = { generation: observed.generation, byVpc: new Map(resolved.map((r) => [r.vpcId, r])) };
    }
    return { instances, resolved: vpcs.map((v) => seen.resolved!.byVpc.get(v)!) };
  }

  /** Hands out free device indices per instance, counting what EC2 showed and what this pass already gave away. */
  private deviceIndexPlanner(instances: InstanceInfo[], managed: ManagedEni[]): DeviceIndexPlanner {
    const used = new Map<string, Set<number>>();
    for (const i of instances) used.set(i.instanceId, new Set((i as Partial<PassInstance>).usedDeviceIndices ?? []));
    for (const e of managed) if (e.attachment) used.get(e.attachment.instanceId)?.add(e.attachment.deviceIndex);
    return {
      next: (instanceId, preferred) => {
        const taken = used.get(instanceId) ?? new Set<number>();
        used.set(instanceId, taken);
        let index = Math.max(1, preferred);
        while (taken.has(index)) index++;
        const type = this.seen.instances.get(instanceId)?.instanceType;
        const plan = { deviceIndex: index, usedInterfaces: taken.size, maxInterfaces: type ? this.seen.maxInterfaces.get(type) : undefined };
        taken.add(index);
        return plan;
      },
    };
  }

  // ---- children ----------------------------------------------------------

  /** A device that changes drivers waits until the device plugin has let go of it (consumers stop first). */
  private mayRebind(d: DesiredAttachment, observed: ObservedNodeENI): boolean {
    const done = this.state.configured[d.keyString];
    if (!done || !bindingChangePending(done, observed.spec)) return true;
    const pci = done.dpdk?.pciAddress ?? done.pciAddress;
    return pci === undefined || !devicePublished(this.state, d.key.nodeName, pci);
  }

  /** Desired attachments that are configured as this generation wants, attached, and with no child at work. */
  private settled(plan: Plan, generation: number): Map<string, { node: string; done: ConfiguredAttachment }> {
    const busy = new Set(Object.values(this.children).map((c) => c.key));
    const out = new Map<string, { node: string; done: ConfiguredAttachment }>();
    for (const d of plan.desired) {
      const done = this.state.configured[d.keyString];
      const eni = plan.eniByKey.get(d.keyString);
      if (!done || busy.has(d.keyString) || done.generation !== generation || eni?.eniId !== done.eniId || eni.attachment?.status !== 'attached') continue;
      out.set(d.keyString, { node: d.key.nodeName, done });
    }
    return out;
  }

  private async startProvision(d: DesiredAttachment, observed: ObservedNodeENI, eni: ManagedEni | undefined, indices?: DeviceIndexPlanner, repair = false): Promise<void> {
    const { name, uid, opts } = this;
    const configured = this.state.configured[d.keyString];
    const seen: ProvisionObserved | undefined = indices && {
      eni: eni && { eniId: eni.eniId, macAddress: eni.macAddress, securityGroupIds: eni.securityGroupIds, attachment: eni.attachment },
      attach: eni?.attachment ? undefined : indices.next(d.key.instanceId, d.preferredDeviceIndex),
    };
    const workflowId = provisionWorkflowId(this.childPrefix, d.key, ++this.state.seq);
    await this.startTracked({ op: 'provision', key: d.keyString, workflowId, node: d.key.nodeName, generation: observed.generation, startedAt: Date.now() }, {
      workflowType: 'provisionAttachment',
      workflowId,
      summary: `Provision ENI: NodeENI ${name}, node ${d.key.nodeName}, subnet ${d.subnet.id}`,
      nodeEniName: name,
      nodeName: d.key.nodeName,
      input: {
        nodeEniName: name,
        nodeEniUid: uid,
        clusterName: opts.clusterName,
        key: d.key,
        attachmentKey: d.keyString,
        securityGroupIds: d.securityGroupIds,
        description: observed.spec.description,
        preferredDeviceIndex: d.preferredDeviceIndex,
        deleteOnTermination: observed.spec.deleteOnTermination ?? true,
        mtu: observed.spec.mtu,
        enableDPDK: observed.spec.enableDPDK ?? false,
        dpdkDriver: observed.spec.dpdkDriver ?? 'vfio-pci',
        dpdkPCIAddress: observed.spec.dpdkPCIAddress,
        generation: observed.generation,
        nodeAgentStartTimeoutMs: opts.nodeAgentStartTimeoutMs,
        detachTimeoutMs: opts.detachTimeoutMs,
        deadlineMs: opts.provisionDeadlineSeconds * 1000,
        // What is on the node now (a spec change re-provisions an ENI that is already in use).
        current: configured && configured.eniId === eni?.eniId ? configured : undefined,
        reportTo: this.entityId,
        ...(seen ? { observed: seen, eventsAfterReport: true } : {}),
        ...(repair ? { repair: true } : {}),
      },
    });
  }

  private async startTeardown(eni: ManagedEni, generation: number): Promise<void> {
    const { name, uid, opts } = this;
    const node = eni.nodeName ?? '';
    const workflowId = teardownWorkflowId(this.childPrefix, node || 'unknown', eni.eniId);
    await this.startTracked({ op: 'teardown', key: eni.attachmentKey ?? `eni:${eni.eniId}`, eniId: eni.eniId, workflowId, node, instanceId: eni.instanceId, generation, startedAt: Date.now() }, {
      workflowType: 'teardownAttachment',
      workflowId,
      summary: `Tear down ${eni.eniId}: NodeENI ${name}, node ${node || 'unknown'}`,
      nodeEniName: name,
      nodeName: node || 'unknown',
      input: {
        nodeEniName: name,
        nodeEniUid: uid,
        eniId: eni.eniId,
        nodeName: eni.nodeName,
        macAddress: eni.macAddress,
        dpdk: this.dpdkOf(eni),
        detachTimeoutMs: opts.detachTimeoutMs,
        nodeAgentStartTimeoutMs: opts.nodeAgentStartTimeoutMs,
        reportTo: this.entityId,
        ...(this.v3 ? { observed: { attachment: eni.attachment ? { attachmentId: eni.attachment.attachmentId, status: eni.attachment.status } : null }, eventsAfterReport: true } : {}),
      },
    });
  }

  /**
   * Records the child before it starts, so its report is never ignored; a child already running under
   * that ID (started by an earlier run) is adopted. With STARTS_BY_ACTIVITY_PATCH the start waits for
   * the pass's flushStarts; runs recorded before start each as a child workflow.
   */
  private async startTracked(record: ChildRecord, start: ChildStart): Promise<void> {
    this.children[record.workflowId] = record;
    if (this.fewerTrips && patched(STARTS_BY_ACTIVITY_PATCH)) {
      this.pendingStarts.push(start);
      return;
    }
    const options = {
      workflowId: start.workflowId,
      // The child outlives a continue-as-new of its entity and reports back by signal.
      parentClosePolicy: ParentClosePolicy.ABANDON,
      staticSummary: start.summary,
      typedSearchAttributes: [{ key: SA_NODEENI, value: start.nodeEniName }, { key: SA_NODE_NAME, value: start.nodeName }],
    };
    try {
      if (start.workflowType === 'provisionAttachment') await startChild(provisionAttachment, { ...options, args: [start.input] });
      else await startChild(teardownAttachment, { ...options, args: [start.input] });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return;
      delete this.children[record.workflowId];
      throw err;
    }
  }

  /**
   * Starts what this pass recorded, STARTS_PER_ACTIVITY at a time, the activities side by side. If
   * they fail for good the pass fails and the children stay recorded: none is started twice, and the
   * children check turns those that never started into failures retried after back-off.
   */
  private async flushStarts(): Promise<void> {
    const starts = this.pendingStarts.splice(0);
    const taskQueue = workflowInfo().taskQueue;
    const windows: ChildStart[][] = [];
    for (let i = 0; i < starts.length; i += STARTS_PER_ACTIVITY) windows.push(starts.slice(i, i + STARTS_PER_ACTIVITY));
    await Promise.all(windows.map((w) => childStarter.startChildren({ taskQueue, starts: w })));
  }

  /** The DPDK binding recorded for this ENI, so its teardown gives the device back to the kernel first. */
  private dpdkOf(eni: ManagedEni) {
    const done = eni.attachmentKey ? this.state.configured[eni.attachmentKey] : undefined;
    return done?.eniId === eni.eniId && done.dpdk ? { ...done.dpdk, mtu: done.mtu } : undefined;
  }

  /** Sends each node's device plugin this NodeENI's current entries, when they changed. */
  private async publishDevicePlugin(plan: Plan, observed: ObservedNodeENI): Promise<void> {
    const { state } = this;
    const wanted = devicePluginEntries(plan, state, observed.spec);
    for (const nodeName of [...new Set([...wanted.keys(), ...Object.keys(state.devicePlugin)])].sort()) {
      const entries = wanted.get(nodeName) ?? [];
      const sent = JSON.stringify(entries);
      const dp = state.devicePlugin[nodeName];
      if (dp?.sent === sent) {
        // Nothing left to publish there and the node confirmed it: forget the node.
        if (entries.length === 0 && devicePluginSettled(state, nodeName)) delete state.devicePlugin[nodeName];
        continue;
      }
      const requestId = String(++state.seq);
      await devicePluginStarter.publishDevicePluginEntries({ nodeName, owner: this.entityId, entries, requestId });
      state.devicePlugin[nodeName] = { sent, requestId };
    }
  }

  /** Applies an operator's force-finish: running children are told to stop, waiting teardowns are left at once. */
  private async applyForce(req: ForceFinishRequest, plan: Plan, childMayHaveEnded: boolean): Promise<ForceOutcome> {
    const outcome: ForceOutcome = { childIds: [], eniIds: [] };
    for (const child of Object.values(this.children)) {
      if (!this.matchesForce(req, child.node)) continue;
      const told = await getExternalWorkflowHandle(child.workflowId).signal(childForceSignal, req).then(() => true, (err: unknown) => {
        if (isCancellation(err) || !childMayHaveEnded) throw err;
        log.info('force-finish: the child had already ended', { workflowId: child.workflowId, error: String(err) });
        return false;
      });
      if (!told && child.op === 'teardown' && child.eniId) {
        // It ended before it could be told (a signal fails only to a closed workflow), and left its ENI unless
        // it deleted it: leave the ENI as a waiting teardown's. Either way a report still on its way changes
        // nothing (a left ENI is not retried), so the child is no longer in flight.
        const left = await this.leaveForced(req, child.eniId, child.node, child.instanceId);
        if (!left || patched(FORCE_ENDED_PATCH)) delete this.children[child.workflowId];
        outcome.eniIds.push(child.eniId);
        continue;
      }
      // Ended without a report (a provisioning terminated by hand): the answer waits for how it ended, asked now.
      if (!told && patched(FORCE_ENDED_PATCH)) {
        this.askChildrenNow = true;
        this.loop.markDirty();
      }
      outcome.childIds.push(child.workflowId);
      if (child.eniId) outcome.eniIds.push(child.eniId);
    }
    const busy = new Set(Object.values(this.children).map((c) => c.eniId));
    const handled = new Set(outcome.eniIds);
    for (const eni of plan.removing) {
      if (busy.has(eni.eniId) || !this.matchesForce(req, eni.nodeName)) continue;
      // An ENI its ended child's branch above has dealt with (before the patch, tagged and told twice).
      if (handled.has(eni.eniId) && patched(FORCE_ENDED_PATCH)) continue;
      await this.leaveForced(req, eni.eniId, eni.nodeName, eni.instanceId);
      outcome.eniIds.push(eni.eniId);
    }
    return outcome;
  }

  /**
   * A teardown nobody runs, force-finished: its ENI tagged for the sweeper, recorded, told. An ENI EC2
   * no longer has (its teardown deleted it, then ended before it was told) is not left behind. Says
   * whether the ENI was left.
   */
  private async leaveForced(req: ForceFinishRequest, eniId: string, nodeName: string | undefined, instanceId: string | undefined): Promise<boolean> {
    const tagged = await (this.v3 ? pacedEc2().modify : ec2).tagLeaked({ eniId, reason: req.reason });
    if (leakTagFoundGone(tagged)) {
      delete this.state.failures[`eni:${eniId}`];
      await this.event('Normal', 'ForceFinished', `teardown of ${eniId} on node ${nodeName ?? 'unknown'} force-finished: ${req.reason}; the ENI was already deleted, nothing is left behind`);
      return false;
    }
    this.leave({ eniID: eniId, nodeID: nodeName ?? '', instanceID: instanceId ?? '', reason: req.reason });
    await this.event('Warning', 'ForceFinished', `teardown of ${eniId} on node ${nodeName ?? 'unknown'} force-finished: ${req.reason}; the ENI is left in EC2, tagged for the leaked-ENI sweeper`);
    return true;
  }

  // ---- reporting -----------------------------------------------------------

  private event(type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    return kube.recordEvent({ name: this.name, uid: this.uid, eventId: `${this.entityId}/${workflowInfo().runId}/${++this.state.seq}/${reason}`, type, reason, message });
  }

  private async reportPassFailure(f: PassFailure, firstOfItsKind: boolean): Promise<void> {
    const retryIn = Math.max(0, Math.round((f.retryAt - Date.now()) / 1000));
    const message = `reconcile failed (${f.attempts} in a row): ${f.reason}: ${f.message}; retrying in ${retryIn} s`;
    setCurrentDetails(`**NodeENI ${this.name}**: ${message}`);
    await kube.setCondition({
      name: this.name, uid: this.uid,
      condition: { type: 'Degraded', status: 'True', reason: 'ReconcileFailed', message: message.slice(0, 2000) },
    });
    if (firstOfItsKind) await this.event('Warning', 'ReconcileFailed', message);
  }
}

interface SeenWorld {
  instances: Map<string, PassInstance>;
  maxInterfaces: Map<string, number>;
  resolved: { generation: number; byVpc: Map<string, ResolvedSpec> } | undefined;
  /** Epoch ms of the last full read. */
  fullAt: number;
  /** A signal from outside arrived since the last full read. */
  outsideChanged: boolean;
}

/** What the children's reports a pass applied changed. */
interface Reported {
  eniIds: string[];
  allOk: boolean;
  /** The ENIs as the reporting children left them in EC2 (provisioning reports of the paced path). */
  enis: ManagedEni[];
  /** Every report applied was a provisioning that ended well and said how it left its ENI. */
  allCarryEni: boolean;
}

/** A new run starts from what the last one read, or (first run, or one continued before WORLD_CARRY_PATCH) from nothing. */
function seenFromCarried(world: CarriedWorld | undefined): SeenWorld {
  if (!world) return { instances: new Map(), maxInterfaces: new Map(), resolved: undefined, fullAt: 0, outsideChanged: true };
  return {
    instances: new Map(world.instances.map((i) => [i.instanceId, i])),
    maxInterfaces: new Map(Object.entries(world.maxInterfaces)),
    resolved: world.resolved && { generation: world.resolved.generation, byVpc: new Map(world.resolved.byVpc.map((r) => [r.vpcId, r])) },
    fullAt: world.fullAt,
    outsideChanged: world.outsideChanged,
  };
}

function carriedFromSeen(seen: SeenWorld): CarriedWorld {
  return {
    fullAt: seen.fullAt,
    outsideChanged: seen.outsideChanged,
    instances: [...seen.instances.values()],
    maxInterfaces: Object.fromEntries(seen.maxInterfaces),
    ...(seen.resolved ? { resolved: { generation: seen.resolved.generation, byVpc: [...seen.resolved.byVpc.values()] } } : {}),
  };
}

interface DeviceIndexPlanner {
  next(instanceId: string, preferred: number): { deviceIndex: number; usedInterfaces: number; maxInterfaces?: number };
}

/** The earliest time a backed-off child may be retried, so the loop wakes for it. */
function nextChildRetry(state: EntityState): number | undefined {
  const now = Date.now();
  const waits = Object.values(state.failures).map((f) => f.retryAt - now).filter((ms) => ms > 0);
  return waits.length > 0 ? Math.max(1000, Math.min(...waits)) : undefined;
}

const at = (ms: number | undefined) => (ms === undefined ? 'unknown' : new Date(ms).toISOString());

function retryingReason(child: ChildRecord): string {
  return child.op === 'teardown' ? 'TeardownRetrying' : 'ProvisionRetrying';
}

function describeRetry(child: ChildRecord): string {
  const r = child.retrying!;
  const what = child.op === 'teardown' ? `teardown of ${child.eniId ?? child.key} on ${child.node}` : `provisioning on ${child.node}`;
  return `${what}: ${r.activity} keeps failing (attempt ${r.attempt}): ${r.reason}: ${r.message}; next try at ${at(r.nextRetryAt)}`;
}

function workflowUrl(uiBaseUrl: string | undefined, workflowId: string): string | undefined {
  if (!uiBaseUrl) return undefined;
  return `${uiBaseUrl.replace(/\/+$/, '')}/namespaces/${encodeURIComponent(workflowInfo().namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}

/** The entity's Current Details in the Temporal UI: what runs, what keeps failing and why, and how to give up. */
function detailsV3(name: string, entityId: string, plan: Plan, inFlight: ChildRecord[], state: EntityState): string {
  const provisioning = inFlight.filter((c) => c.op === 'provision').length;
  const failing = [
    ...inFlight.filter((c) => c.retrying).map((c) => `- ${describeRetry(c)} — \`${c.workflowId}\``),
    ...Object.entries(state.failures).map(([key, f]) =>
      `- ${key.startsWith('eni:') ? `teardown of ${key.slice(4)}` : `provisioning ${key.split('/').slice(1, 2).join('')}`} failed ${f.attempts}×: ${f.reason}: ${f.message}; next try at ${at(f.retryAt)}`),
  ];
  const lines = [
    `**NodeENI ${name}**: ${plan.desired.length} desired attachments, ${plan.removing.length} ENIs to remove; running: ${provisioning} provisioning, ${inFlight.length - provisioning} teardown`,
    ...(failing.length > 0 ? ['', '**Failing**', ...failing] : []),
    ...plan.problems.map((p) => `- problem ${p.reason}: ${p.message}`),
    ...state.leaked.map((l) => `- left behind ${l.eniID} on ${l.nodeID}: ${l.reason}`),
  ];
  if (plan.removing.length > 0 || inFlight.length > 0) {
    lines.push('', `Give up on what is stuck (ENIs are left, tagged for the sweeper): \`nodeeni force-finish ${name} --reason "…"\` or \`temporal workflow update execute --workflow-id '${entityId}' --name forceFinish --input '{"reason":"…"}'\``);
  }
  return lines.join('\n');
}

function details(name: string, plan: Plan, inFlight: ChildRecord[], state: EntityState): string {
  const lines = [
    `**NodeENI ${name}**: ${plan.desired.length} desired attachments, ${plan.removing.length} ENIs to remove, ${inFlight.length} running`,
    ...inFlight.map((c) => `- ${c.op} on ${c.node}${c.eniId ? ` (${c.eniId})` : ''}: \`${c.workflowId}\``),
    ...plan.problems.map((p) => `- problem ${p.reason}: ${p.message}`),
    ...state.leaked.map((l) => `- left behind ${l.eniID} on ${l.nodeID}: ${l.reason}`),
  ];
  return lines.join('\n');
}

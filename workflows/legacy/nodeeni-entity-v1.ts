// The v1 entity workflow (commit a3ab700), kept so that runs it started replay
// unchanged. At its first wake-up on this code with no child running it
// continues-as-new into the current implementation, carrying its state. Delete
// it with the ENTITY_V2 patch once no v1 run remains (see the README, Upgrades).
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  executeChild,
  getExternalWorkflowHandle,
  log,
  ParentClosePolicy,
  patched,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import { childWorkflowId } from '../../common/names.js';
import { SA_NODE_NAME, SA_NODEENI } from '../../common/search-attributes.js';
import type { LeakedENI } from '../../common/types.js';
import type { ManagedEni } from '../../activities/ec2/ec2-activities.js';
import type { ObservedNodeENI } from '../../activities/kube/kube-activities.js';
import {
  childForceSignal,
  DEFAULT_ENTITY_OPTIONS,
  devicePluginAppliedSignal,
  emptyEntityState,
  forceFinishSignal,
  forceFinishUpdate,
  reconcileSignal,
  stateQuery,
  type EntityInput,
  type EntityOptions,
  type EntityState,
  type EntityView,
  type ForceFinishRequest,
  type ForceFinishResult,
} from '../../common/workflow-api.js';
import { devicePluginSettled } from '../device-plugin-entries.js';
import type { DevicePluginEntry } from '../../common/device-plugin.js';
import type { NodeENISpec } from '../../common/types.js';
import { failureMessage, failureReason } from '../failures.js';
import { planReconcile, type DesiredAttachment, type Plan } from '../plan.js';
import { provisionAttachment } from '../provision-attachment.js';
import { devicePluginStarter, ec2, kube } from '../proxies.js';
import { buildStatus, type InFlight } from '../status.js';
import { teardownAttachment } from '../teardown-attachment.js';

/** Present in a v1 run's history from the moment it handed over to the current implementation. */
export const ENTITY_V1_UPGRADE_PATCH = 'nodeeni-entity-v1-upgrade';

interface Child extends InFlight {
  workflowId: string;
  node: string;
}

const MAX_BACKOFF_MS = 30 * 60_000;

export async function legacyNodeEniEntity(input: EntityInput): Promise<void> {
  const { name, uid } = input;
  const opts: EntityOptions = { ...DEFAULT_ENTITY_OPTIONS, ...input.options };
  const state = input.state ?? emptyEntityState();
  state.devicePlugin ??= {};
  const entityId = workflowInfo().workflowId;
  const children = new Map<string, Child>();
  const forceOutcomes = new Map<ForceFinishRequest, string[]>();
  let removing: ManagedEni[] = [];
  let dirty = true;

  const matchesForce = (req: ForceFinishRequest, node: string | undefined) => req.node === undefined || req.node === node;
  const validateForce = (req: ForceFinishRequest) => {
    if (typeof req?.reason !== 'string' || req.reason.trim() === '') throw new Error('forceFinish needs a non-empty "reason"');
    const stuck = removing.some((e) => matchesForce(req, e.nodeName)) || [...children.values()].some((c) => c.op === 'teardown' && matchesForce(req, c.node));
    if (!stuck) throw new Error(`nothing to force-finish: no teardown is pending${req.node ? ` on node ${req.node}` : ''} for NodeENI ${name}`);
  };

  setHandler(reconcileSignal, () => { dirty = true; }, { description: 'Re-read the NodeENI, its nodes and EC2, and converge.' });
  setHandler(devicePluginAppliedSignal, (answer) => {
    const dp = state.devicePlugin[answer.nodeName];
    if (dp && dp.requestId === answer.requestId) {
      dp.answer = { requestId: answer.requestId, ok: answer.ok, podFound: answer.podFound, message: answer.message };
      dirty = true;
    }
  }, { description: 'Answer of a node device-plugin workflow to our latest entries.' });
  setHandler(stateQuery, (): EntityView => ({
    state,
    inFlight: [...children.values()].map((c) => ({ key: c.key, op: c.op, workflowId: c.workflowId, eniId: c.eniId, node: c.node })),
  }), { description: 'The entity state and the child workflows running now.' });
  setHandler(forceFinishSignal, (req) => {
    try {
      validateForce(req);
    } catch (err) {
      log.warn('forceFinish signal ignored', { error: String(err) });
      return;
    }
    state.pendingForce.push(req);
    dirty = true;
  }, { description: 'Like the forceFinish update, for tools that can only signal. Input: {"reason": "...", "node": "optional"}' });
  setHandler(forceFinishUpdate, async (req): Promise<ForceFinishResult> => {
    state.pendingForce.push(req);
    dirty = true;
    await condition(() => forceOutcomes.has(req) && forceOutcomes.get(req)!.every((id) => ![...children.values()].some((c) => c.eniId === id)));
    const affected = forceOutcomes.get(req)!;
    forceOutcomes.delete(req);
    return { leftBehind: affected.filter((id) => state.leaked.some((l) => l.eniID === id)) };
  }, {
    validator: validateForce,
    description: 'End a stuck teardown: stop cleaning up, leave the ENIs (tagged) and record them. Input: {"reason": "...", "node": "optional node name"}',
  });

  const event = (type: 'Normal' | 'Warning', reason: string, message: string) =>
    kube.recordEvent({ name, uid, eventId: `${entityId}/${workflowInfo().runId}/${++state.seq}/${reason}`, type, reason, message });

  function recordFailure(key: string, err: unknown, generation: number) {
    const attempts = (state.failures[key]?.attempts ?? 0) + 1;
    const backoff = Math.min(MAX_BACKOFF_MS, opts.failureBackoffSeconds * 1000 * 2 ** (attempts - 1));
    state.failures[key] = { reason: failureReason(err), message: failureMessage(err), generation, attempts, retryAt: Date.now() + backoff };
  }

  function startProvision(d: DesiredAttachment, observed: ObservedNodeENI) {
    const workflowId = childWorkflowId(entityId, 'provision', d.key, ++state.seq);
    children.set(workflowId, { op: 'provision', key: d.keyString, workflowId, node: d.key.nodeName });
    executeChild(provisionAttachment, {
      workflowId,
      parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
      staticSummary: `Provision ENI: NodeENI ${name}, node ${d.key.nodeName}, subnet ${d.subnet.id}`,
      typedSearchAttributes: [{ key: SA_NODEENI, value: name }, { key: SA_NODE_NAME, value: d.key.nodeName }],
      args: [{
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
      }],
    })
      .then((done) => {
        state.configured[d.keyString] = done;
        delete state.failures[d.keyString];
      })
      .catch((err) => {
        delete state.configured[d.keyString];
        recordFailure(d.keyString, err, observed.generation);
      })
      .finally(() => {
        children.delete(workflowId);
        dirty = true;
      });
  }

  function startTeardown(eni: ManagedEni, generation: number) {
    const node = eni.nodeName ?? '';
    const workflowId = childWorkflowId(entityId, 'teardown', { nodeName: node || 'unknown', instanceId: eni.instanceId ?? '', subnetId: eni.subnetId }, ++state.seq);
    children.set(workflowId, { op: 'teardown', key: eni.attachmentKey ?? `eni:${eni.eniId}`, eniId: eni.eniId, workflowId, node });
    executeChild(teardownAttachment, {
      workflowId,
      parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
      staticSummary: `Tear down ${eni.eniId}: NodeENI ${name}, node ${node || 'unknown'}`,
      typedSearchAttributes: [{ key: SA_NODEENI, value: name }, { key: SA_NODE_NAME, value: node || 'unknown' }],
      args: [{
        nodeEniName: name,
        nodeEniUid: uid,
        eniId: eni.eniId,
        nodeName: eni.nodeName,
        macAddress: eni.macAddress,
        dpdk: dpdkOf(eni),
        detachTimeoutMs: opts.detachTimeoutMs,
        nodeAgentStartTimeoutMs: opts.nodeAgentStartTimeoutMs,
      }],
    })
      .then((res) => {
        delete state.failures[`eni:${eni.eniId}`];
        if (eni.attachmentKey && state.configured[eni.attachmentKey]?.eniId === eni.eniId) delete state.configured[eni.attachmentKey];
        if (res.outcome === 'forced') leave(eni, res.reason);
      })
      .catch((err) => recordFailure(`eni:${eni.eniId}`, err, generation))
      .finally(() => {
        children.delete(workflowId);
        dirty = true;
      });
  }

  /** The DPDK binding recorded for this ENI, so its teardown gives the device back to the kernel first. */
  function dpdkOf(eni: ManagedEni) {
    const done = eni.attachmentKey ? state.configured[eni.attachmentKey] : undefined;
    return done?.eniId === eni.eniId && done.dpdk ? { ...done.dpdk, mtu: done.mtu } : undefined;
  }

  /** Sends each node's device plugin this NodeENI's current entries, when they changed. */
  async function publishDevicePlugin(plan: Plan, observed: ObservedNodeENI) {
    const wanted = devicePluginEntriesV1(plan, state, observed.spec, observed.generation);
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
      await devicePluginStarter.publishDevicePluginEntries({ nodeName, owner: entityId, entries, requestId });
      state.devicePlugin[nodeName] = { sent, requestId };
    }
  }

  function leave(eni: ManagedEni, reason: string) {
    const record: LeakedENI = { eniID: eni.eniId, nodeID: eni.nodeName ?? '', instanceID: eni.instanceId ?? '', reason };
    if (!state.leaked.some((l) => l.eniID === eni.eniId)) state.leaked.push(record);
    delete state.failures[`eni:${eni.eniId}`];
  }

  /** Applies an operator's force-finish: running teardowns are told to stop, waiting ones are left at once. */
  async function applyForce(req: ForceFinishRequest, plan: Plan): Promise<string[]> {
    const affected: string[] = [];
    for (const child of children.values()) {
      if (child.op !== 'teardown' || !child.eniId || !matchesForce(req, child.node)) continue;
      await getExternalWorkflowHandle(child.workflowId).signal(childForceSignal, req);
      affected.push(child.eniId);
    }
    const busy = new Set([...children.values()].map((c) => c.eniId));
    for (const eni of plan.removing) {
      if (busy.has(eni.eniId) || !matchesForce(req, eni.nodeName)) continue;
      await ec2.tagLeaked({ eniId: eni.eniId, reason: req.reason });
      leave(eni, req.reason);
      affected.push(eni.eniId);
      await event('Warning', 'ForceFinished', `teardown of ${eni.eniId} on node ${eni.nodeName ?? 'unknown'} force-finished: ${req.reason}; the ENI is left in EC2, tagged for the leaked-ENI sweeper`);
    }
    return affected;
  }

  for (;;) {
    await condition(() => dirty, nextWake(state, opts));
    dirty = false;
    // Hand over to the current implementation (v1's children would be cancelled by a continue-as-new: wait for none).
    if (children.size === 0 && state.pendingForce.length === 0 && patched(ENTITY_V1_UPGRADE_PATCH)) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof legacyNodeEniEntity>({ name, uid, options: opts, state });
    }

    const observed = await kube.observeNodeEni({ name, uid });
    const alive = observed.exists && !observed.deleting;
    const instanceIds = [...new Set(observed.nodes.map((n) => n.instanceId).filter((i): i is string => !!i))];
    const instances = alive ? await ec2.describeInstances({ instanceIds }) : [];
    const vpcs = [...new Set(instances.map((i) => i.vpcId))].sort();
    const resolved = await Promise.all(vpcs.map((vpcId) => ec2.resolveSpec({ spec: observed.spec, vpcId })));
    const managed = await ec2.listManagedEnis({ nodeEniUid: uid });
    const planFor = () => planReconcile({
      uid, observed, instances, resolved, managed, state,
      busyKeys: new Set([...children.values()].map((c) => c.key)),
      busyEnis: new Set([...children.values()].map((c) => c.eniId).filter((e): e is string => !!e)),
      now: Date.now(),
    });
    let plan = planFor();
    removing = plan.removing;
    if (state.pendingForce.length > 0) {
      for (const req of state.pendingForce.splice(0)) forceOutcomes.set(req, await applyForce(req, plan));
      plan = planFor();
      removing = plan.removing;
    }

    // Nothing is created before our finalizer guards the object (the watcher adds it).
    if (alive && observed.hasFinalizer) for (const d of plan.provision) startProvision(d, observed);
    // The device plugin lets go of a device before the device goes (stop consumers first).
    await publishDevicePlugin(plan, observed);
    for (const eni of plan.teardown) if (devicePluginSettled(state, eni.nodeName)) startTeardown(eni, observed.generation);

    const inFlight = [...children.values()];
    setCurrentDetails(details(name, plan, inFlight, state));
    if (observed.exists) {
      await kube.writeStatus({
        name, uid,
        status: buildStatus({ plan, state, spec: observed.spec, generation: observed.generation, deleting: observed.deleting, inFlight, previous: observed.status.conditions ?? [], now: new Date().toISOString() }),
      });
    }

    if (!alive && children.size === 0 && plan.removing.length === 0 && Object.keys(state.devicePlugin).length === 0) {
      if (observed.exists) {
        const { removed } = await kube.removeFinalizer({ name, uid });
        if (removed) await event('Normal', 'CleanupComplete', `every ENI of ${name} is gone${state.leaked.length ? ` or left behind (${state.leaked.map((l) => l.eniID).join(', ')})` : ''}; finalizer removed`);
      }
      await condition(allHandlersFinished);
      return;
    }
    const info = workflowInfo();
    if (children.size === 0 && (info.continueAsNewSuggested || info.historyLength > opts.maxHistoryLength)) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof legacyNodeEniEntity>({ name, uid, options: opts, state });
    }
  }
}

/** Sleep until the next resync, or the earliest failure retry, whichever comes first. */
function nextWake(state: EntityState, opts: EntityOptions): number {
  const now = Date.now();
  const retries = Object.values(state.failures).map((f) => f.retryAt - now).filter((ms) => ms > 0);
  return Math.max(1000, Math.min(opts.resyncSeconds * 1000, ...retries));
}

function details(name: string, plan: Plan, inFlight: Child[], state: EntityState): string {
  const lines = [
    `**NodeENI ${name}**: ${plan.desired.length} desired attachments, ${plan.removing.length} ENIs to remove, ${inFlight.length} running`,
    ...inFlight.map((c) => `- ${c.op} on ${c.node}${c.eniId ? ` (${c.eniId})` : ''}: \`${c.workflowId}\``),
    ...plan.problems.map((p) => `- problem ${p.reason}: ${p.message}`),
    ...state.leaked.map((l) => `- left behind ${l.eniID} on ${l.nodeID}: ${l.reason}`),
  ];
  return lines.join('\n');
}

/** v1's rule: ready attachments of the current generation only (a spec change withdrew every device until re-provisioned). */
function devicePluginEntriesV1(plan: Plan, state: EntityState, spec: NodeENISpec, generation: number): Map<string, DevicePluginEntry[]> {
  const byNode = new Map<string, DevicePluginEntry[]>();
  if (!spec.dpdkResourceName) return byNode;
  for (const d of plan.desired) {
    const done = state.configured[d.keyString];
    const eni = plan.eniByKey.get(d.keyString);
    if (!done || !eni || done.eniId !== eni.eniId || done.generation !== generation) continue;
    const pciAddress = done.dpdk?.pciAddress ?? done.pciAddress;
    if (!pciAddress) continue;
    const list = byNode.get(d.key.nodeName) ?? [];
    list.push({ resourceName: spec.dpdkResourceName, driver: done.dpdk?.driver ?? 'ena', pciAddress });
    byNode.set(d.key.nodeName, list);
  }
  for (const list of byNode.values()) list.sort((a, b) => a.pciAddress.localeCompare(b.pciAddress));
  return byNode;
}

// Provisions one ENI for one (node, subnet): create or adopt, attach, set
// DeleteOnTermination, wait until attached, configure on the node. A saga:
// completed steps are undone in reverse, in a scope cancellation cannot
// interrupt, when a later step fails for good.
import { ApplicationFailure, CancellationScope, condition, isCancellation, log, patched, setCurrentDetails, setHandler, sleep, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { SA_ENI_ID } from '../common/search-attributes.js';
import { childForceSignal, type ConfiguredAttachment, type ProvisionInput, type ProvisionObserved } from '../common/workflow-api.js';
import { failureMessage, failureReason, isNodeAgentUnavailable } from './failures.js';
import { failedOutcome, metrics, secondsSinceStart } from './metrics.js';
import { reportToEntity } from './report-to-entity.js';
import type { EventInput, KubeActivities } from '../activities/kube/kube-activities.js';
import type { ManagedEni } from '../activities/ec2/ec2-activities.js';
import { ec2, ec2Compensation, ec2Waits, kube, kubeEventsLocal, onNode, pacedEc2 } from './proxies.js';

/**
 * Children with inputs of the paced path (provisioning and teardown) report to their entity before
 * they wait for the Events they record off the critical path: the entity's next pass (Ready, the
 * finalizer) does not wait for them. Runs started before keep reporting after them.
 */
export const REPORT_FIRST_PATCH = 'nodeeni-child-report-first';

/**
 * Children on the paced path record their Events as local activities (proxies.ts kubeEventsLocal):
 * three or so per child were a third of its activity tasks, and the server's work at 1,000 nodes
 * is what sets the pace. Asked once, when the child starts; runs started before keep the
 * regular activities.
 */
export const LOCAL_EVENTS_PATCH = 'nodeeni-child-events-local';

/**
 * A created ENI whose attach this child cannot vouch for is detached (when attached) before it is
 * deleted: the attach's answer was lost and a retry found the ENI already attached here
 * (`attachedNow: false`), or the attach was cancelled after EC2 took it. Before, the delete alone
 * was refused with InvalidNetworkInterface.InUse until its schedule ran out. Asked in the undo,
 * so a provisioning that succeeds records nothing.
 */
export const DETACH_CREATED_PATCH = 'provision-attachment-detach-created';

/**
 * The undo stops at its first step that fails for good. Each undo step relies on the ones before
 * it (an interface is released on the node before its ENI is detached, an ENI is detached before it
 * is deleted), so a later step could only do harm or be refused: a delete after a refused detach
 * was refused with InvalidNetworkInterface.InUse until its 15-minute schedule ran out, and the
 * entity heard nothing all that time. What is left is tagged with its attachment key, and the
 * entity's next pass adopts it or tears it down. Asked when an undo step fails, so runs whose undo
 * went on after a failure replay as they ran.
 */
export const UNDO_STOPS_AT_FAILURE_PATCH = 'provision-attachment-undo-stops-at-failure';

/** The child's way to record an Event: a local activity where LOCAL_EVENTS_PATCH applies (ask once, at the start). */
export function eventRecorder(paced: boolean): KubeActivities['recordEvent'] {
  return paced && patched(LOCAL_EVENTS_PATCH) ? kubeEventsLocal.recordEvent : kube.recordEvent;
}

/**
 * Records the Events a child collected (inputs with `eventsAfterReport`), in one local activity, once
 * it reported: the local activity holds the workflow task open, so no step's command waits for it.
 * Events that could not be recorded are logged; the work stands.
 */
export async function recordCollected(events: EventInput[]): Promise<void> {
  if (events.length === 0) return;
  try {
    await kubeEventsLocal.recordEvents(events.splice(0));
  } catch (err) {
    log.warn('could not record the Events', { error: failureMessage(err) });
  }
}

/** Waits for Events recorded off the critical path; one that could not be recorded is logged, the work stands. */
export async function settleEvents(recorded: Promise<void>[]): Promise<void> {
  for (const r of await Promise.allSettled(recorded)) {
    if (r.status === 'rejected') log.warn('could not record an Event', { error: failureMessage(r.reason) });
  }
}

interface Ec2Result {
  eni: { eniId: string; macAddress: string; created: boolean };
  att: { attachmentId: string; deviceIndex: number; attachedNow: boolean };
  attached: { macAddress: string; deviceIndex: number };
}

const sameSet = (a: string[], b: string[]) => [...a].sort().join(',') === [...b].sort().join(',');

interface Compensation {
  what: string;
  run: () => Promise<unknown>;
}

/** Why the forward steps stopped before finishing: an operator's force-finish or the deadline. */
interface Stop {
  reason: 'ForceFinished' | 'ProvisionDeadlineExceeded';
  message: string;
}

type DetachEni = (input: { eniId: string; force: boolean }) => Promise<{ detached: 'requested' | 'already' }>;

/**
 * The undo for an ENI this child created: deleted, and first detached when no detach of its own is
 * registered (DETACH_CREATED_PATCH). The detach looks before it acts: an ENI never attached costs one describe.
 */
function deleteCreated(eniId: string, detachTimeoutMs: number, detach: DetachEni, del: (input: { eniId: string }) => Promise<unknown>) {
  let detachRegistered = false;
  const compensation: Compensation = {
    get what() {
      return detachRegistered ? `delete ${eniId}` : `delete ${eniId} (detached first if attached)`;
    },
    run: async () => {
      if (!detachRegistered && patched(DETACH_CREATED_PATCH)) {
        const { detached } = await detach({ eniId, force: false });
        if (detached === 'requested' && !(await ec2Compensation.waitForDetached({ eniId, timeoutMs: detachTimeoutMs })).detached) {
          await detach({ eniId, force: true });
          await ec2Compensation.waitForDetached({ eniId, timeoutMs: detachTimeoutMs });
        }
      }
      await del({ eniId });
    },
  };
  return { compensation, detachRegistered: () => void (detachRegistered = true) };
}

export async function provisionAttachment(input: ProvisionInput): Promise<ConfiguredAttachment> {
  const { key } = input;
  const node = onNode(key.nodeName, input.nodeAgentStartTimeoutMs);
  const { workflowId, runId } = workflowInfo();
  // Inputs from entities that pass what they saw take the paced path: EC2 calls on their API's task
  // queue, no describe before a step the pass already answered, and Events recorded off the critical
  // path. Inputs without it (written by older entities) replay the original steps.
  const paced = input.observed !== undefined;
  // Asks no patch: which path is in the input, written by the entity.
  const afterReport = paced && input.eventsAfterReport === true;
  const recordEvent = afterReport ? kubeEventsLocal.recordEvent : eventRecorder(paced);
  const eventInput = (type: 'Normal' | 'Warning', reason: string, message: string): EventInput =>
    ({ name: input.nodeEniName, uid: input.nodeEniUid, eventId: `${workflowId}/${reason}`, type, reason, message });
  const event = (type: 'Normal' | 'Warning', reason: string, message: string) => recordEvent(eventInput(type, reason, message));

  let stop: Stop | undefined;
  setHandler(childForceSignal, (req) => {
    stop ??= { reason: 'ForceFinished', message: `force-finished by an operator: ${req.reason}` };
  }, { description: 'Stop this provisioning now: undo what was done and report it failed, with a reason.' });
  if (input.deadlineMs !== undefined) {
    const deadlineMs = input.deadlineMs;
    void sleep(deadlineMs, { summary: 'provisioning deadline' }).then(() => {
      stop ??= { reason: 'ProvisionDeadlineExceeded', message: `not finished within ${Math.round(deadlineMs / 1000)} s` };
    });
  }

  const showStep = (what: string) => setCurrentDetails(`**Provision** node ${key.nodeName}, subnet ${key.subnetId}: ${what}`);
  const compensations: Compensation[] = [];
  const recorded: Promise<void>[] = [];
  const collected: EventInput[] = [];
  const record = (type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> => {
    if (!paced) return event(type, reason, message);
    if (afterReport) collected.push(eventInput(type, reason, message));
    else recorded.push(event(type, reason, message));
    return Promise.resolve();
  };

  const ensureInput = {
    attachmentKey: input.attachmentKey,
    // One ClientToken per provisioning attempt: stable across this activity's retries, new for the next attempt.
    attemptId: `${workflowId}/${runId}`,
    clusterName: input.clusterName,
    nodeEniName: input.nodeEniName,
    nodeEniUid: input.nodeEniUid,
    nodeName: key.nodeName,
    instanceId: key.instanceId,
    subnetId: key.subnetId,
    securityGroupIds: input.securityGroupIds,
    description: input.description,
  };

  const ec2StepsAsBefore = async (): Promise<Ec2Result> => {
    const eni = await ec2.ensureEni(ensureInput);
    upsertSearchAttributes([{ key: SA_ENI_ID, value: eni.eniId }]);
    // Registered before attach: the create is idempotent, so a lost attach response cannot leak it.
    const undoCreate = eni.created ? deleteCreated(eni.eniId, input.detachTimeoutMs, ec2Compensation.detachEni, ec2Compensation.deleteEni) : undefined;
    if (undoCreate) {
      compensations.unshift(undoCreate.compensation);
      await event('Normal', 'ENICreated', `created ${eni.eniId} in ${key.subnetId} for node ${key.nodeName}`);
    }

    const att = await ec2.attachEni({ eniId: eni.eniId, instanceId: key.instanceId, preferredDeviceIndex: input.preferredDeviceIndex });
    if (att.attachedNow) {
      undoCreate?.detachRegistered();
      compensations.unshift({
        what: `detach ${eni.eniId}`,
        run: async () => {
          await ec2Compensation.detachEni({ eniId: eni.eniId, force: false });
          const { detached } = await ec2Compensation.waitForDetached({ eniId: eni.eniId, timeoutMs: input.detachTimeoutMs });
          if (!detached) {
            await ec2Compensation.detachEni({ eniId: eni.eniId, force: true });
            await ec2Compensation.waitForDetached({ eniId: eni.eniId, timeoutMs: input.detachTimeoutMs });
          }
        },
      });
    }
    await ec2.setDeleteOnTermination({ eniId: eni.eniId, attachmentId: att.attachmentId, deleteOnTermination: input.deleteOnTermination });
    const attached = await ec2Waits.waitForAttachment({ eniId: eni.eniId, attachmentId: att.attachmentId });
    if (att.attachedNow) {
      await event('Normal', 'ENIAttached', `attached ${eni.eniId} to ${key.instanceId} (node ${key.nodeName}) at device index ${att.deviceIndex}`);
    }
    return { eni, att, attached };
  };

  /** The same steps with what the pass saw: a new ENI costs CreateNetworkInterface, AttachNetworkInterface and (if wanted) one ModifyNetworkInterfaceAttribute. */
  const ec2StepsPaced = async (observed: ProvisionObserved): Promise<Ec2Result> => {
    const call = pacedEc2();
    const undo = pacedEc2(true);
    const seen = observed.eni;
    let eni: Ec2Result['eni'];
    if (seen) {
      eni = { eniId: seen.eniId, macAddress: seen.macAddress, created: false };
      if (!sameSet(seen.securityGroupIds ?? [], input.securityGroupIds)) await call.modify.setSecurityGroups.executeWithOptions({ summary: `security groups of ${seen.eniId} → ${input.securityGroupIds.join(', ')}` }, [{ eniId: seen.eniId, securityGroupIds: input.securityGroupIds }]);
    } else {
      eni = await call.create.ensureEni.executeWithOptions({ summary: `create ENI in ${key.subnetId} for ${key.nodeName}` }, [{ ...ensureInput, observed: 'absent' }]);
    }
    upsertSearchAttributes([{ key: SA_ENI_ID, value: eni.eniId }]);
    const undoCreate = eni.created ? deleteCreated(eni.eniId, input.detachTimeoutMs, undo.detach.detachEni, undo.delete.deleteEni) : undefined;
    if (undoCreate) {
      compensations.unshift(undoCreate.compensation);
      await record('Normal', 'ENICreated', `created ${eni.eniId} in ${key.subnetId} for node ${key.nodeName}`);
    }

    const current = seen?.attachment;
    const att = current && current.instanceId === key.instanceId
      ? { attachmentId: current.attachmentId, deviceIndex: current.deviceIndex, attachedNow: false }
      // Attached elsewhere: no plan; the activity describes and says so.
      : await call.attach.attachEni.executeWithOptions({ summary: `attach ${eni.eniId} to ${key.instanceId}` }, [{ eniId: eni.eniId, instanceId: key.instanceId, preferredDeviceIndex: input.preferredDeviceIndex, planned: current ? undefined : observed.attach }]);
    if (att.attachedNow) {
      undoCreate?.detachRegistered();
      compensations.unshift({
        what: `detach ${eni.eniId}`,
        run: async () => {
          await undo.detach.detachEni({ eniId: eni.eniId, force: false, attachmentId: att.attachmentId });
          const { detached } = await ec2Compensation.waitForDetached({ eniId: eni.eniId, timeoutMs: input.detachTimeoutMs });
          if (!detached) {
            await undo.detach.detachEni({ eniId: eni.eniId, force: true });
            await ec2Compensation.waitForDetached({ eniId: eni.eniId, timeoutMs: input.detachTimeoutMs });
          }
        },
      });
    }
    // EC2 attaches with DeleteOnTermination off: one call only when the spec wants it on, or an adopted
    // attachment differs; made while the attachment completes (a refusal while attaching, IncorrectState, is retried).
    const deleteOnTermination = att.attachedNow ? false : current?.deleteOnTermination;
    const settingDot = deleteOnTermination !== input.deleteOnTermination
      ? call.modify.setDeleteOnTermination.executeWithOptions({ summary: `DeleteOnTermination=${input.deleteOnTermination} on ${eni.eniId}` }, [{ eniId: eni.eniId, attachmentId: att.attachmentId, deleteOnTermination: input.deleteOnTermination }])
      : Promise.resolve();
    const [attached] = await Promise.all([
      !att.attachedNow && current?.status === 'attached'
        ? Promise.resolve({ macAddress: eni.macAddress, deviceIndex: current.deviceIndex })
        : ec2Waits.waitForAttachment.executeWithOptions({ summary: `wait until ${eni.eniId} is attached` }, [{ eniId: eni.eniId, attachmentId: att.attachmentId }]),
      settingDot,
    ]);
    if (att.attachedNow) {
      await record('Normal', 'ENIAttached', `attached ${eni.eniId} to ${key.instanceId} (node ${key.nodeName}) at device index ${att.deviceIndex}`);
    }
    return { eni, att, attached };
  };

  /** Paced path: the ENI as this child left it in EC2, for the report. */
  let leftInEc2: ManagedEni | undefined;
  const forward = async (): Promise<ConfiguredAttachment> => {
    showStep('creating or adopting the ENI, attaching it');
    const { eni, att, attached } = input.observed ? await ec2StepsPaced(input.observed) : await ec2StepsAsBefore();
    if (input.observed) {
      leftInEc2 = {
        eniId: eni.eniId, status: 'in-use', subnetId: key.subnetId, macAddress: attached.macAddress,
        attachmentKey: input.attachmentKey, nodeName: key.nodeName, instanceId: key.instanceId, leaked: false,
        securityGroupIds: [...input.securityGroupIds].sort(),
        attachment: { attachmentId: att.attachmentId, instanceId: key.instanceId, deviceIndex: attached.deviceIndex, status: 'attached', deleteOnTermination: input.deleteOnTermination },
      };
    }
    showStep(`${eni.eniId} attached at device index ${attached.deviceIndex}; configuring on the node`);

    // A spec change re-provisions an ENI already in use: keep a binding the spec still wants, give back one it does not.
    const current = input.current?.eniId === eni.eniId ? input.current : undefined;
    const wantedDriver = input.enableDPDK ? input.dpdkDriver : undefined;
    let kept = current?.dpdk;
    if (current && kept && kept.driver !== wantedDriver) {
      const back = await node.unbindDpdk({ macAddress: attached.macAddress, pciAddress: kept.pciAddress, originalDriver: kept.originalDriver, mtu: input.mtu ?? current.mtu });
      await record('Normal', 'DPDKUnbound', `node ${key.nodeName}: ${kept.pciAddress} back on ${back.driver} as ${back.interfaceName} (found by MAC ${attached.macAddress}): the spec no longer wants ${kept.driver}`);
      kept = undefined;
    }
    if (current && kept && !input.repair) {
      // Still bound as wanted: the kernel has no interface to configure; the MTU applies when it is given back.
      return { ...current, attachmentId: att.attachmentId, deviceIndex: attached.deviceIndex, mtu: input.mtu ?? current.mtu, generation: input.generation };
    }

    const iface = await node.configureInterface({ macAddress: attached.macAddress, mtu: input.mtu });
    if (!current) compensations.unshift({ what: `release ${iface.interfaceName} on ${key.nodeName}`, run: () => node.releaseInterface({ macAddress: attached.macAddress }) });
    await record('Normal', 'InterfaceConfigured', `node ${key.nodeName}: ${iface.interfaceName} (${iface.pciAddress ?? 'no PCI address'}) up with MTU ${iface.mtu} for ${eni.eniId}`);
    if (input.dpdkPCIAddress && !input.enableDPDK && iface.pciAddress?.toLowerCase() !== input.dpdkPCIAddress.toLowerCase()) {
      throw ApplicationFailure.nonRetryable(
        `${eni.eniId} is at PCI address ${iface.pciAddress ?? 'unknown'} on node ${key.nodeName}, not at spec.dpdkPCIAddress ${input.dpdkPCIAddress}`,
        'PciAddressMismatch',
      );
    }

    let dpdk: ConfiguredAttachment['dpdk'];
    if (input.enableDPDK) {
      const bound = await node.bindDpdk({ macAddress: attached.macAddress, driver: input.dpdkDriver, expectedPciAddress: input.dpdkPCIAddress });
      dpdk = { driver: bound.driver, originalDriver: bound.originalDriver, pciAddress: bound.pciAddress };
      compensations.unshift({
        what: `unbind ${bound.pciAddress} from ${bound.driver}`,
        run: () => node.unbindDpdk({ macAddress: attached.macAddress, pciAddress: bound.pciAddress, originalDriver: bound.originalDriver, mtu: iface.mtu }),
      });
      await record('Normal', 'DPDKBound', `node ${key.nodeName}: ${bound.pciAddress} (was ${bound.interfaceName} on ${bound.originalDriver}) bound to ${bound.driver}, ${bound.vfioDevice}`);
    }

    return {
      eniId: eni.eniId,
      attachmentId: att.attachmentId,
      deviceIndex: attached.deviceIndex,
      macAddress: attached.macAddress,
      interfaceName: iface.interfaceName,
      pciAddress: iface.pciAddress,
      mtu: iface.mtu,
      generation: input.generation,
      dpdk,
    };
  };

  try {
    const done = await untilStopped(forward, () => stop);
    // The entity hears first (its pass writes Ready); the Events are still recorded before this ends.
    const reportFirst = afterReport || (paced && patched(REPORT_FIRST_PATCH));
    if (!reportFirst) await Promise.all(recorded);
    showStep(`done: ${done.eniId} is ${done.interfaceName}${done.dpdk ? ` bound to ${done.dpdk.driver}` : ''}, MTU ${done.mtu}`);
    await reportToEntity(input.reportTo, { workflowId, op: 'provision', ok: true, result: done, ...(leftInEc2 ? { eni: leftInEc2 } : {}) });
    if (reportFirst) await settleEvents(recorded);
    await recordCollected(collected);
    metrics().provisionEnded('ok', undefined, secondsSinceStart());
    return done;
  } catch (err) {
    const reason = failureReason(err);
    const message = failureMessage(err);
    // A node without an agent keeps its attached ENI: that is an availability problem, retried later.
    const undo = isNodeAgentUnavailable(err) ? [] : compensations;
    showStep(`failed (${reason}): ${message}${undo.length ? `; undoing: ${undo.map((c) => c.what).join(', ')}` : ''}`);
    await CancellationScope.nonCancellable(async () => {
      await Promise.allSettled(recorded);
      await recordCollected(collected);
      const outcome = await runUndo(undo);
      await event('Warning', 'ProvisioningFailed', `node ${key.nodeName}, subnet ${key.subnetId}: ${reason}: ${message}${outcome}`);
      await reportToEntity(input.reportTo, { workflowId, op: 'provision', ok: false, reason, message });
    });
    metrics().provisionEnded(failedOutcome(reason), reason, secondsSinceStart());
    throw ApplicationFailure.create({ type: reason, message, nonRetryable: true });
  }
}

/**
 * Runs the undo steps in order, and says what they did for the ProvisioningFailed Event. What a
 * failed step leaves is tagged with its attachment key: the entity adopts it or tears it down.
 */
async function runUndo(undo: Compensation[]): Promise<string> {
  const undone: string[] = [];
  for (const [i, c] of undo.entries()) {
    try {
      await c.run();
      undone.push(c.what);
    } catch (compErr) {
      const error = failureMessage(compErr);
      log.error('compensation failed', { what: c.what, error });
      if (patched(UNDO_STOPS_AT_FAILURE_PATCH)) {
        const left = undo.slice(i + 1).map((l) => l.what);
        return `${undone.length ? `; undone: ${undone.join(', ')}` : ''}; could not ${c.what}: ${error}${left.length ? `; not tried: ${left.join(', ')}` : ''}; what is left is for the next pass`;
      }
      // Runs from before the patch went on, and named every step undone.
      undone.push(c.what);
    }
  }
  return undone.length ? `; undone: ${undone.join(', ')}` : '';
}

/** Runs the forward steps until they finish or a stop is requested; a stop cancels the running step and fails with its reason. */
async function untilStopped<T>(work: () => Promise<T>, stopped: () => Stop | undefined): Promise<T> {
  const scope = new CancellationScope();
  const running = scope.run(work);
  const interrupted = condition(() => stopped() !== undefined);
  const first = await Promise.race([running.then((v) => ({ v })), interrupted.then(() => undefined)]);
  if (first) return first.v;
  scope.cancel();
  await running.catch((err) => {
    if (!isCancellation(err)) throw err;
  });
  const stop = stopped()!;
  throw ApplicationFailure.create({ type: stop.reason, message: stop.message, nonRetryable: true });
}

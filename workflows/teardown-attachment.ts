// Tears down one ENI: release it on the node, detach without Force (Force only
// after a bound), wait until detached, delete. "Already gone" is done. An
// operator may force-finish a stuck teardown: the running step is cancelled,
// the ENI is tagged as left behind, and the workflow reports what it left.
import { ApplicationFailure, CancellationScope, condition, isCancellation, patched, setCurrentDetails, setHandler, upsertMemo, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { SA_ENI_ID } from '../common/search-attributes.js';
import { childForceSignal, leakTagFoundGone, type ForceFinishRequest, type TeardownInput, type TeardownResult } from '../common/workflow-api.js';
import { failureMessage, failureReason, isNodeAgentUnavailable } from './failures.js';
import { metrics, secondsSinceStart } from './metrics.js';
import type { EventInput } from '../activities/kube/kube-activities.js';
import { eventRecorder, recordCollected, REPORT_FIRST_PATCH, settleEvents } from './provision-attachment.js';
import { reportToEntity } from './report-to-entity.js';
import { ec2, ec2Waits, onNode, pacedEc2 } from './proxies.js';

const FORCED: unique symbol = Symbol('forced');

export async function teardownAttachment(input: TeardownInput): Promise<TeardownResult> {
  const { workflowId } = workflowInfo();
  // Events of the paced path, recorded off the critical path.
  const recorded: Promise<void>[] = [];
  // Inputs with eventsAfterReport: the Events, recorded together once the entity heard.
  const collected: EventInput[] = [];
  const afterReport = input.observed !== undefined && input.eventsAfterReport === true;
  try {
    const result = await tearDown(input, recorded, afterReport ? collected : undefined);
    // The entity hears first (its pass removes the finalizer); the Events are still recorded before this ends.
    const reportFirst = afterReport || (input.observed !== undefined && patched(REPORT_FIRST_PATCH));
    if (!reportFirst && result.outcome === 'deleted') await Promise.all(recorded);
    await reportToEntity(input.reportTo, { workflowId, op: 'teardown', ok: true, result });
    if (reportFirst) await settleEvents(recorded);
    await recordCollected(collected);
    const forced = result.outcome === 'forced';
    metrics().teardownEnded(forced ? 'forced' : 'ok', forced ? 'ForceFinished' : undefined, secondsSinceStart());
    return result;
  } catch (err) {
    if (isCancellation(err)) throw err;
    const reason = failureReason(err, 'TeardownFailed');
    const message = failureMessage(err);
    await CancellationScope.nonCancellable(async () => {
      await reportToEntity(input.reportTo, { workflowId, op: 'teardown', ok: false, reason, message });
      await recordCollected(collected);
    });
    metrics().teardownEnded('failed', reason, secondsSinceStart());
    throw ApplicationFailure.create({ type: reason, message, nonRetryable: true });
  }
}

/** `collected`: where Events go when they are recorded after the report (eventsAfterReport); absent, as each step finishes. */
async function tearDown(input: TeardownInput, recorded: Promise<void>[], collected?: EventInput[]): Promise<TeardownResult> {
  let forced: ForceFinishRequest | undefined;
  setHandler(childForceSignal, (req) => {
    forced ??= req;
  }, { description: 'Stop this teardown now and leave the ENI behind (tagged), with a reason.' });
  upsertSearchAttributes([{ key: SA_ENI_ID, value: input.eniId }]);
  const { eniId, observed } = input;
  // Inputs that carry what the pass saw take the paced path: EC2 calls on their API's task queue, no
  // describe before the detach, Events recorded off the critical path. Older inputs replay as before.
  const paced = observed ? pacedEc2() : undefined;
  // Events collected for after the report ask no patch: which path is in the input, written by the entity.
  const recordEvent = collected ? undefined : eventRecorder(paced !== undefined);
  const record = (type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> => {
    const e: EventInput = { name: input.nodeEniName, uid: input.nodeEniUid, eventId: `${workflowInfo().workflowId}/${reason}`, type, reason, message };
    if (!recordEvent) {
      collected!.push(e);
      return Promise.resolve();
    }
    const p = recordEvent(e);
    if (!paced) return p;
    recorded.push(p);
    return Promise.resolve();
  };
  const event = record;

  /** Runs one step unless/until an operator forces the teardown to finish. */
  async function step<T>(fn: () => Promise<T>): Promise<T | typeof FORCED> {
    if (forced) return FORCED;
    const scope = new CancellationScope();
    const work = scope.run(fn);
    const interrupted = condition(() => forced !== undefined).then((): typeof FORCED => FORCED);
    const result: T | typeof FORCED = await Promise.race([work, interrupted]);
    if (result === FORCED) {
      scope.cancel();
      await work.catch((err) => { if (!isCancellation(err)) throw err; });
    }
    return result;
  }

  const finishForced = async (nodeStep: string): Promise<TeardownResult> => {
    const reason = forced!.reason;
    // The step the force cancelled may have deleted the ENI already: then EC2 has nothing to tag and nothing is left.
    let gone = false;
    await CancellationScope.nonCancellable(async () => {
      gone = leakTagFoundGone(await (paced?.modify ?? ec2).tagLeaked({ eniId, reason }).catch(() => undefined));
      if (gone) await event('Normal', 'ForceFinished', `teardown of ${eniId} force-finished: ${reason}; the ENI was already deleted, nothing is left behind`);
      else await event('Warning', 'ForceFinished', `teardown of ${eniId} force-finished: ${reason}; the ENI is left in EC2, tagged for the leaked-ENI sweeper`);
      await Promise.allSettled(recorded);
      if (collected) await recordCollected(collected);
    });
    if (paced) {
      // A forced teardown completes like a clean one: its memo and details say it was not.
      upsertMemo({ outcome: 'forced', reason, leftBehind: gone ? null : eniId });
      setCurrentDetails(gone
        ? `**Force-finished**: ${eniId} was already deleted: ${reason}`
        : `**Force-finished**: ${eniId} left in EC2 (tagged ${'`'}leaked${'`'} for the sweeper): ${reason}`);
    }
    return gone ? { eniId, outcome: 'forced', reason, nodeStep, gone } : { eniId, outcome: 'forced', reason, nodeStep };
  };

  const showStep = (what: string) => setCurrentDetails(`**Teardown of ${eniId}** (node ${input.nodeName ?? 'unknown'}): ${what}`);
  showStep(input.nodeName ? 'releasing the interface on the node' : 'detaching');
  let nodeStep = 'no node recorded';
  if (input.nodeName) {
    const node = onNode(input.nodeName, input.nodeAgentStartTimeoutMs);
    try {
      if (input.dpdk) {
        const { dpdk } = input;
        const back = await step(() => node.unbindDpdk({ macAddress: input.macAddress, pciAddress: dpdk.pciAddress, originalDriver: dpdk.originalDriver, mtu: dpdk.mtu }));
        if (back === FORCED) return finishForced('interrupted');
        await event('Normal', 'DPDKUnbound', back.gone
          ? `node ${input.nodeName}: ${dpdk.pciAddress} is no longer on the host; nothing to give back`
          : `node ${input.nodeName}: ${dpdk.pciAddress} back on ${back.driver} as ${back.interfaceName} (found by MAC ${input.macAddress})`);
      }
      const released = await step(() => node.releaseInterface({ macAddress: input.macAddress }));
      if (released === FORCED) return finishForced('interrupted');
      nodeStep = released.interfaceName ? `released ${released.interfaceName}` : 'interface already gone';
    } catch (err) {
      if (!isNodeAgentUnavailable(err)) throw err;
      nodeStep = `skipped: the agent of node ${input.nodeName} did not pick up the release within ${input.nodeAgentStartTimeoutMs} ms, the node is gone`;
      await event('Warning', 'NodeStepSkipped', `${eniId}: ${nodeStep}`);
    }
  }

  showStep(`${nodeStep}; detaching`);
  // Whether this run detached the ENI (false: it was already detached, e.g. by an earlier, failed teardown).
  let detachedNow = true;
  const detached = await step(async () => {
    const attachment = observed?.attachment;
    const first = !paced
      ? await ec2.detachEni({ eniId, force: false })
      : attachment === null
        ? { detached: 'already' as const }
        : attachment?.status === 'detaching'
          ? { detached: 'requested' as const }
          : await paced.detach.detachEni.executeWithOptions({ summary: `detach ${eniId}` }, [{ eniId, force: false, attachmentId: attachment?.attachmentId }]);
    if (first.detached === 'already') {
      detachedNow = false;
      return true;
    }
    if ((await ec2Waits.waitForDetached({ eniId, timeoutMs: input.detachTimeoutMs })).detached) return true;
    // AWS reserves Force for failed instances; only after the polite bound passed.
    await event('Warning', 'ForceDetach', `${eniId} still attached after ${input.detachTimeoutMs} ms; detaching with Force`);
    await (paced?.detach ?? ec2).detachEni({ eniId, force: true });
    return (await ec2Waits.waitForDetached({ eniId, timeoutMs: input.detachTimeoutMs })).detached;
  });
  if (detached === FORCED) return finishForced(nodeStep);
  if (!detached) throw ApplicationFailure.nonRetryable(`ENI ${eniId} did not detach, even with Force`, 'DetachTimeout');
  // Recorded once: a retried teardown of an ENI already detached says nothing again (inputs from before the paced path replay as they were).
  if (!paced || detachedNow) await event('Normal', 'ENIDetached', `${eniId} detached`);

  showStep(`${nodeStep}; detached; deleting`);
  const deleted = await step(() => (paced ? paced.delete.deleteEni.executeWithOptions({ summary: `delete ${eniId}` }, [{ eniId }]) : ec2.deleteEni({ eniId })));
  if (deleted === FORCED) return finishForced(nodeStep);
  await event('Normal', 'ENIDeleted', `${eniId} deleted${deleted.deleted === 'already' ? ' (it was already gone)' : ''}`);
  showStep(`deleted (${nodeStep})`);
  return { eniId, outcome: 'deleted', nodeStep };
}


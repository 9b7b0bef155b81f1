// Provisions one ENI for one (node, subnet): create or adopt, attach, set
// DeleteOnTermination, wait until attached, configure on the node. A saga:
// completed steps are undone in reverse, in a scope cancellation cannot
// interrupt, when a later step fails for good.
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  log,
  TimeoutFailure,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { TimeoutType } from '@temporalio/common';
import type { AttachmentKey } from '../common/names.js';
import { SA_ENI_ID } from '../common/search-attributes.js';
import type { ConfiguredAttachment } from './entity-state.js';
import { ec2, ec2Waits, kube, onNode } from './proxies.js';

export interface ProvisionInput {
  nodeEniName: string;
  nodeEniUid: string;
  clusterName: string;
  key: AttachmentKey;
  attachmentKey: string;
  securityGroupIds: string[];
  description?: string;
  preferredDeviceIndex: number;
  deleteOnTermination: boolean;
  mtu?: number;
  enableDPDK: boolean;
  dpdkDriver: string;
  /** When set, the device found by MAC must sit at this PCI address. */
  dpdkPCIAddress?: string;
  generation: number;
  nodeAgentStartTimeoutMs: number;
  detachTimeoutMs: number;
}

interface Compensation {
  what: string;
  run: () => Promise<unknown>;
}

/** The node agent never picked up the task: the node is down or gone, not the spec at fault. */
export function isNodeAgentUnavailable(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof TimeoutFailure && err.cause.timeoutType === TimeoutType.SCHEDULE_TO_START;
}

export async function provisionAttachment(input: ProvisionInput): Promise<ConfiguredAttachment> {
  const { key } = input;
  const node = onNode(key.nodeName, input.nodeAgentStartTimeoutMs);
  const event = (type: 'Normal' | 'Warning', reason: string, message: string) =>
    kube.recordEvent({ name: input.nodeEniName, uid: input.nodeEniUid, eventId: `${workflowInfo().workflowId}/${reason}`, type, reason, message });

  const compensations: Compensation[] = [];
  try {
    const eni = await ec2.ensureEni({
      attachmentKey: input.attachmentKey,
      clusterName: input.clusterName,
      nodeEniName: input.nodeEniName,
      nodeEniUid: input.nodeEniUid,
      nodeName: key.nodeName,
      instanceId: key.instanceId,
      subnetId: key.subnetId,
      securityGroupIds: input.securityGroupIds,
      description: input.description,
    });
    upsertSearchAttributes([{ key: SA_ENI_ID, value: eni.eniId }]);
    if (eni.created) {
      // Registered before attach: the create is idempotent, so a lost attach response cannot leak it.
      compensations.unshift({ what: `delete ${eni.eniId}`, run: () => ec2.deleteEni({ eniId: eni.eniId }) });
      await event('Normal', 'ENICreated', `created ${eni.eniId} in ${key.subnetId} for node ${key.nodeName}`);
    }

    const att = await ec2.attachEni({ eniId: eni.eniId, instanceId: key.instanceId, preferredDeviceIndex: input.preferredDeviceIndex });
    if (att.attachedNow) {
      compensations.unshift({
        what: `detach ${eni.eniId}`,
        run: async () => {
          await ec2.detachEni({ eniId: eni.eniId, force: false });
          const { detached } = await ec2Waits.waitForDetached({ eniId: eni.eniId, timeoutMs: input.detachTimeoutMs });
          if (!detached) {
            await ec2.detachEni({ eniId: eni.eniId, force: true });
            await ec2Waits.waitForDetached({ eniId: eni.eniId, timeoutMs: input.detachTimeoutMs });
          }
        },
      });
    }
    await ec2.setDeleteOnTermination({ eniId: eni.eniId, attachmentId: att.attachmentId, deleteOnTermination: input.deleteOnTermination });
    const attached = await ec2Waits.waitForAttachment({ eniId: eni.eniId, attachmentId: att.attachmentId });
    if (att.attachedNow) {
      await event('Normal', 'ENIAttached', `attached ${eni.eniId} to ${key.instanceId} (node ${key.nodeName}) at device index ${att.deviceIndex}`);
    }

    const iface = await node.configureInterface({ macAddress: attached.macAddress, mtu: input.mtu });
    compensations.unshift({ what: `release ${iface.interfaceName} on ${key.nodeName}`, run: () => node.releaseInterface({ macAddress: attached.macAddress }) });
    await event('Normal', 'InterfaceConfigured', `node ${key.nodeName}: ${iface.interfaceName} (${iface.pciAddress ?? 'no PCI address'}) up with MTU ${iface.mtu} for ${eni.eniId}`);
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
      await event('Normal', 'DPDKBound', `node ${key.nodeName}: ${bound.pciAddress} (was ${bound.interfaceName} on ${bound.originalDriver}) bound to ${bound.driver}, ${bound.vfioDevice}`);
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
  } catch (err) {
    const reason = failureReason(err);
    const message = failureMessage(err);
    // A node without an agent keeps its attached ENI: that is an availability problem, retried later.
    const undo = isNodeAgentUnavailable(err) ? [] : compensations;
    await CancellationScope.nonCancellable(async () => {
      for (const c of undo) {
        try {
          await c.run();
        } catch (compErr) {
          log.error('compensation failed', { what: c.what, error: String(compErr) });
        }
      }
      await event('Warning', 'ProvisioningFailed', `node ${key.nodeName}, subnet ${key.subnetId}: ${reason}: ${message}${undo.length ? `; undone: ${undo.map((c) => c.what).join(', ')}` : ''}`);
    });
    throw ApplicationFailure.create({ type: reason, message, nonRetryable: true });
  }
}

export function failureReason(err: unknown): string {
  if (isNodeAgentUnavailable(err)) return 'NodeAgentUnavailable';
  let e: unknown = err;
  while (e instanceof Error) {
    if (e instanceof ApplicationFailure && e.type) return e.type;
    if (e instanceof TimeoutFailure) return 'Timeout';
    e = (e as Error & { cause?: unknown }).cause;
  }
  return 'ProvisioningFailed';
}

export function failureMessage(err: unknown): string {
  let e: unknown = err;
  let last = String(err);
  while (e instanceof Error) {
    last = e.message;
    if (e instanceof ApplicationFailure) return e.message;
    e = (e as Error & { cause?: unknown }).cause;
  }
  return last;
}

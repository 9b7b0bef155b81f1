// Node activities for a DPDK ENI: give its PCI function to a DPDK driver
// (vfio-pci by default) after the attach, and back to the kernel driver
// before the detach or as a compensation. host/dpdk.ts does the sysfs work;
// this file turns its outcomes into typed Temporal failures.
import { ApplicationFailure } from '@temporalio/common';
import { HostUsageError, isErrno, type Host } from '../../host/host.js';
import { bindToDpdk, DpdkError, unbindFromDpdk, type DpdkBinding, type DpdkErrorKind, type DpdkTimings, type DpdkUnbound } from '../../host/dpdk.js';

export type { DpdkBinding } from '../../host/dpdk.js';

export interface BindDpdkInput {
  macAddress: string;
  driver: string;
  /** spec.dpdkPCIAddress: the device found by MAC must sit there. */
  expectedPciAddress?: string;
  /** The node's primary ENI, never bound. */
  primaryMac?: string;
}

export interface UnbindDpdkInput {
  macAddress: string;
  pciAddress: string;
  originalDriver: string;
  mtu?: number;
}

export type UnbindDpdkResult = DpdkUnbound;

/** Failure types the workflows may switch on. */
export const DPDK_FAILURES = {
  driverMissing: 'DpdkDriverMissing',
  noIommuDisabled: 'NoIommuDisabled',
  interfaceInUse: 'InterfaceInUse',
  pciAddressMismatch: 'PciAddressMismatch',
  bindFailed: 'DpdkBindFailed',
  rollbackFailed: 'DpdkRollbackFailed',
  unbindFailed: 'DpdkUnbindFailed',
  deviceInUse: 'DeviceInUse',
  notFound: 'InterfaceNotFound',
  invalidInput: 'InvalidInput',
  permissionDenied: 'HostPermissionDenied',
} as const;

const FAILURE_OF: Record<DpdkErrorKind, { type: string; retryable: boolean }> = {
  InvalidInput: { type: DPDK_FAILURES.invalidInput, retryable: false },
  DriverMissing: { type: DPDK_FAILURES.driverMissing, retryable: false },
  NoIommuDisabled: { type: DPDK_FAILURES.noIommuDisabled, retryable: false },
  InterfaceInUse: { type: DPDK_FAILURES.interfaceInUse, retryable: false },
  PciAddressMismatch: { type: DPDK_FAILURES.pciAddressMismatch, retryable: false },
  // Rolled back and verified: the host is as before, the same inputs would fail the same way.
  BindFailed: { type: DPDK_FAILURES.bindFailed, retryable: false },
  // The device may be left on no driver: an operator has to look.
  RollbackFailed: { type: DPDK_FAILURES.rollbackFailed, retryable: false },
  UnbindFailed: { type: DPDK_FAILURES.unbindFailed, retryable: true },
  // Its users may let go (the device plugin restarts, the pod ends).
  DeviceInUse: { type: DPDK_FAILURES.deviceInUse, retryable: true },
  // Attach or rebind still in progress.
  NotFound: { type: DPDK_FAILURES.notFound, retryable: true },
};

export interface DpdkActivityDeps extends DpdkTimings {
  host: Host;
  nodeName: string;
  /** Switch on vfio's no-IOMMU mode when the host has no IOMMU (most EC2 instance types). */
  enableNoIommu: boolean;
}

export function createDpdkActivities(deps: DpdkActivityDeps) {
  const { host, nodeName, enableNoIommu } = deps;
  const timings: DpdkTimings = {
    ...(deps.writeTimeoutMs === undefined ? {} : { writeTimeoutMs: deps.writeTimeoutMs }),
    ...(deps.netdevTimeoutMs === undefined ? {} : { netdevTimeoutMs: deps.netdevTimeoutMs }),
    ...(deps.pollMs === undefined ? {} : { pollMs: deps.pollMs }),
  };

  function toFailure(err: unknown): unknown {
    if (err instanceof DpdkError) {
      const { type, retryable } = FAILURE_OF[err.kind];
      // host/dpdk.ts may decide per case (an unbind refused for a foreign driver will not change on retry).
      const explicit = err.details.retryable;
      const message = `${err.message} (node ${nodeName})`;
      const details = { nodeName, ...err.details };
      return (typeof explicit === 'boolean' ? explicit : retryable) ? ApplicationFailure.retryable(message, type, details) : ApplicationFailure.nonRetryable(message, type, details);
    }
    if (err instanceof HostUsageError) return ApplicationFailure.nonRetryable(`${err.message} (node ${nodeName})`, DPDK_FAILURES.invalidInput, { nodeName });
    if (isErrno(err, 'EPERM', 'EACCES')) {
      return ApplicationFailure.nonRetryable(`the node agent may not change PCI bindings on node ${nodeName}: ${(err as Error).message}`, DPDK_FAILURES.permissionDenied, { nodeName });
    }
    return err;
  }

  return {
    async bindDpdk(input: BindDpdkInput): Promise<DpdkBinding> {
      try {
        const { macAddress, driver, expectedPciAddress, primaryMac } = input;
        return await bindToDpdk(host, {
          macAddress,
          driver,
          ...(expectedPciAddress === undefined ? {} : { expectedPciAddress }),
          ...(primaryMac === undefined ? {} : { primaryMac }),
          enableNoIommu,
          ...timings,
        });
      } catch (err) {
        throw toFailure(err);
      }
    },

    async unbindDpdk(input: UnbindDpdkInput): Promise<UnbindDpdkResult> {
      try {
        const { macAddress, pciAddress, originalDriver, mtu } = input;
        return await unbindFromDpdk(host, { macAddress, pciAddress, originalDriver, ...(mtu === undefined ? {} : { mtu }), ...timings });
      } catch (err) {
        throw toFailure(err);
      }
    },
  };
}

export type DpdkActivities = ReturnType<typeof createDpdkActivities>;

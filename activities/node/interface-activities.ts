// Node activities for a plain (non-DPDK) ENI: bring it up with the wanted MTU
// once the attached device has appeared, and take it down before a detach.
// The interface is found by MAC; its name is only reported.
import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure } from '@temporalio/common';
import { isErrno, type Host } from '../../host/host.js';
import { AmbiguousMacError, findInterfaceByMac, isDefaultRoute, normalizeMac, readInterface, readRoutes, setDown, setMtu, setUp, type InterfaceInfo } from '../../host/net.js';

export interface ConfigureInterfaceInput {
  macAddress: string;
  mtu?: number;
}

export interface ConfigureInterfaceResult {
  interfaceName: string;
  pciAddress?: string;
  mtu: number;
  up: true;
}

export interface ReleaseInterfaceInput {
  macAddress: string;
}

export interface ReleaseInterfaceResult {
  interfaceName?: string;
  released: boolean;
}

/** Failure types the workflows may name in nonRetryableErrorTypes or switch on. */
export const INTERFACE_FAILURES = {
  notFound: 'InterfaceNotFound',
  invalidMtu: 'InvalidMtu',
  invalidMac: 'InvalidMacAddress',
  ambiguous: 'AmbiguousInterface',
  notConfigured: 'InterfaceNotConfigured',
  permissionDenied: 'HostPermissionDenied',
  carriesDefaultRoute: 'InterfaceCarriesDefaultRoute',
} as const;

/**
 * How long configureInterface looks for a device that is not there yet before it fails (retryable),
 * and how often. An attached ENI shows up on the PCI bus and as a netdev a moment after EC2 says
 * attached; looking again every 100 ms costs a directory read, while failing and waiting for
 * Temporal's growing retry interval found it seconds late (at 1,000 nodes, up to 17 s per attachment).
 */
export const DEVICE_APPEAR_WAIT = { withinMs: 5000, everyMs: 100 };

export function createInterfaceActivities({ host, nodeName }: { host: Host; nodeName: string }) {
  const appear = DEVICE_APPEAR_WAIT;
  const where = `on node ${nodeName}`;

  /** The ENI's netdev; only device-backed interfaces count (a bridge or VLAN may share the MAC). */
  async function find(mac: string): Promise<InterfaceInfo | undefined> {
    try {
      return await findInterfaceByMac(host, mac, { physicalOnly: true });
    } catch (err) {
      if (err instanceof AmbiguousMacError) {
        throw ApplicationFailure.nonRetryable(err.message, INTERFACE_FAILURES.ambiguous, { nodeName, interfaceNames: err.interfaceNames });
      }
      throw hostFailure(err, mac);
    }
  }

  /**
   * The device by MAC, looked for again every `appear.everyMs` until `appear.withinMs` have passed. A plain
   * timer: the node's activities have no heartbeat (a cancellation would not reach them), and the look is short.
   */
  async function findWhenItAppears(mac: string): Promise<InterfaceInfo | undefined> {
    const deadline = Date.now() + appear.withinMs;
    for (;;) {
      const iface = await find(mac);
      const left = deadline - Date.now();
      if (iface || left <= 0) return iface;
      await sleep(Math.min(appear.everyMs, left));
    }
  }

  /** Kernel answers the caller cannot fix by retrying become non-retryable; a vanished device is retried. */
  function hostFailure(err: unknown, mac: string): unknown {
    if (isErrno(err, 'ENOENT', 'ENODEV')) {
      return ApplicationFailure.retryable(`interface with MAC ${mac} disappeared ${where}: ${(err as Error).message}`, INTERFACE_FAILURES.notFound, { nodeName, macAddress: mac });
    }
    if (isErrno(err, 'EPERM', 'EACCES')) {
      return ApplicationFailure.nonRetryable(`the node agent may not change interfaces ${where}: ${(err as Error).message}`, INTERFACE_FAILURES.permissionDenied, { nodeName });
    }
    return err;
  }

  function parseMac(raw: string): string {
    try {
      return normalizeMac(raw);
    } catch (err) {
      throw ApplicationFailure.nonRetryable((err as Error).message, INTERFACE_FAILURES.invalidMac);
    }
  }

  return {
    async configureInterface(input: ConfigureInterfaceInput): Promise<ConfigureInterfaceResult> {
      const mac = parseMac(input.macAddress);
      const { mtu } = input;
      if (mtu !== undefined && !Number.isSafeInteger(mtu)) {
        throw ApplicationFailure.nonRetryable(`MTU must be an integer, got ${mtu}`, INTERFACE_FAILURES.invalidMtu, { mtu });
      }
      const iface = await findWhenItAppears(mac);
      if (!iface) {
        // Still not there: Temporal retries, and the entity reports a provisioning that keeps retrying.
        throw ApplicationFailure.retryable(`no interface with MAC ${mac} ${where} after ${appear.withinMs / 1000} s`, INTERFACE_FAILURES.notFound, { nodeName, macAddress: mac });
      }
      const name = iface.name;
      // MTU first: changing it on a running ENA resets the device's queues.
      if (mtu !== undefined && iface.mtu !== mtu) {
        try {
          await setMtu(host, name, mtu);
        } catch (err) {
          if (isErrno(err, 'EINVAL')) {
            throw ApplicationFailure.nonRetryable(`${name} ${where} rejects MTU ${mtu}: ${(err as Error).message}`, INTERFACE_FAILURES.invalidMtu, { nodeName, interfaceName: name, mtu });
          }
          throw hostFailure(err, mac);
        }
      }
      if (!iface.up) await setUp(host, name).catch((err: unknown) => Promise.reject(hostFailure(err, mac)));

      const after = await readInterface(host, name).catch((err: unknown) => Promise.reject(hostFailure(err, mac)));
      const problems = [
        ...(after.macAddress !== mac ? [`${name} now has MAC ${after.macAddress}`] : []),
        ...(mtu !== undefined && after.mtu !== mtu ? [`mtu reads ${after.mtu}, wanted ${mtu}`] : []),
        ...(!after.up ? [`flags ${after.flags.toString(16)} lack IFF_UP`] : []),
      ];
      if (problems.length > 0) {
        throw ApplicationFailure.retryable(`${name} ${where} did not take the configuration: ${problems.join('; ')}`, INTERFACE_FAILURES.notConfigured, { nodeName, interfaceName: name });
      }
      const result: ConfigureInterfaceResult = { interfaceName: name, mtu: after.mtu, up: true };
      if (after.pciAddress !== undefined) result.pciAddress = after.pciAddress;
      return result;
    },

    async releaseInterface(input: ReleaseInterfaceInput): Promise<ReleaseInterfaceResult> {
      const mac = parseMac(input.macAddress);
      const iface = await find(mac);
      // Already gone (detached, or bound to a userspace driver): nothing uses it.
      if (!iface) return { released: true };
      const name = iface.name;
      if (iface.up) {
        const routes = await readRoutes(host);
        if (routes.some((r) => r.interfaceName === name && isDefaultRoute(r))) {
          // Taking it down would cut the node off; this is never an ENI we manage.
          throw ApplicationFailure.nonRetryable(`${name} ${where} carries the default route; refusing to take it down`, INTERFACE_FAILURES.carriesDefaultRoute, { nodeName, interfaceName: name });
        }
        try {
          await setDown(host, name);
        } catch (err) {
          if (isErrno(err, 'ENOENT', 'ENODEV')) return { interfaceName: name, released: true };
          throw hostFailure(err, mac);
        }
      }
      let after: InterfaceInfo;
      try {
        after = await readInterface(host, name);
      } catch (err) {
        if (isErrno(err, 'ENOENT', 'ENODEV')) return { interfaceName: name, released: true };
        throw hostFailure(err, mac);
      }
      if (after.macAddress === mac && after.up) {
        throw ApplicationFailure.retryable(`${name} ${where} is still up`, INTERFACE_FAILURES.notConfigured, { nodeName, interfaceName: name });
      }
      return { interfaceName: name, released: true };
    },
  };
}

export type InterfaceActivities = ReturnType<typeof createInterfaceActivities>;

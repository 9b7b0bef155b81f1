// verifyInterfaces: does the node still show each attachment as it was
// configured? Read-only and cheap (one scan of /sys/class/net, a few sysfs
// reads per DPDK device, the bind record directory only when a plain
// attachment has no netdev), so the entity can call it on every resync.
//
// A reboot is the drift it exists for: MTUs are back at the driver's default,
// links are down, DPDK bindings are undone (the devices come back on their
// kernel driver as netdevs) and the bind records under /run are gone, while
// the EC2 attachments stay. The existing idempotent steps repair it:
// configureInterface({ macAddress, mtu }) for `mtu` and `down`, bindDpdk
// ({ macAddress, driver, expectedPciAddress }) for a DPDK device's `driver`.
import { ApplicationFailure } from '@temporalio/common';
import type { ExpectedInterface, InterfaceCheck, InterfaceDrift, VerifyInterfacesInput, VerifyInterfacesResult } from '../../common/workflow-api.js';
import { isErrno, type Host } from '../../host/host.js';
import { DpdkError, findBoundRecordByMac, inspectPciDevice, readRecord, validateDpdkDriver, validatePciAddress, type PciDeviceState } from '../../host/dpdk.js';
import { AmbiguousMacError, findInterfacesByMacs, normalizeMac, pickInterface, type InterfaceInfo } from '../../host/net.js';
import { INTERFACE_FAILURES } from './interface-activities.js';
import { DPDK_FAILURES } from './dpdk-activities.js';

export type { ExpectedInterface, InterfaceCheck, InterfaceDrift, VerifyInterfacesInput, VerifyInterfacesResult } from '../../common/workflow-api.js';

/** More than any instance type can attach (and bounds the work of one call). */
export const MAX_EXPECTED_INTERFACES = 1024;

interface Expected {
  mac: string;
  mtu: number;
  dpdk?: { driver: string; pciAddress: string };
}

export function createVerifyActivities({ host, nodeName }: { host: Host; nodeName: string }) {
  const where = `on node ${nodeName}`;

  function invalid(message: string, type: string, details: Record<string, unknown> = {}): ApplicationFailure {
    return ApplicationFailure.nonRetryable(`${message} (verifyInterfaces ${where})`, type, { nodeName, ...details });
  }

  /** Every entry is validated before anything on the host is read. */
  function parse(input: VerifyInterfacesInput): Expected[] {
    const list: unknown = (input as Partial<VerifyInterfacesInput> | undefined)?.expected;
    if (!Array.isArray(list)) throw invalid('expected must be an array', DPDK_FAILURES.invalidInput);
    if (list.length > MAX_EXPECTED_INTERFACES) throw invalid(`at most ${MAX_EXPECTED_INTERFACES} expected interfaces, got ${list.length}`, DPDK_FAILURES.invalidInput);
    return list.map((raw: Partial<ExpectedInterface> | undefined, index) => {
      const e = raw ?? {};
      let mac: string;
      try {
        if (typeof e.macAddress !== 'string') throw new Error(`not a MAC address: ${JSON.stringify(e.macAddress)}`);
        mac = normalizeMac(e.macAddress);
      } catch (err) {
        throw invalid(`expected[${index}]: ${(err as Error).message}`, INTERFACE_FAILURES.invalidMac, { index });
      }
      if (!Number.isSafeInteger(e.mtu) || e.mtu! <= 0) throw invalid(`expected[${index}]: MTU must be a positive integer, got ${JSON.stringify(e.mtu)}`, INTERFACE_FAILURES.invalidMtu, { index });
      if (e.dpdk === undefined) return { mac, mtu: e.mtu! };
      try {
        const driver = validateDpdkDriver(e.dpdk?.driver as string);
        return { mac, mtu: e.mtu!, dpdk: { driver, pciAddress: validatePciAddress(e.dpdk?.pciAddress as string) } };
      } catch (err) {
        throw invalid(`expected[${index}]: ${(err as Error).message}`, DPDK_FAILURES.invalidInput, { index });
      }
    });
  }

  /** The PCI function's state; undefined when it is not on the bus. */
  async function pciDevice(bdf: string): Promise<PciDeviceState | undefined> {
    try {
      return await inspectPciDevice(host, bdf);
    } catch (err) {
      if (err instanceof DpdkError && err.kind === 'NotFound') return undefined;
      throw err;
    }
  }

  function check(mac: string, drift: InterfaceDrift[], actual: InterfaceCheck['actual']): InterfaceCheck {
    return { macAddress: mac, ok: drift.length === 0, drift, actual };
  }

  function netdevView(iface: InterfaceInfo): InterfaceCheck['actual'] {
    return { interfaceName: iface.name, ...(iface.pciAddress === undefined ? {} : { pciAddress: iface.pciAddress }), mtu: iface.mtu, up: iface.up };
  }

  async function verifyPlain(e: Expected, iface: InterfaceInfo | undefined): Promise<InterfaceCheck> {
    if (iface) {
      const drift: InterfaceDrift[] = [];
      if (iface.mtu !== e.mtu) drift.push({ kind: 'mtu', expected: e.mtu, actual: iface.mtu });
      if (!iface.up) drift.push({ kind: 'down' });
      return check(e.mac, drift, netdevView(iface));
    }
    // No netdev: still bound to DPDK from an earlier spec (a bind record of this host says so)?
    const record = await findBoundRecordByMac(host, e.mac);
    const state = record ? await pciDevice(record.pciAddress) : undefined;
    if (record && state && state.netdevs.length === 0 && state.driver !== record.originalDriver) {
      return check(e.mac, [{ kind: 'driver', expected: record.originalDriver, actual: state.driver ?? null, pciAddress: state.pciAddress }], {
        pciAddress: state.pciAddress,
        ...(state.driver === undefined ? {} : { driver: state.driver }),
      });
    }
    return check(e.mac, [{ kind: 'missing' }], {});
  }

  async function verifyDpdk(e: Expected, dpdk: { driver: string; pciAddress: string }, iface: InterfaceInfo | undefined): Promise<InterfaceCheck> {
    if (iface) {
      // A netdev means a kernel driver holds the device: the binding is gone (a reboot) or never happened.
      const state = iface.pciAddress === undefined ? undefined : await pciDevice(iface.pciAddress);
      const driver = state?.driver;
      return check(e.mac, [{ kind: 'driver', expected: dpdk.driver, actual: driver ?? null, pciAddress: iface.pciAddress ?? dpdk.pciAddress }], {
        ...netdevView(iface),
        ...(driver === undefined ? {} : { driver }),
      });
    }
    const state = await pciDevice(dpdk.pciAddress);
    // Not on the bus; or the function there is another ENI (a netdev with another MAC, or the last bind there was for another MAC).
    if (!state || state.netdevs.length > 0) return check(e.mac, [{ kind: 'missing' }], {});
    const record = await readRecord(host, dpdk.pciAddress);
    if (record && record.macAddress !== e.mac) return check(e.mac, [{ kind: 'missing' }], {});
    const actual = { pciAddress: state.pciAddress, ...(state.driver === undefined ? {} : { driver: state.driver }) };
    if (state.driver === dpdk.driver) return check(e.mac, [], actual);
    return check(e.mac, [{ kind: 'driver', expected: dpdk.driver, actual: state.driver ?? null, pciAddress: state.pciAddress }], actual);
  }

  return {
    /** Read-only: reports drift per expected attachment and changes nothing. */
    async verifyInterfaces(input: VerifyInterfacesInput): Promise<VerifyInterfacesResult> {
      const expected = parse(input);
      try {
        const netdevs = await findInterfacesByMacs(host, expected.map((e) => e.mac));
        const interfaces: InterfaceCheck[] = [];
        for (const e of expected) {
          let iface: InterfaceInfo | undefined;
          try {
            // Only device-backed interfaces count: a bridge or VLAN may share the MAC.
            iface = pickInterface(e.mac, netdevs.get(e.mac) ?? [], { physicalOnly: true });
          } catch (err) {
            if (!(err instanceof AmbiguousMacError)) throw err;
            interfaces.push(check(e.mac, [{ kind: 'ambiguous', interfaceNames: err.interfaceNames }], {}));
            continue;
          }
          interfaces.push(e.dpdk ? await verifyDpdk(e, e.dpdk, iface) : await verifyPlain(e, iface));
        }
        return { ok: interfaces.every((c) => c.ok), interfaces };
      } catch (err) {
        if (isErrno(err, 'EPERM', 'EACCES')) {
          throw ApplicationFailure.nonRetryable(`the node agent may not read interfaces ${where}: ${(err as Error).message}`, INTERFACE_FAILURES.permissionDenied, { nodeName });
        }
        throw err;
      }
    },
  };
}

export type VerifyActivities = ReturnType<typeof createVerifyActivities>;

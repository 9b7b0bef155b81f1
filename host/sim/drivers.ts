// PCI drivers of the simulated host. `ena` turns a bound device into a netdev
// (and removes it on unbind); `pci-stub` is the kernel's claim-and-do-nothing
// driver, which only binds through driver_override (its ID list is empty).
// vfio-pci (iommu_group, /dev/vfio) lives in vfio.ts, behind the same
// PciDriver interface.
import { kernelError } from './errors.js';
import { ARPHRD_ETHER, IFF, type NetDevice, type NetStack } from './net.js';
import { pciSlotOf, type PciDevice, type PciDriver } from './pci.js';
import { dir } from './vfs.js';

export const PCI_VENDOR_AMAZON = 0x1d0f;
/** ENA IDs from ena_pci_id_tbl.h; EC2 guests see the VF IDs (0xec20/0xec21). */
export const ENA_DEVICE_IDS = { PF: 0x0ec2, LLQ_PF: 0x1ec2, VF: 0xec20, LLQ_VF: 0xec21 } as const;
export const PCI_CLASS_ETHERNET = 0x020000;
/** ENA_MIN_MTU in the ena driver; the maximum comes from the device (9216 on current EC2 instances). */
export const ENA_MIN_MTU = 128;
export const ENA_DEFAULT_MAX_MTU = 9216;

/** udev's predictable name for a PCI hotplug slot: ens<slot>, with f<fn> for other functions. */
export function slotInterfaceName(pciAddress: string): string {
  const { slot, fn } = pciSlotOf(pciAddress);
  return fn === 0 ? `ens${slot}` : `ens${slot}f${fn}`;
}

export interface EnaDriverOptions {
  maxMtu?: number;
  /** The name the netdev ends up with after udev (the slot name by default). */
  interfaceName?: (dev: PciDevice) => string;
}

export function enaDriver(net: NetStack, opts: EnaDriverOptions = {}): PciDriver {
  const netdevs = new Map<string, NetDevice>();
  return {
    name: 'ena',
    idTable: Object.values(ENA_DEVICE_IDS).map((device) => ({ vendor: PCI_VENDOR_AMAZON, device })),
    probe(dev: PciDevice) {
      if (!dev.macAddress) throw kernelError('EIO', `${dev.address} reports no MAC address`);
      const netdev = net.register({
        name: opts.interfaceName?.(dev) ?? slotInterfaceName(dev.address),
        macAddress: dev.macAddress,
        mtu: 1500,
        minMtu: ENA_MIN_MTU,
        maxMtu: opts.maxMtu ?? ENA_DEFAULT_MAX_MTU,
        flags: IFF.BROADCAST | IFF.MULTICAST,
        type: ARPHRD_ETHER,
        pciAddress: dev.address,
      });
      netdevs.set(dev.address, netdev);
    },
    remove(dev: PciDevice) {
      const netdev = netdevs.get(dev.address);
      if (netdev) net.unregister(netdev.name);
      netdevs.delete(dev.address);
    },
    deviceEntries(dev: PciDevice) {
      const netdev = netdevs.get(dev.address);
      return { net: netdev ? dir(() => ({ [netdev.name]: net.netdevDir(netdev) })) : undefined };
    },
  };
}

export function pciStubDriver(): PciDriver {
  return {
    name: 'pci-stub',
    idTable: [],
    probe() {},
    remove() {},
  };
}

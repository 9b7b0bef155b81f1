// What the hypervisor of a simulated EC2 instance does to its host: the host
// as it boots (primary ENI only), and hot-plug/unplug of ENA devices to match
// the ENIs attached to the instance. No EC2 client here: sim-instance.ts polls
// EC2 and calls applyAttachments; a process that only runs an agent on a
// simulated host (bench/node-agent-process.ts) can be fed its attachments
// without loading the SDK.
import { SimHost, type SimHostOptions } from '../host/sim/sim-host.js';

/** An ENI whose device is on the instance's PCI bus. */
export interface AttachedEni {
  macAddress: string;
  deviceIndex: number;
}

/** The host of a typical EC2 instance, before any secondary ENI. */
export function simulatedHost(primaryMac: string, host?: Omit<SimHostOptions, 'primary'>): SimHost {
  // Like a typical EC2 instance: no IOMMU, vfio loaded but no-IOMMU mode still off
  // (the agent's preflight switches it on), and udev does not rename a rebound netdev back.
  return new SimHost({ primary: { macAddress: primaryMac }, vfio: true, renameOnRebind: true, resctrl: {}, ...host });
}

/**
 * Makes the host's PCI bus match `attached` (every ENI attached to its
 * instance, the primary included): devices whose ENI is gone are unplugged,
 * ENIs without a device are hot-plugged, lower device indexes first so slots
 * come out in attach order like on EC2. Devices are matched to ENIs by MAC,
 * never by slot or device index.
 */
export function applyAttachments(host: SimHost, attached: readonly AttachedEni[]): void {
  const present = new Set(attached.map((a) => a.macAddress));
  const plugged = host.pci.listDevices();
  for (const dev of plugged) {
    if (dev.macAddress !== undefined && !present.has(dev.macAddress)) host.unplug(dev.address);
  }
  const pluggedMacs = new Set(plugged.map((d) => d.macAddress));
  for (const eni of [...attached].sort((a, b) => a.deviceIndex - b.deviceIndex)) {
    if (eni.deviceIndex >= 1 && !pluggedMacs.has(eni.macAddress)) host.hotplugEna({ macAddress: eni.macAddress });
  }
}

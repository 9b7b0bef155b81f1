// Makes a SimHost behave like the EC2 instance it stands for: polls EC2 for
// the ENIs attached to the instance and hot-plugs or unplugs ENA PCI devices
// to match, as the Nitro hypervisor does. Devices are matched to ENIs by MAC,
// never by slot or device index, so a test can only pass if the agent does too.
import { DescribeNetworkInterfacesCommand, type EC2Client, type NetworkInterface } from '@aws-sdk/client-ec2';
import type { SimHost } from '../host/sim/sim-host.js';

export interface SimulatedInstanceOptions {
  host: SimHost;
  ec2: EC2Client;
  instanceId: string;
  /** Poll interval (default 250 ms). */
  pollMs?: number;
  /** Failed polls are retried at the next tick; this sees them (default: ignored). */
  onError?: (err: unknown) => void;
}

export interface SimulatedInstance {
  /** One reconciliation now, after any that is running. */
  syncNow(): Promise<void>;
  stop(): Promise<void>;
}

/** Attachment states in which the device is present on the PCI bus. */
const PRESENT = new Set(['attaching', 'attached']);

export function startSimulatedInstance(opts: SimulatedInstanceOptions): SimulatedInstance {
  const pollMs = opts.pollMs ?? 250;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let chain: Promise<void> = Promise.resolve();

  const run = (): Promise<void> => {
    chain = chain.then(() => (stopped ? undefined : reconcile(opts))).catch((err: unknown) => opts.onError?.(err));
    return chain;
  };
  const tick = () => {
    void run().then(() => {
      if (!stopped) timer = setTimeout(tick, pollMs);
    });
  };
  tick();

  return {
    syncNow: run,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await chain;
    },
  };
}

async function reconcile({ host, ec2, instanceId }: SimulatedInstanceOptions): Promise<void> {
  const attached = await attachedInterfaces(ec2, instanceId);
  const present = new Map(attached.map((a) => [a.macAddress, a]));
  const plugged = host.snapshot().pciDevices;

  for (const dev of plugged) {
    if (dev.macAddress !== null && !present.has(dev.macAddress)) host.unplug(dev.address);
  }
  const pluggedMacs = new Set(plugged.map((d) => d.macAddress));
  // Lower device indexes first, so slots come out in attach order like on EC2.
  for (const eni of attached.sort((a, b) => a.deviceIndex - b.deviceIndex)) {
    if (eni.deviceIndex >= 1 && !pluggedMacs.has(eni.macAddress)) host.hotplugEna({ macAddress: eni.macAddress });
  }
}

interface AttachedEni {
  macAddress: string;
  deviceIndex: number;
}

async function attachedInterfaces(ec2: EC2Client, instanceId: string): Promise<AttachedEni[]> {
  const out: AttachedEni[] = [];
  let nextToken: string | undefined;
  do {
    const page = await ec2.send(
      new DescribeNetworkInterfacesCommand({
        Filters: [{ Name: 'attachment.instance-id', Values: [instanceId] }],
        ...(nextToken === undefined ? {} : { NextToken: nextToken }),
      }),
    );
    for (const eni of page.NetworkInterfaces ?? []) {
      const entry = toAttached(eni, instanceId);
      if (entry) out.push(entry);
    }
    nextToken = page.NextToken;
  } while (nextToken);
  return out;
}

function toAttached(eni: NetworkInterface, instanceId: string): AttachedEni | undefined {
  const att = eni.Attachment;
  if (!eni.MacAddress || !att || att.InstanceId !== instanceId || att.DeviceIndex === undefined) return undefined;
  if (!PRESENT.has(att.Status ?? '')) return undefined;
  return { macAddress: eni.MacAddress.toLowerCase(), deviceIndex: att.DeviceIndex };
}

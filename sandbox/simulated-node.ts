// A simulated EC2 node: the in-memory kernel model as its host, with PCI
// devices hot-plugged and removed as EC2 attaches and detaches ENIs, either
// by its own poller or as a member of a fleet poller (sim-instance.ts).
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { SimHost, SimHostOptions } from '../host/sim/sim-host.js';
import { startSimulatedInstance, type SimulatedFleet } from './sim-instance.js';
import { simulatedHost } from './sim-hypervisor.js';

export { simulatedHost } from './sim-hypervisor.js';

export interface SimulatedNode {
  host: SimHost;
  stop(): Promise<void>;
}

export type SimulatedNodeOptions = {
  instanceId: string;
  primaryMac: string;
  host?: Omit<SimHostOptions, 'primary'>;
} & ({ ec2: EC2Client; pollMs?: number } | { fleet: SimulatedFleet });

export async function createSimulatedNode(opts: SimulatedNodeOptions): Promise<SimulatedNode> {
  const host = simulatedHost(opts.primaryMac, opts.host);
  if ('fleet' in opts) {
    const fleet = opts.fleet;
    fleet.add(opts.instanceId, host, opts.primaryMac);
    return { host, stop: async () => fleet.remove(opts.instanceId) };
  }
  const instance = startSimulatedInstance({ host, ec2: opts.ec2, instanceId: opts.instanceId, pollMs: opts.pollMs });
  return { host, stop: () => instance.stop() };
}

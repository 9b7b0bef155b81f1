// A simulated EC2 node: the in-memory kernel model as its host, with PCI
// devices hot-plugged and removed as EC2 attaches and detaches ENIs.
import type { EC2Client } from '@aws-sdk/client-ec2';
import { SimHost, type SimHostOptions } from '../host/sim/sim-host.js';
import { startSimulatedInstance } from './sim-instance.js';

export interface SimulatedNode {
  host: SimHost;
  stop(): Promise<void>;
}

export async function createSimulatedNode(opts: { ec2: EC2Client; instanceId: string; primaryMac: string; pollMs?: number; host?: Omit<SimHostOptions, 'primary'> }): Promise<SimulatedNode> {
  // Like a typical EC2 instance: no IOMMU, vfio loaded but no-IOMMU mode still off
  // (the agent's preflight switches it on), and udev does not rename a rebound netdev back.
  const host = new SimHost({ primary: { macAddress: opts.primaryMac }, vfio: true, renameOnRebind: true, resctrl: {}, ...opts.host });
  const instance = startSimulatedInstance({ host, ec2: opts.ec2, instanceId: opts.instanceId, pollMs: opts.pollMs });
  return { host, stop: () => instance.stop() };
}

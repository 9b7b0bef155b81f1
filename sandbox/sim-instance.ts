// Makes a SimHost behave like the EC2 instance it stands for: polls EC2 for
// the ENIs attached to the instance and hot-plugs or unplugs ENA PCI devices
// to match, as the Nitro hypervisor does. Devices are matched to ENIs by MAC,
// never by slot or device index, so a test can only pass if the agent does too.
//
// Two ways to poll, one reconciliation (sim-hypervisor.ts applyAttachments):
//   - startSimulatedInstance: each instance asks EC2 for its own ENIs (tests,
//     the sandbox's node-agent processes);
//   - startSimulatedFleet: one poller asks EC2 once per interval for every
//     ENI (paginated) and hands each member instance its share, so a
//     benchmark can simulate a thousand instances without a thousand pollers.
import { DescribeNetworkInterfacesCommand, type EC2Client, type Filter, type NetworkInterface } from '@aws-sdk/client-ec2';
import type { SimHost } from '../host/sim/sim-host.js';
import { applyAttachments, type AttachedEni } from './sim-hypervisor.js';

export { applyAttachments, type AttachedEni } from './sim-hypervisor.js';

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
  const { host, ec2, instanceId } = opts;
  return startPolling(async () => {
    const enis = await describeInterfaces(ec2, { filters: [{ Name: 'attachment.instance-id', Values: [instanceId] }] });
    applyAttachments(host, attachmentsByInstance(enis).get(instanceId) ?? []);
  }, opts.pollMs ?? 250, opts.onError);
}

/** The ENIs of a DescribeNetworkInterfaces answer whose device is present, by instance. */
export function attachmentsByInstance(enis: readonly NetworkInterface[]): Map<string, AttachedEni[]> {
  const out = new Map<string, AttachedEni[]>();
  for (const eni of enis) {
    const att = eni.Attachment;
    if (!eni.MacAddress || !att?.InstanceId || att.DeviceIndex === undefined || !PRESENT.has(att.Status ?? '')) continue;
    let list = out.get(att.InstanceId);
    if (!list) out.set(att.InstanceId, (list = []));
    list.push({ macAddress: eni.MacAddress.toLowerCase(), deviceIndex: att.DeviceIndex });
  }
  return out;
}

export interface DescribeOptions {
  filters?: Filter[];
  /** MaxResults of each page (EC2 takes none beside an ID list). */
  pageSize?: number;
  /** Sees each request's duration (ms). */
  onRequest?: (ms: number) => void;
}

/** DescribeNetworkInterfaces, every page. */
export async function describeInterfaces(ec2: EC2Client, opts: DescribeOptions = {}): Promise<NetworkInterface[]> {
  const out: NetworkInterface[] = [];
  let nextToken: string | undefined;
  do {
    const t0 = performance.now();
    const page = await ec2.send(
      new DescribeNetworkInterfacesCommand({
        ...(opts.filters ? { Filters: opts.filters } : {}),
        ...(opts.pageSize === undefined ? {} : { MaxResults: opts.pageSize }),
        ...(nextToken === undefined ? {} : { NextToken: nextToken }),
      }),
    );
    opts.onRequest?.(performance.now() - t0);
    out.push(...(page.NetworkInterfaces ?? []));
    nextToken = page.NextToken;
  } while (nextToken);
  return out;
}

// ---- the fleet ---------------------------------------------------------------------

/** Where a fleet member's attachments go: its SimHost here, or anything that applies them elsewhere. */
export type FleetMember = SimHost | ((attached: readonly AttachedEni[]) => void);

export interface SimulatedFleetOptions {
  ec2: EC2Client;
  /**
   * Pause between the end of one sweep and the start of the next (default
   * 500 ms), or three times the last sweep's duration when that is longer: a
   * sweep costs EC2 (moto) time in proportion to the ENIs it lists, and the
   * fleet should not take more than a quarter of it from the system under test.
   */
  pollMs?: number;
  /**
   * Narrows each sweep (e.g. to the subnets secondary ENIs go to). Members
   * whose primary ENI it leaves out must be added with their primary's MAC.
   */
  filters?: Filter[];
  /** MaxResults of each page (default 1000, EC2's largest). */
  pageSize?: number;
  onError?: (err: unknown) => void;
}

export interface FleetStats {
  /** Completed sweeps (each one paginated DescribeNetworkInterfaces: the whole account, or what the filters leave). */
  polls: number;
  /** Pages asked for (EC2 requests made). */
  requests: number;
  /** Time spent in EC2 requests, all polls (ms). */
  requestMs: number;
  /** The slowest sweep (ms); the ENIs the last one and the largest one listed. */
  maxPollMs: number;
  lastEnis: number;
  maxEnis: number;
  errors: number;
}

export interface SimulatedFleet extends SimulatedInstance {
  /**
   * Starts simulating `instanceId` from the next sweep on. `primaryMac`: the
   * primary ENI's, for sweeps narrowed so that they do not list it (it stays plugged).
   */
  add(instanceId: string, member: FleetMember, primaryMac?: string): void;
  remove(instanceId: string): void;
  stats(): FleetStats;
}

export function startSimulatedFleet(opts: SimulatedFleetOptions): SimulatedFleet {
  const members = new Map<string, { member: FleetMember; primary?: AttachedEni }>();
  const stats: FleetStats = { polls: 0, requests: 0, requestMs: 0, maxPollMs: 0, lastEnis: 0, maxEnis: 0, errors: 0 };
  const pageSize = opts.pageSize ?? 1000;
  let lastSweepMs = 0;
  const poller = startPolling(async () => {
    if (members.size === 0) return;
    const t0 = performance.now();
    const enis = await describeInterfaces(opts.ec2, {
      filters: opts.filters,
      pageSize,
      onRequest: (ms) => {
        stats.requests++;
        stats.requestMs += ms;
      },
    });
    const byInstance = attachmentsByInstance(enis);
    for (const [instanceId, { member, primary }] of members) {
      let attached = byInstance.get(instanceId) ?? [];
      if (primary && !attached.some((a) => a.deviceIndex === 0)) attached = [primary, ...attached];
      try {
        if (typeof member === 'function') member(attached);
        else applyAttachments(member, attached);
      } catch (err) {
        // One instance's failure leaves the others alone; it is tried again at the next poll.
        stats.errors++;
        opts.onError?.(err);
      }
    }
    stats.polls++;
    stats.lastEnis = enis.length;
    stats.maxEnis = Math.max(stats.maxEnis, enis.length);
    lastSweepMs = performance.now() - t0;
    stats.maxPollMs = Math.max(stats.maxPollMs, lastSweepMs);
  }, () => Math.max(opts.pollMs ?? 500, 3 * lastSweepMs), (err) => {
    stats.errors++;
    opts.onError?.(err);
  });
  return {
    ...poller,
    add: (instanceId, member, primaryMac) => void members.set(instanceId, { member, primary: primaryMac === undefined ? undefined : { macAddress: primaryMac.toLowerCase(), deviceIndex: 0 } }),
    remove: (instanceId) => void members.delete(instanceId),
    stats: () => ({ ...stats }),
  };
}

/** Runs `once` now and then `pause` after each run ends; a failed run is reported and retried at the next tick. */
function startPolling(once: () => Promise<void>, pause: number | (() => number), onError?: (err: unknown) => void): SimulatedInstance {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let chain: Promise<void> = Promise.resolve();

  const run = (): Promise<void> => {
    chain = chain.then(() => (stopped ? undefined : once())).catch((err: unknown) => onError?.(err));
    return chain;
  };
  const tick = () => {
    void run().then(() => {
      if (!stopped) timer = setTimeout(tick, typeof pause === 'number' ? pause : pause());
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

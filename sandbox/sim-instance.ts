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
//     benchmark can simulate a thousand instances without a thousand pollers;
//     fed by the fault proxy's attachment changes, it plugs and unplugs
//     devices as the proxy attaches and detaches, and sweeps as a backstop.
import { DescribeNetworkInterfacesCommand, type EC2Client, type Filter, type NetworkInterface } from '@aws-sdk/client-ec2';
import type { SimHost } from '../host/sim/sim-host.js';
import type { AttachmentChange, AttachmentChanges } from './ec2/attachment-changes.js';
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

/** The fault proxy's attachment-changes feed (FaultProxyClient.attachmentChanges). */
export type AttachmentChangeFeed = (after: number, waitMs: number, signal: AbortSignal) => Promise<AttachmentChanges>;

export interface SimulatedFleetOptions {
  ec2: EC2Client;
  /**
   * Pause between the end of one sweep and the start of the next (default
   * 500 ms), or three times the last sweep's duration when that is longer: a
   * sweep costs EC2 (moto) time in proportion to the ENIs it lists, and the
   * fleet should not take more than a quarter of it from the system under
   * test. With `changes`: default 60 s, or twenty times the last sweep (at
   * 1,000 nodes a sweep took moto 1.4-1.7 s of CPU, and sweeps every 10-17 s
   * spent about a tenth of the machine on what the feed already said).
   */
  pollMs?: number;
  /**
   * Narrows each sweep (e.g. to the subnets secondary ENIs go to). Members
   * whose primary ENI it leaves out must be added with their primary's MAC.
   */
  filters?: Filter[];
  /** MaxResults of each page (default 1000, EC2's largest). */
  pageSize?: number;
  /**
   * Where the fleet hears of attachments as the fault proxy makes and ends
   * them: each is plugged or unplugged at once, as a Nitro host hot-plugs a
   * device when EC2 attaches it, without a read. Members are read once when
   * added; the sweeps become a backstop for changes made behind the feed's back.
   */
  changes?: AttachmentChangeFeed;
  onError?: (err: unknown) => void;
}

export interface FleetStats {
  /** Completed sweeps (each one paginated DescribeNetworkInterfaces: the whole account, or what the filters leave). */
  polls: number;
  /** Pages asked for (EC2 requests made), sweeps and reads of single members. */
  requests: number;
  /** Time spent in EC2 requests (ms). */
  requestMs: number;
  /** The slowest sweep (ms); the ENIs the last one and the largest one listed. */
  maxPollMs: number;
  lastEnis: number;
  maxEnis: number;
  /** Attachment changes from the feed applied to members. */
  changesApplied: number;
  /** Reads of members whose attachments were not known yet (just added), and the members they covered. */
  memberReads: number;
  membersRead: number;
  errors: number;
}

export interface SimulatedFleet extends SimulatedInstance {
  /**
   * Starts simulating `instanceId`: at once with a change feed, else from the
   * next sweep on. `primaryMac`: the primary ENI's, for sweeps narrowed so that
   * they do not list it (it stays plugged).
   */
  add(instanceId: string, member: FleetMember, primaryMac?: string): void;
  remove(instanceId: string): void;
  stats(): FleetStats;
}

/** Values per filter in one DescribeNetworkInterfaces (EC2 takes up to 200). */
const MEMBERS_PER_READ = 200;
/** How long one long poll of the change feed waits for a change. */
const FEED_WAIT_MS = 10_000;
/** Pause after a failed feed poll or read before trying again. */
const RETRY_MS = 500;

interface Member {
  member: FleetMember;
  primary?: AttachedEni;
  /** Its attachments by MAC (device index), once read; changes from the feed are applied to it. */
  attached?: Map<string, number>;
  /** The version (see `versions`) of what was last applied to it. */
  appliedFrom: number;
}

export function startSimulatedFleet(opts: SimulatedFleetOptions): SimulatedFleet {
  const members = new Map<string, Member>();
  const stats: FleetStats = { polls: 0, requests: 0, requestMs: 0, maxPollMs: 0, lastEnis: 0, maxEnis: 0, changesApplied: 0, memberReads: 0, membersRead: 0, errors: 0 };
  const pageSize = opts.pageSize ?? 1000;
  const fail = (err: unknown) => {
    stats.errors++;
    opts.onError?.(err);
  };
  const countRequest = (ms: number) => {
    stats.requests++;
    stats.requestMs += ms;
  };

  // Reads (sweeps, member reads) and feed changes run side by side. Each takes
  // a version when it begins; a read's answer is applied to a member only if
  // nothing that began later was applied to it first, so an older answer never
  // undoes a newer change. Every change made through the proxy reaches the
  // feed after moto has it, so a read that began after the change was applied
  // already sees it.
  let versions = 0;
  const plug = (m: Member) => {
    let attached = [...(m.attached ?? new Map<string, number>())].map(([macAddress, deviceIndex]) => ({ macAddress, deviceIndex }));
    if (m.primary && !attached.some((a) => a.deviceIndex === 0)) attached = [m.primary, ...attached];
    try {
      if (typeof m.member === 'function') m.member(attached);
      else applyAttachments(m.member, attached);
    } catch (err) {
      // One instance's failure leaves the others alone; it is tried again at the next change or read.
      fail(err);
    }
  };
  const applyRead = (instanceId: string, byInstance: Map<string, AttachedEni[]>, version: number) => {
    const m = members.get(instanceId);
    if (!m || m.appliedFrom > version) return;
    m.appliedFrom = version;
    m.attached = new Map((byInstance.get(instanceId) ?? []).map((a) => [a.macAddress, a.deviceIndex]));
    plug(m);
  };

  let lastSweepMs = 0;
  const poller = startPolling(async () => {
    if (members.size === 0) return;
    const t0 = performance.now();
    const version = ++versions;
    const enis = await describeInterfaces(opts.ec2, { filters: opts.filters, pageSize, onRequest: countRequest });
    const byInstance = attachmentsByInstance(enis);
    for (const instanceId of members.keys()) applyRead(instanceId, byInstance, version);
    stats.polls++;
    stats.lastEnis = enis.length;
    stats.maxEnis = Math.max(stats.maxEnis, enis.length);
    lastSweepMs = performance.now() - t0;
    stats.maxPollMs = Math.max(stats.maxPollMs, lastSweepMs);
    // As a backstop behind a feed a sweep may take a twentieth of moto's time, else a quarter.
  }, () => (opts.changes ? Math.max(opts.pollMs ?? 60_000, 20 * lastSweepMs) : Math.max(opts.pollMs ?? 500, 3 * lastSweepMs)), fail);

  // Members not known yet wait in `unread`; one drain at a time reads them in
  // batches, so a thousand members added together cost a few describes.
  const stopping = new AbortController();
  const unread = new Set<string>();
  let draining: Promise<void> | undefined;
  const readMembers = async (ids: string[]) => {
    const version = ++versions;
    const enis = await describeInterfaces(opts.ec2, {
      filters: [...(opts.filters ?? []), { Name: 'attachment.instance-id', Values: ids }],
      onRequest: countRequest,
    });
    const byInstance = attachmentsByInstance(enis);
    for (const id of ids) applyRead(id, byInstance, version);
    stats.memberReads++;
    stats.membersRead += ids.length;
  };
  const drain = async () => {
    while (unread.size > 0 && !stopping.signal.aborted) {
      const ids = [...unread].slice(0, MEMBERS_PER_READ);
      for (const id of ids) unread.delete(id);
      try {
        await readMembers(ids);
      } catch (err) {
        fail(err);
        for (const id of ids) if (members.has(id)) unread.add(id);
        await pause(RETRY_MS, stopping.signal);
      }
    }
  };
  const readSoon = (instanceId: string) => {
    if (!opts.changes || !members.has(instanceId)) return;
    unread.add(instanceId);
    if (draining) return;
    draining = drain().finally(() => {
      draining = undefined;
      const next = unread.values().next();
      if (!next.done) readSoon(next.value);
    });
  };
  const applyChange = (change: AttachmentChange) => {
    const m = members.get(change.instanceId);
    if (!m) return;
    // Not read yet: a change cannot be applied to what is not known; the read will see it.
    if (!m.attached) return readSoon(change.instanceId);
    if (change.attached) m.attached.set(change.macAddress, change.deviceIndex);
    else m.attached.delete(change.macAddress);
    m.appliedFrom = ++versions;
    stats.changesApplied++;
    plug(m);
  };

  const feed = opts.changes;
  const following = feed
    ? (async () => {
        // The first answer only says where the feed stands: members are read when added.
        let after: number | undefined;
        while (!stopping.signal.aborted) {
          try {
            const answer = await feed(after ?? 0, after === undefined ? 0 : FEED_WAIT_MS, stopping.signal);
            if (after !== undefined) {
              if (answer.complete) answer.changes.forEach(applyChange);
              else await poller.syncNow(); // fell behind (or a new proxy): read everything
            }
            after = answer.seq;
          } catch (err) {
            if (stopping.signal.aborted) break;
            fail(err);
            await pause(RETRY_MS, stopping.signal);
          }
        }
      })()
    : Promise.resolve();

  return {
    syncNow: poller.syncNow,
    async stop() {
      stopping.abort();
      await Promise.allSettled([following, draining]);
      await poller.stop();
    },
    add: (instanceId, member, primaryMac) => {
      members.set(instanceId, { member, primary: primaryMac === undefined ? undefined : { macAddress: primaryMac.toLowerCase(), deviceIndex: 0 }, appliedFrom: 0 });
      readSoon(instanceId);
    },
    remove: (instanceId) => {
      members.delete(instanceId);
      unread.delete(instanceId);
    },
    stats: () => ({ ...stats }),
  };
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
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

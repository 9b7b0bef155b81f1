// One DescribeNetworkInterfaces serves every ENI this worker process is waiting
// on (attached, detached): waits register here and are answered by the next
// shared poll. A thousand attachments in flight cost one call per poll (per 200
// ENIs), not one each. The pause between polls grows with the requests the
// last poll needed, so the waits cost at most one request per interval however
// many ENIs are awaited. Nothing here must survive a restart: a wait is an
// activity, and its retry registers again.
import { paginateDescribeNetworkInterfaces, type EC2Client, type NetworkInterface } from '@aws-sdk/client-ec2';
import { ApplicationFailure } from '@temporalio/common';
import { toEc2Failure } from './errors.js';

/** Values per filter in one request: EC2 accepts up to 200 for most filters. */
const IDS_PER_REQUEST = 200;

interface Waiter {
  resolve(eni: NetworkInterface | undefined): void;
  reject(err: unknown): void;
}

export class EniStatusPoller {
  private readonly waiting = new Map<string, Waiter[]>();
  private timer: NodeJS.Timeout | undefined;
  private lastPollAt = 0;
  /** Requests the last poll sent (one per IDS_PER_REQUEST ENIs). */
  private lastRequests = 1;
  /** Grows while polls are refused for a retryable reason (throttling), back to `intervalMs` on success. */
  private currentIntervalMs: number;

  constructor(
    private readonly ec2: EC2Client,
    /** Least time between two shared polls, per request the last poll sent. */
    private readonly intervalMs: number,
    private readonly maxIntervalMs = 10_000,
  ) {
    this.currentIntervalMs = intervalMs;
  }

  /**
   * The ENI as the next successful shared poll sees it; undefined when EC2 no
   * longer knows it. A poll refused for a retryable reason (throttling, a 5xx)
   * is tried again after a longer interval instead of failing the waiters: a
   * wait is a polling loop already, it needs no second retry layer.
   */
  next(eniId: string): Promise<NetworkInterface | undefined> {
    return new Promise((resolve, reject) => {
      const list = this.waiting.get(eniId) ?? [];
      list.push({ resolve, reject });
      this.waiting.set(eniId, list);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.timer) return;
    const wait = Math.max(0, this.lastPollAt + this.currentIntervalMs * this.lastRequests - Date.now());
    this.timer = setTimeout(() => void this.poll(), wait);
  }

  private async poll(): Promise<void> {
    this.lastPollAt = Date.now();
    const batch = new Map(this.waiting);
    this.waiting.clear();
    const ids = [...batch.keys()];
    const chunks: string[][] = [];
    for (let i = 0; i < ids.length; i += IDS_PER_REQUEST) chunks.push(ids.slice(i, i + IDS_PER_REQUEST));
    this.lastRequests = Math.max(1, chunks.length);
    let refused = false;
    await Promise.all(chunks.map(async (chunk) => {
      try {
        const found = new Map<string, NetworkInterface>();
        // A filter, not NetworkInterfaceIds: one ENI that is gone must not fail the others.
        const pages = paginateDescribeNetworkInterfaces({ client: this.ec2, pageSize: 1000 }, { Filters: [{ Name: 'network-interface-id', Values: chunk }] });
        for await (const page of pages) for (const ni of page.NetworkInterfaces ?? []) found.set(ni.NetworkInterfaceId!, ni);
        for (const id of chunk) for (const w of batch.get(id)!) w.resolve(found.get(id));
      } catch (err) {
        const failure = toEc2Failure(err, `DescribeNetworkInterfaces (${chunk.length} ENIs awaited)`);
        if (failure instanceof ApplicationFailure && !failure.nonRetryable) {
          refused = true;
          for (const id of chunk) this.waiting.set(id, [...batch.get(id)!, ...(this.waiting.get(id) ?? [])]);
        } else {
          for (const id of chunk) for (const w of batch.get(id)!) w.reject(failure);
        }
      }
    }));
    this.currentIntervalMs = refused ? Math.min(this.maxIntervalMs, this.currentIntervalMs * 2) : this.intervalMs;
    this.timer = undefined;
    if (this.waiting.size > 0) this.schedule();
  }
}

// One DescribeNetworkInterfaces serves every ENI this worker process is waiting
// on (attached, detached): waits register here and are answered by the next
// shared poll. A thousand attachments in flight cost one call per poll (per 200
// ENIs), not one each. Requests are paced by a token bucket: one token per
// interval, at most BURST_REQUESTS saved up, so a short wait (an attachment of
// one ENI) is polled twice as often while a long or large one costs at most one
// request per interval however many ENIs are awaited. Nothing here must
// survive a restart: a wait is an activity, and its retry registers again.
import { paginateDescribeNetworkInterfaces, type EC2Client, type NetworkInterface } from '@aws-sdk/client-ec2';
import { ApplicationFailure } from '@temporalio/common';
import { toEc2Failure } from './errors.js';

/** Values per filter in one request: EC2 accepts up to 200 for most filters. */
const IDS_PER_REQUEST = 200;
/** Requests the poller may save up while idle, spent at twice the rate. */
const BURST_REQUESTS = 10;

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
  /** The bucket: requests that may be sent now, as of `tokensAt`. */
  private tokens = BURST_REQUESTS;
  private tokensAt = Date.now();
  /** 0, or the pause after a refused poll: grows while polls are refused for a retryable reason (throttling). */
  private backoffMs = 0;

  constructor(
    private readonly ec2: EC2Client,
    /** The bucket's refill: one request per `intervalMs`; polls come no closer than half of it. */
    private readonly intervalMs: number,
    private readonly maxIntervalMs = 10_000,
  ) {}

  private refill(now: number): void {
    this.tokens = Math.min(BURST_REQUESTS, this.tokens + (now - this.tokensAt) / this.intervalMs);
    this.tokensAt = now;
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
    const now = Date.now();
    this.refill(now);
    const forTokens = Math.max(0, this.lastRequests - this.tokens) * this.intervalMs;
    const gap = this.backoffMs > 0 ? this.backoffMs * this.lastRequests : this.intervalMs / 2;
    this.timer = setTimeout(() => void this.poll(), Math.max(0, forTokens, this.lastPollAt + gap - now));
  }

  private async poll(): Promise<void> {
    this.lastPollAt = Date.now();
    const batch = new Map(this.waiting);
    this.waiting.clear();
    const ids = [...batch.keys()];
    const chunks: string[][] = [];
    for (let i = 0; i < ids.length; i += IDS_PER_REQUEST) chunks.push(ids.slice(i, i + IDS_PER_REQUEST));
    this.lastRequests = Math.max(1, chunks.length);
    this.refill(this.lastPollAt);
    this.tokens -= chunks.length;
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
    this.backoffMs = refused ? Math.min(this.maxIntervalMs, Math.max(this.intervalMs, this.backoffMs * 2)) : 0;
    this.timer = undefined;
    if (this.waiting.size > 0) this.schedule();
  }
}

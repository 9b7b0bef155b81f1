// One DescribeNetworkInterfaces serves every ENI this worker process is waiting
// on (attached, detached): waits register here and are answered by the next
// shared poll. A thousand attachments in flight cost one call per poll (per 200
// ENIs), not one each. Requests are paced by a token bucket: one token per
// interval, at most BURST_REQUESTS saved up, so a short wait (an attachment of
// one ENI) is polled four times as often while a long or large one costs at
// most one request per interval however many ENIs are awaited. A wait may say
// when it is first worth asking about (see transition-clock.ts); until then its
// ENI rides along only in a request that is sent anyway. Nothing here must
// survive a restart: a wait is an activity, and its retry registers again.
import { paginateDescribeNetworkInterfaces, type EC2Client, type NetworkInterface } from '@aws-sdk/client-ec2';
import { ApplicationFailure } from '@temporalio/common';
import { toEc2Failure } from './errors.js';

/** Values per filter in one request: EC2 accepts up to 200 for most filters. */
const IDS_PER_REQUEST = 200;
/** Requests the poller may save up while idle, spent at four times the rate. */
const BURST_REQUESTS = 10;

/** What one shared poll saw of an ENI. */
export interface Polled {
  /** undefined: EC2 no longer knows the ENI. */
  eni: NetworkInterface | undefined;
  /** When the request that saw it was sent (ms since the epoch). */
  sentAt: number;
}

interface Waiter {
  /** Not worth a request of its own before this (ms since the epoch). */
  dueAt: number;
  resolve(polled: Polled): void;
  reject(err: unknown): void;
}

export class EniStatusPoller {
  private readonly waiting = new Map<string, Waiter[]>();
  private timer: NodeJS.Timeout | undefined;
  /** When `timer` fires (ms since the epoch). */
  private timerAt = 0;
  /** A poll's requests are out: the next is planned when they are answered. */
  private polling = false;
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
   * The ENI as the next successful shared poll that asks about it sees it, no
   * request sent for it alone before `dueAt`. A poll refused for a retryable reason (throttling, a 5xx)
   * is tried again after a longer interval instead of failing the waiters: a
   * wait is a polling loop already, it needs no second retry layer.
   */
  next(eniId: string, dueAt = 0): Promise<Polled> {
    return new Promise((resolve, reject) => {
      const list = this.waiting.get(eniId) ?? [];
      list.push({ dueAt, resolve, reject });
      this.waiting.set(eniId, list);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.polling) return;
    const now = Date.now();
    this.refill(now);
    const forTokens = Math.max(0, this.lastRequests - this.tokens) * this.intervalMs;
    const gap = this.backoffMs > 0 ? this.backoffMs * this.lastRequests : this.intervalMs / 4;
    let due = Infinity;
    for (const list of this.waiting.values()) for (const w of list) due = Math.min(due, w.dueAt);
    const at = now + Math.max(0, forTokens, this.lastPollAt + gap - now, due - now);
    // A wait due sooner than the poll already planned (which waits for a later one) moves it up.
    if (this.timer && this.timerAt <= at) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.poll();
    }, at - now);
  }

  private async poll(): Promise<void> {
    const now = Date.now();
    // The ENIs that are due, then as many not yet due as fit in the requests those need.
    // (A timer may fire a millisecond before the time it was set for.)
    const due = [...this.waiting.keys()].filter((id) => this.waiting.get(id)!.some((w) => w.dueAt <= now + 2));
    if (due.length === 0) return this.schedule();
    this.polling = true;
    this.lastPollAt = now;
    const dueSet = new Set(due);
    const riders = [...this.waiting.keys()].filter((id) => !dueSet.has(id));
    const ids = [...due, ...riders.slice(0, Math.ceil(due.length / IDS_PER_REQUEST) * IDS_PER_REQUEST - due.length)];
    const batch = new Map(ids.map((id) => [id, this.waiting.get(id)!]));
    for (const id of ids) this.waiting.delete(id);
    const chunks: string[][] = [];
    for (let i = 0; i < ids.length; i += IDS_PER_REQUEST) chunks.push(ids.slice(i, i + IDS_PER_REQUEST));
    this.lastRequests = Math.max(1, chunks.length);
    this.refill(this.lastPollAt);
    this.tokens -= chunks.length;
    let refused = false;
    await Promise.all(chunks.map(async (chunk) => {
      const sentAt = Date.now();
      try {
        const found = new Map<string, NetworkInterface>();
        // A filter, not NetworkInterfaceIds: one ENI that is gone must not fail the others.
        const pages = paginateDescribeNetworkInterfaces({ client: this.ec2, pageSize: 1000 }, { Filters: [{ Name: 'network-interface-id', Values: chunk }] });
        for await (const page of pages) for (const ni of page.NetworkInterfaces ?? []) found.set(ni.NetworkInterfaceId!, ni);
        for (const id of chunk) for (const w of batch.get(id)!) w.resolve({ eni: found.get(id), sentAt });
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
    this.polling = false;
    if (this.waiting.size > 0) this.schedule();
  }
}

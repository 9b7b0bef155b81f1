// The attachments the proxy has just made and ended, in order, so a simulated
// hypervisor (sim-instance.ts startSimulatedFleet) can plug and unplug devices
// as EC2 changes them, instead of listing every ENI of the account over and
// over. Real EC2 tells the instance itself (the device is hot-plugged); this is
// how the benchmark's one-process fleet learns it without costing moto a read.
// Only changes made through the proxy are here: readers still sweep moto now
// and then, and whenever they fall behind.

/** An ENI's device came onto (`attached`) or left an instance's bus. */
export interface AttachmentChange {
  instanceId: string;
  macAddress: string;
  deviceIndex: number;
  attached: boolean;
}

/** What a reader gets: the changes after `after`, in order, and the position to ask from next. */
export interface AttachmentChanges {
  /** The position after the last change returned; pass it as `after` next time. */
  seq: number;
  changes: AttachmentChange[];
  /**
   * false when changes after `after` were dropped (the log keeps the last
   * `capacity`) or `after` is from an earlier proxy: read everything again.
   */
  complete: boolean;
}

export class AttachmentChangeLog {
  private seq = 0;
  /** entries[i] is the change at position firstSeq + i + 1. */
  private entries: AttachmentChange[] = [];
  private firstSeq = 0;
  private readonly waiters = new Set<() => void>();

  constructor(private readonly capacity = 100_000) {}

  note(change: AttachmentChange): void {
    this.entries.push({ ...change, macAddress: change.macAddress.toLowerCase() });
    this.seq++;
    if (this.entries.length > this.capacity) {
      const drop = this.entries.length - this.capacity;
      this.entries = this.entries.slice(drop);
      this.firstSeq += drop;
    }
    for (const wake of this.waiters) wake();
    this.waiters.clear();
  }

  /** The changes after `after`; waits up to `waitMs` for one when there is none yet. */
  async next(after: number, waitMs: number, signal?: AbortSignal): Promise<AttachmentChanges> {
    if (after === this.seq && waitMs > 0 && !signal?.aborted) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.waiters.delete(done);
          signal?.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, waitMs);
        this.waiters.add(done);
        signal?.addEventListener('abort', done);
      });
    }
    return this.since(after);
  }

  private since(after: number): AttachmentChanges {
    if (!Number.isInteger(after) || after < this.firstSeq || after > this.seq) {
      return { seq: this.seq, changes: [], complete: false };
    }
    return { seq: this.seq, changes: this.entries.slice(after - this.firstSeq), complete: true };
  }
}

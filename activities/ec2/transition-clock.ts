// How long EC2's attachments take to leave `attaching` and `detaching`, learned
// from this process's own waits, so a wait asks nothing while the answer cannot
// have changed yet. A poll sent the moment after AttachNetworkInterface answered
// always finds `attaching`: it spends a DescribeNetworkInterfaces of the shared
// budget, and the budget it spends is missing when the transition ends, when a
// poll matters. Each finished wait leaves a sample: the longest it saw the
// attachment still in transition (a lower bound of the transition's length).
// The next wait's first poll is due after the shortest of the recent samples.
// If EC2 is faster than that, the first poll already finds the change and the
// sample it leaves is half the delay, so the delay shrinks again at once.
// Nothing here must survive a restart: a new process starts polling at once.

export type Transition = 'attaching' | 'detaching';

/** Waits remembered per transition: the delay follows the fastest of them. */
const SAMPLES_KEPT = 16;
/** However long the transitions seen: a wait's first poll never waits longer than this. */
const MAX_FIRST_POLL_DELAY_MS = 5_000;

export class TransitionClock {
  private readonly samples = new Map<Transition, number[]>();

  /** How long after a fresh wait starts its first poll is worth sending: 0 until a wait of that kind ended. */
  firstPollDelayMs(transition: Transition): number {
    const kept = this.samples.get(transition);
    if (!kept || kept.length === 0) return 0;
    return Math.min(MAX_FIRST_POLL_DELAY_MS, ...kept);
  }

  /**
   * A fresh wait ended. `inTransitionForMs`: since its start, when the last poll that still saw the
   * transition was sent; undefined if none did. `firstPollAfterMs`: when its first poll was sent.
   */
  waitEnded(transition: Transition, inTransitionForMs: number | undefined, firstPollAfterMs: number): void {
    const kept = this.samples.get(transition) ?? [];
    kept.push(Math.max(0, inTransitionForMs ?? firstPollAfterMs / 2));
    if (kept.length > SAMPLES_KEPT) kept.shift();
    this.samples.set(transition, kept);
  }
}

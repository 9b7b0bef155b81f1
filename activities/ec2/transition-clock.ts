// How long EC2's attachments take to leave `attaching` and `detaching`, learned
// from this process's own waits, so a wait asks nothing while the answer cannot
// have changed yet and asks close to when it has. A poll sent the moment after
// AttachNetworkInterface answered always finds `attaching`: it spends a
// DescribeNetworkInterfaces of the shared budget, and the budget it spends is
// missing when the transition ends, when a poll matters. Each finished wait
// leaves a sample: when, after its start, the first poll that found the change
// made was sent (an upper bound of the transition's length). The next wait's
// first poll is due after the shortest of the recent samples: the change is
// usually made by then, so most waits need one or two polls, the second at most
// the poller's gap after the end. If the first poll already finds the change
// made, the transition may have ended well before: that wait leaves a tenth
// less than its delay, so the delay creeps down until a first poll comes too
// early, and falls geometrically if EC2 got much faster. (A bound on the
// transition's lower end, the last poll that still saw it, left every wait
// straddling the end with polls a gap apart: 30–50 ms late.)
// Nothing here must survive a restart: a new process starts polling at once.

export type Transition = 'attaching' | 'detaching';

/** Waits remembered per transition: the delay follows the fastest of them. */
const SAMPLES_KEPT = 16;
/** However long the transitions seen: a wait's first poll never waits longer than this. */
const MAX_FIRST_POLL_DELAY_MS = 5_000;
/** A first poll that found the change made leaves its delay less this share. */
const PROBE_DOWN = 0.1;

export class TransitionClock {
  private readonly samples = new Map<Transition, number[]>();

  /** How long after a fresh wait starts its first poll is worth sending: 0 until a wait of that kind ended. */
  firstPollDelayMs(transition: Transition): number {
    const kept = this.samples.get(transition);
    if (!kept || kept.length === 0) return 0;
    return Math.min(MAX_FIRST_POLL_DELAY_MS, ...kept);
  }

  /**
   * A fresh wait saw the change made. `doneSeenAfterMs`: since its start, when the poll that first
   * found it made was sent; `byFirstPoll`: that poll was the wait's first.
   */
  waitEnded(transition: Transition, doneSeenAfterMs: number, byFirstPoll: boolean): void {
    const kept = this.samples.get(transition) ?? [];
    kept.push(Math.max(0, Math.round(byFirstPoll ? doneSeenAfterMs * (1 - PROBE_DOWN) : doneSeenAfterMs)));
    if (kept.length > SAMPLES_KEPT) kept.shift();
    this.samples.set(transition, kept);
  }
}

// The loop every long-lived workflow runs, with controller-runtime's contract
// in Temporal terms: a pass reads the world and acts on the difference; a pass
// that fails becomes a reported failure (condition, Event) and a retry after
// back-off, never a failed workflow; between passes the workflow sleeps until
// a message marks it dirty, a resync or retry is due, or the pass asked to be
// woken; when the history grows it continues-as-new (after every handler has
// finished, passes going on meanwhile) with its typed state, so nothing a
// restart would lose lives only in this run's memory.
import { allHandlersFinished, CancellationScope, condition, isCancellation, log, patched, workflowInfo } from '@temporalio/workflow';
import type { BackoffOptions, PassFailure, ReconcilerState } from '../common/workflow-api.js';
import { failureMessage, failureReason } from './failures.js';
import { metrics } from './metrics.js';

export interface PassResult {
  /** The work is over (the object is gone): finish once every handler is done. */
  done?: boolean;
  /** Wake no later than this many ms from now (a child's back-off ending, a debounce). */
  wakeInMs?: number;
}

export interface ReconcilerConfig {
  /** Longest sleep between passes: drift nobody signalled is found within this. */
  resyncMs: number;
  /** Delay after consecutive failed passes: initial, doubling, capped, with jitter. */
  backoff: BackoffOptions;
  /** Continue-as-new past this many history events (or when Temporal suggests it). */
  maxHistoryLength: number;
  /** Tell the world a pass failed (status condition, Event). Best effort: its own failure is only logged. */
  reportFailure(failure: PassFailure, firstOfItsKind: boolean): Promise<void>;
  /** A pass succeeded after failures. Best effort. */
  reportRecovered?(previous: PassFailure): Promise<void>;
  /** Continue-as-new with the workflow's current state (never returns). */
  continueAsNew(): Promise<never>;
  /** Label of the idle timer in the UI. */
  idleSummary: string;
  /**
   * Waits where drift is cheap to see (the resctrl workflow: on the node) instead of
   * a resync timer and a pass per tick. Resolves when a pass is due; throws when it
   * cannot watch (then the resync timer applies this time). Used while nothing is
   * failing and the last pass asked for no earlier wake-up; cancelled when a message
   * marks the workflow dirty.
   */
  idleWatch?: () => Promise<void>;
}

/**
 * Before this patch a run due to end (continue-as-new, or done) waited for its handlers alone, and a
 * handler waiting on a pass (forceFinish) then waited forever; with it, passes go on meanwhile.
 */
export const HANDLERS_WAIT_ON_PASSES_PATCH = 'reconciler-handlers-wait-on-passes';

/** The longest a pass due to markDirtySoon waits for the one before it to be far enough behind. */
const MAX_COALESCE_MS = 5000;

export class Reconciler {
  private dirty = true;
  private dirtySoon = false;
  /** When the last pass ended and how long it took (workflow time: replay computes the same). */
  private lastPass?: { endedAt: number; ms: number };

  constructor(
    private readonly durable: ReconcilerState,
    private readonly config: ReconcilerConfig,
  ) {}

  /** Something changed: run a pass as soon as the current one (if any) ends. */
  markDirty(): void {
    this.dirty = true;
  }

  /**
   * Something changed that can wait a moment: run a pass, but leave at least as long after the last
   * one as that one took (up to MAX_COALESCE_MS). A stream of reports from many children then makes
   * a pass every other pass-time instead of passes back to back, each reading the whole world; a
   * single report after a quiet spell still gets its pass at once.
   */
  markDirtySoon(): void {
    this.dirtySoon = true;
  }

  /** The failure the last pass ended with, until a pass succeeds. */
  get failure(): PassFailure | undefined {
    return this.durable.failure;
  }

  async run(pass: () => Promise<PassResult | void>): Promise<void> {
    let wakeInMs: number | undefined;
    for (;;) {
      const sleepMs = this.sleepMs(wakeInMs);
      const watched = this.config.idleWatch && wakeInMs === undefined && !this.durable.failure && !this.dirty && (await this.watchUntilDue());
      if (!watched) await condition(() => this.dirty || this.dirtySoon, sleepMs, { summary: this.durable.failure ? `retry after ${this.durable.failure.reason}` : this.config.idleSummary });
      if (!this.dirty && this.dirtySoon && this.lastPass) {
        const rest = this.lastPass.endedAt + Math.min(this.lastPass.ms, MAX_COALESCE_MS) - Date.now();
        if (rest > 0) await condition(() => this.dirty, rest, { summary: 'coalescing reports' });
      }
      this.dirty = false;
      this.dirtySoon = false;
      wakeInMs = undefined;
      let done = false;
      const passStartedAt = Date.now();
      try {
        const result = await pass();
        this.lastPass = { endedAt: Date.now(), ms: Date.now() - passStartedAt };
        wakeInMs = result?.wakeInMs;
        done = result?.done === true;
        const previous = this.durable.failure;
        if (previous) {
          this.durable.failure = undefined;
          await this.quietly('report recovery', () => this.config.reportRecovered?.(previous));
        }
      } catch (err) {
        // An operator's cancel ends the workflow; everything else is retried.
        if (isCancellation(err)) throw err;
        await this.passFailed(err);
        continue;
      }
      if (done) {
        if (await this.handlersFinished()) return;
        continue;
      }
      if (this.historyFull() && (await this.handlersFinished())) await this.config.continueAsNew();
    }
  }

  /**
   * Waits for every handler to finish before this run ends. A handler may itself wait on a later pass
   * (forceFinish waits for the reports of the children a pass told to stop): waiting for the handlers
   * alone would then wait forever, with no pass running. With HANDLERS_WAIT_ON_PASSES_PATCH a message
   * that marks the loop dirty runs that pass first (false: not finished yet). Histories recorded before
   * it wait for the handlers alone, as they did.
   */
  private async handlersFinished(): Promise<boolean> {
    if (allHandlersFinished()) return true;
    if (!patched(HANDLERS_WAIT_ON_PASSES_PATCH)) {
      await condition(allHandlersFinished);
      return true;
    }
    await condition(() => allHandlersFinished() || this.dirty || this.dirtySoon);
    return allHandlersFinished();
  }

  /** True when the watch or a message said a pass is due; false when the watch could not run. */
  private async watchUntilDue(): Promise<boolean> {
    const scope = new CancellationScope();
    // Both waits live in one scope: whichever ends first cancels the other.
    const outcome = await scope.run(() => Promise.race([
      this.config.idleWatch!().then(() => 'due' as const, (err: unknown) => err),
      condition(() => this.dirty).then(() => 'dirty' as const, (err: unknown) => err),
    ]));
    if (outcome === 'due' || outcome === 'dirty') {
      scope.cancel();
      return true;
    }
    if (isCancellation(outcome)) throw outcome;
    scope.cancel();
    log.warn('idle watch failed; waiting on the resync timer instead', { error: failureMessage(outcome) });
    return false;
  }

  private sleepMs(wakeInMs: number | undefined): number {
    const candidates = [this.config.resyncMs];
    if (wakeInMs !== undefined) candidates.push(wakeInMs);
    if (this.durable.failure) candidates.push(this.durable.failure.retryAt - Date.now());
    return Math.max(1, Math.min(...candidates));
  }

  private historyFull(): boolean {
    const info = workflowInfo();
    return info.continueAsNewSuggested || info.historyLength > this.config.maxHistoryLength;
  }

  private async passFailed(err: unknown): Promise<void> {
    const reason = failureReason(err, 'ReconcileFailed');
    const message = failureMessage(err);
    const before = this.durable.failure;
    const attempts = (before?.attempts ?? 0) + 1;
    const { initialMs, maxMs } = this.config.backoff;
    // Jitter (Math.random is deterministic in workflows) keeps many workflows failing together from retrying together.
    const delay = Math.min(maxMs, initialMs * 2 ** Math.min(attempts - 1, 30)) * (0.8 + 0.4 * Math.random());
    const failure: PassFailure = { reason, message, attempts, retryAt: Date.now() + Math.round(delay) };
    this.durable.failure = failure;
    log.warn('reconcile pass failed; retrying after back-off', { reason, message, attempts, retryInMs: Math.round(delay) });
    metrics().reconcileFailed(reason);
    const firstOfItsKind = before?.reason !== reason || before.message !== message;
    await this.quietly('report the failed pass', () => this.config.reportFailure(failure, firstOfItsKind));
  }

  private async quietly(what: string, fn: () => Promise<unknown> | undefined): Promise<void> {
    try {
      await fn();
    } catch (err) {
      if (isCancellation(err)) throw err;
      log.warn(`could not ${what}`, { error: failureMessage(err) });
    }
  }
}

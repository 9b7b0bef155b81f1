// Where a worker process's start went, logged on its "started" line: a restart
// that takes seconds (a crash loop, a node under load, an upgrade rolling out)
// shows whether Node's boot and the imports, the Temporal checks or the
// workers' creation took them.
import { performance } from 'node:perf_hooks';

export class StartupTimer {
  private last: number;
  /** `boot`: from the process's start to the first step timed (Node itself and the entry's imports). */
  private readonly steps: Record<string, number>;

  constructor() {
    this.last = performance.now();
    this.steps = { bootMs: Math.round(this.last) };
  }

  /** Ends the step named `name`: the time since the previous one. */
  step(name: string): void {
    const now = performance.now();
    this.steps[`${name}Ms`] = Math.round(now - this.last);
    this.last = now;
  }

  /** The steps so far and the whole time since the process started. */
  figures(): Record<string, number> {
    return { ...this.steps, totalMs: Math.round(performance.now()) };
  }
}

// The short chaos soak inside npm test (sandbox/soak/engine.ts): its own real
// backends and the system as separate processes, ≥ 10 NodeENI lifecycles at
// once with component kills, a Temporal restart on its database file and EC2
// faults (throttling, 5xx, short UnauthorizedOperation windows). Every
// invariant must hold. `npm run soak` is the long version.
import { describe, expect, it } from 'vitest';
import { runSoak, SHORT_SOAK, type SoakReport } from '../sandbox/soak/engine.js';
import { reportJsonLine, reportTable } from '../sandbox/soak/report.js';

const TIMEOUT_MS = 480_000;

describe('chaos soak (short)', () => {
  it('keeps every invariant through kills, a Temporal restart and EC2 faults', async () => {
    // A fixed seed in npm test (a regression check); `npm run soak` explores others. SOAK_SEED overrides.
    const seed = process.env.SOAK_SEED ? Number(process.env.SOAK_SEED) : 11;
    // One block of output at the end (vitest would put a header above every line).
    const lines: string[] = [];
    let report: SoakReport;
    try {
      // Give up (and stop every process it started) before vitest's own timeout would orphan them.
      report = await runSoak({ ...SHORT_SOAK, seed, log: (l) => lines.push(l), signal: AbortSignal.timeout(TIMEOUT_MS - 30_000) });
      lines.push('', reportTable(report), '', reportJsonLine(report));
    } finally {
      console.log(lines.join('\n'));
    }

    expect(report.lifecycles.planned).toBeGreaterThanOrEqual(10);
    const kills = Object.values(report.kills).reduce((a, b) => a + b, 0);
    expect(kills).toBeGreaterThanOrEqual(5);
    expect(report.kills['control-worker']).toBeGreaterThan(0);
    expect(report.kills.watcher).toBeGreaterThan(0);
    expect(report.kills['node-agent']).toBeGreaterThan(0);
    expect(report.temporalRestarts).toBeGreaterThanOrEqual(1);
    expect(report.faults.byCode.RequestLimitExceeded ?? 0).toBeGreaterThan(0);
    // Each invariant, by name, so a failure says which one, with its gist (all of it in the report's working directory).
    const broken = (invariant: string) => report.violations.filter((v) => v.invariant === invariant).map((v) => [v.message, ...(v.gist ?? [])].join('\n    '));
    expect(broken('orphan-eni'), 'ENIs with our tags and no owner').toEqual([]);
    expect(broken('duplicate-attachment-key'), 'two ENIs for one attachment key').toEqual([]);
    expect(broken('convergence'), 'NodeENIs that did not converge within their bound').toEqual([]);
    expect(broken('long-lived-workflow-ended'), 'long-lived workflows that failed or were terminated').toEqual([]);
    expect(broken('long-lived-workflow-failing'), 'long-lived workflows still failing every pass after faults stopped').toEqual([]);
    expect(broken('history-bound'), 'histories over the bound').toEqual([]);
    expect(broken('lifecycle-error'), 'lifecycles the driver could not run').toEqual([]);
    expect(broken('final-state'), 'leftovers at the end').toEqual([]);
    expect(report.longLivedFailures).toBe(0);
    expect(report.enis.orphaned + report.enis.remaining + report.enis.leaked).toBe(0);
    expect(report.lifecycles.completed).toBe(report.lifecycles.planned);
    expect(report.ok).toBe(true);
  }, TIMEOUT_MS);
});

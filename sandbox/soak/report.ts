// The soak's summary: a table for people and one JSON line for tools.
import type { SoakReport } from './engine.js';

const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export function reportTable(r: SoakReport): string {
  const rows: Array<[string, string]> = [
    ['seed (lifecycles, chaos; fault proxy)', `${r.seed}; proxy ${r.proxySeed}`],
    ['duration', s(r.durationMs)],
    ['lifecycles', `${r.lifecycles.completed}/${r.lifecycles.planned} completed, ${r.lifecycles.failed} failed (${r.lifecycles.terminated} instances terminated, ${r.lifecycles.replaced} replaced, ${r.lifecycles.sriov} with SR-IOV)`],
    ['kills: control worker', String(r.kills['control-worker'])],
    ['kills: watcher', String(r.kills.watcher)],
    ['kills: node agent', String(r.kills['node-agent'])],
    ['exits nobody caused (restarted)', `control worker ${r.unexpectedExits['control-worker']}, watcher ${r.unexpectedExits.watcher}, node agent ${r.unexpectedExits['node-agent']}`],
    ['Temporal restarts', String(r.temporalRestarts)],
    ['faults injected', `${r.faults.total}: ${Object.entries(r.faults.byCode).sort().map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}`],
    ['ENIs created / deleted', `${r.enis.created} / ${r.enis.deleted}`],
    ['ENIs leaked (tagged) / orphaned / left at the end', `${r.enis.leaked} / ${r.enis.orphaned} / ${r.enis.remaining}`],
    ['max convergence time', `${s(r.convergence.maxMs)} (${r.convergence.maxStep}; ${r.convergence.steps} steps, bound ${s(r.convergence.stepBoundMs)})`],
    ['max convergence after faults stopped', `${s(r.convergence.maxAfterFaultsStopMs)} (bound ${s(r.convergence.finalBoundMs)})`],
    ['max history events', `${r.history.maxEvents} (${r.history.type} ${r.history.workflowId}; bound ${r.history.bound})`],
    ['long-lived workflow failures', `${r.longLivedFailures} ended Failed/Terminated/TimedOut; ${r.longLivedFailing} still failing passes after faults stopped`],
    ['invariant violations', String(r.violations.length)],
    ['result', r.ok ? 'PASS' : 'FAIL'],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  const valueWidth = Math.max(...rows.map(([, v]) => v.length));
  const row = (k: string, v: string) => `| ${k.padEnd(width)} | ${v.padEnd(valueWidth)} |`;
  const violations = r.violations.flatMap((v) => [`  - ${v.invariant}: ${v.message}`, ...(v.gist ?? []).map((l) => `      ${l}`)]);
  return [
    row('soak', 'figure'),
    `|${'-'.repeat(width + 2)}|${'-'.repeat(valueWidth + 2)}|`,
    ...rows.map(([k, v]) => row(k, v)),
    ...(violations.length ? ['', 'violations:', ...violations, `evidence: ${r.dir}`] : []),
  ].join('\n');
}

/** One line of JSON with the table's figures (evidence stays in the working directory). */
export function reportJsonLine(r: SoakReport): string {
  return JSON.stringify({
    soak: r.ok ? 'pass' : 'fail',
    seed: r.seed,
    proxySeed: r.proxySeed,
    durationMs: r.durationMs,
    lifecycles: r.lifecycles,
    kills: r.kills,
    unexpectedExits: r.unexpectedExits,
    temporalRestarts: r.temporalRestarts,
    faults: r.faults,
    enis: r.enis,
    maxConvergenceMs: r.convergence.maxMs,
    maxConvergenceAfterFaultsStopMs: r.convergence.maxAfterFaultsStopMs,
    maxHistoryEvents: r.history.maxEvents,
    longLivedFailures: r.longLivedFailures,
    longLivedFailing: r.longLivedFailing,
    violations: r.violations.map((v) => `${v.invariant}: ${v.message}`),
    dir: r.ok ? undefined : r.dir,
  });
}

// `npm run soak`: the chaos soak on the real backends (sandbox/soak/engine.ts).
//   npm run soak                                   (100 lifecycles, the long soak)
//   npm run soak -- --lifecycles 20 --kills 10 --seed 42
//   npm run soak -- --short                        (the short soak npm test runs)
// Other options: --concurrency N, --temporal-restarts N, --auth-windows N,
// --auth-window-seconds S, --chaos-seconds S, --step-bound-seconds S,
// --final-bound-seconds S, --history-bound N, --dir DIR, --keep.
// Prints a table and one final JSON line; exits 1 when an invariant failed.
import { parseArgs } from 'node:util';
import { runSoak, SHORT_SOAK, type SoakOptions } from '../sandbox/soak/engine.js';
import { reportJsonLine, reportTable } from '../sandbox/soak/report.js';

const { values } = parseArgs({
  options: {
    lifecycles: { type: 'string' },
    kills: { type: 'string' },
    seed: { type: 'string' },
    concurrency: { type: 'string' },
    'temporal-restarts': { type: 'string' },
    'auth-windows': { type: 'string' },
    'auth-window-seconds': { type: 'string' },
    'chaos-seconds': { type: 'string' },
    'step-bound-seconds': { type: 'string' },
    'final-bound-seconds': { type: 'string' },
    'history-bound': { type: 'string' },
    dir: { type: 'string' },
    keep: { type: 'boolean' },
    short: { type: 'boolean' },
  },
});

function int(name: keyof typeof values, scale = 1): number | undefined {
  const v = values[name];
  if (v === undefined || typeof v !== 'string') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    process.stderr.write(`--${name} must be a non-negative integer, got "${v}"\n`);
    process.exit(2);
  }
  return n * scale;
}

const given: Partial<SoakOptions> = {
  lifecycles: int('lifecycles'),
  kills: int('kills'),
  seed: int('seed'),
  concurrency: int('concurrency'),
  temporalRestarts: int('temporal-restarts'),
  authWindows: int('auth-windows'),
  authWindowMs: int('auth-window-seconds', 1000),
  chaosSpanMs: int('chaos-seconds', 1000),
  stepBoundMs: int('step-bound-seconds', 1000),
  finalBoundMs: int('final-bound-seconds', 1000),
  historyBound: int('history-bound'),
  dir: values.dir,
  keepDir: values.keep,
};
const options: Partial<SoakOptions> = { ...(values.short ? SHORT_SOAK : {}), ...Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) };

// Ctrl-C: stop every process the soak started, then leave.
const abort = new AbortController();
process.once('SIGINT', () => {
  process.stderr.write('[soak] interrupted: stopping every process\n');
  abort.abort();
});
options.signal = abort.signal;

try {
  const report = await runSoak(options);
  process.stdout.write(`\n${reportTable(report)}\n\n${reportJsonLine(report)}\n`);
  process.exit(report.ok ? 0 : 1);
} catch (err) {
  process.stderr.write(`[soak] failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
}

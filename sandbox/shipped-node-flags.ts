// The Node.js flags each component's container runs with (deploy/manifests, and the Helm chart,
// which test/install.test.ts holds to the same output) and the environment the image sets
// (deploy/Dockerfile): processes started from a build get the same, so tests and the benchmark
// measure the memory settings that ship.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { PROJECT_ROOT } from './backends/tools.js';

interface Container {
  args?: string[];
}

let byScript: Map<string, string[]> | undefined;

function load(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const file of ['20-controller.yaml', '30-node-agent.yaml']) {
    const docs = parseAllDocuments(readFileSync(path.join(PROJECT_ROOT, 'deploy', 'manifests', file), 'utf8')).map((d) => d.toJS());
    for (const doc of docs) {
      for (const c of (doc?.spec?.template?.spec?.containers ?? []) as Container[]) {
        const args = c.args ?? [];
        if (args[0] !== 'node') continue;
        const script = args[args.length - 1]!;
        out.set(script.replace(/^dist\//, '').replace(/\.js$/, ''), args.slice(1, -1));
      }
    }
  }
  return out;
}

/**
 * The flags between `node` and the script for entry point `entry` (e.g. workers/control); `as` names
 * the shipped entry point a stand-in represents (the benchmark's node agent). None for an entry point
 * no manifest runs.
 */
export function shippedNodeFlags(entry: string, as?: string): string[] {
  byScript ??= load();
  return byScript.get(as ?? entry) ?? [];
}

let imageEnv: Record<string, string> | undefined;

/** The `ENV KEY=VALUE` lines of the Dockerfile's last stage (the image the components run in). */
export function shippedImageEnv(): Record<string, string> {
  if (imageEnv) return imageEnv;
  const lines = readFileSync(path.join(PROJECT_ROOT, 'deploy', 'Dockerfile'), 'utf8').split('\n').map((l) => l.trim());
  const lastFrom = lines.reduce((last, l, i) => (/^FROM\s/i.test(l) ? i : last), 0);
  const lastStage = lines.slice(lastFrom);
  const out: Record<string, string> = {};
  for (const line of lastStage) {
    const m = /^ENV\s+([A-Za-z_][A-Za-z0-9_]*)=(\S+)$/i.exec(line);
    if (m) out[m[1]!] = m[2]!;
    else if (/^ENV\s/i.test(line)) throw new Error(`deploy/Dockerfile: only ENV KEY=VALUE is understood here, not: ${line}`);
  }
  return (imageEnv = out);
}

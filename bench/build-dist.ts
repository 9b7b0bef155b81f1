// Builds what production runs (npm run build: the compiled JavaScript and the
// prebuilt workflow bundle) into a directory of a harness's own, with the
// simulated nodes' agent entry points beside it, so that the components the
// benchmark measures and the soak kills run as they do in the image (node
// dist/…, no TypeScript loader, no workflow bundling at start-up).
//   node --import tsx bench/build-dist.ts <outDir>
import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { PROJECT_ROOT } from '../sandbox/backends/tools.js';
import { makeJsonLogger } from '../workers/logger.js';
import { WORKFLOWS_DIR } from '../workers/workflow-source.js';

const outDir = path.resolve(process.argv[2] ?? usage());
function usage(): never {
  process.stderr.write('usage: node --import tsx bench/build-dist.ts <outDir>\n');
  process.exit(2);
}

const root = (p: string) => path.join(PROJECT_ROOT, p);
const config = path.join(outDir, 'tsconfig.bench.json');
await mkdir(outDir, { recursive: true });
await writeFile(config, JSON.stringify({
  extends: root('tsconfig.build.json'),
  compilerOptions: { noEmit: false, rootDir: PROJECT_ROOT, outDir },
  // tsconfig.build.json's folders, and the simulated nodes' agent processes (the benchmark's, the soak's).
  include: ['common', 'workflows', 'activities', 'host', 'workers', 'watcher', 'cli', 'bench/node-agent-process.ts', 'sandbox/sim-hypervisor.ts', 'sandbox/sim-node-agent.ts'].map(root),
}, null, 2));
const tsc = spawnSync(process.execPath, [root('node_modules/typescript/bin/tsc'), '-p', config], { stdio: 'inherit' });
if (tsc.status !== 0) process.exit(tsc.status ?? 1);
// Where workers/workflow-source.ts looks for it: next to the compiled workers.
const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_DIR, logger: makeJsonLogger('WARN') });
await writeFile(path.join(outDir, 'workers', 'workflow-bundle.js'), code);
process.stdout.write(`built ${outDir}\n`);

// Prebuilds the workflow bundle for production workers (bundling at start-up is slow).
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { PROJECT_ROOT } from '../sandbox/backends/tools.js';
import { WORKFLOWS_DIR } from '../workers/workflow-source.js';

const BUNDLE_PATH = path.join(PROJECT_ROOT, 'dist', 'workers', 'workflow-bundle.js');

const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_DIR });
await mkdir(path.dirname(BUNDLE_PATH), { recursive: true });
await writeFile(BUNDLE_PATH, code);
process.stdout.write(`wrote ${BUNDLE_PATH} (${(code.length / 1024).toFixed(0)} KiB)\n`);

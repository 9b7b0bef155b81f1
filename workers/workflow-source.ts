// Where the control worker gets its workflow code: a prebuilt bundle in
// production (`npm run build`), the workflows directory in development.
import { existsSync } from 'node:fs';
import path from 'node:path';

export const WORKFLOWS_DIR = path.resolve(import.meta.dirname, '..', 'workflows');
/** Written by `npm run build` next to the compiled workers (dist/workers/); absent when running from source. */
export const BUNDLE_PATH = path.resolve(import.meta.dirname, 'workflow-bundle.js');

export type WorkflowSource = { workflowBundle: { code: string } | { codePath: string } } | { workflowsPath: string };

export function defaultWorkflowSource(): WorkflowSource {
  return existsSync(BUNDLE_PATH) && process.env.NODEENI_WORKFLOWS_FROM_SOURCE !== '1'
    ? { workflowBundle: { codePath: BUNDLE_PATH } }
    : { workflowsPath: WORKFLOWS_DIR };
}

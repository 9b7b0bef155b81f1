// Starts a component from its production entry point as a process of its own:
// from a build as the image runs it, or from the TypeScript source through tsx.
import path from 'node:path';
import { PROJECT_ROOT, startProcess, startTsProcess, type ManagedProcess } from './backends/tools.js';
import { shippedImageEnv, shippedNodeFlags } from './shipped-node-flags.js';

export interface ProcessOptions {
  /** The process's environment (callers put their defaults under it). */
  env?: Record<string, string>;
  /** Appends the process's output to this file. */
  logFile?: string;
  /**
   * A build of the project (npm run build's layout, e.g. bench/build-dist.ts):
   * run the compiled entry point with its prebuilt workflow bundle, as the
   * image does, instead of the TypeScript source through tsx.
   */
  dist?: string;
}

// NODEENI_PROCESS_ECHO=1 shows the processes' log lines in the test output.
const echo = () => process.env.NODEENI_PROCESS_ECHO === '1';

/** `entry` without extension, e.g. workers/control: from `opts.dist` when given, else the source through tsx. */
export function startEntryPoint(name: string, entry: string, opts: ProcessOptions & { env: Record<string, string>; stdin?: boolean; shippedAs?: string }): ManagedProcess {
  const common = { echo: echo(), logFile: opts.logFile, env: opts.env, stdin: opts.stdin };
  // A build runs as the image does: with the Node.js flags its manifest gives it and the image's environment.
  if (opts.dist) {
    return startProcess(name, process.execPath, [...shippedNodeFlags(entry, opts.shippedAs), path.join(opts.dist, `${entry}.js`)],
      { cwd: PROJECT_ROOT, ...common, env: { ...shippedImageEnv(), ...opts.env } });
  }
  return startTsProcess(name, `${entry}.ts`, common);
}

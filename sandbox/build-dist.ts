// Runs bench/build-dist.ts (what `npm run build` makes: compiled JavaScript and
// the prebuilt workflow bundle) into `${dir}/dist`, for harnesses that start
// the components as the image does.
import path from 'node:path';
import { PROJECT_ROOT, startProcess } from './backends/tools.js';

export async function buildDist(dir: string): Promise<string> {
  const out = path.join(dir, 'dist');
  const proc = startProcess('build', process.execPath, ['--import', 'tsx', path.join(PROJECT_ROOT, 'bench', 'build-dist.ts'), out], { cwd: PROJECT_ROOT, logFile: path.join(dir, 'build.log') });
  const code = await new Promise<number | null>((resolve) => proc.child.once('exit', resolve));
  if (code !== 0) throw new Error(`bench/build-dist.ts failed (exit ${code}):\n${proc.tail()}`);
  return out;
}

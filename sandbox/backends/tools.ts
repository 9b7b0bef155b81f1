// Where the pinned tools live (installed by scripts/ensure-tools.sh into the
// ignored .tools/ folder) and small process helpers shared by every backend.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { createWriteStream, existsSync } from 'node:fs';
import path from 'node:path';

export const PROJECT_ROOT = path.resolve(import.meta.dirname, '..', '..');
export const TOOLS_DIR = process.env.NODEENI_TOOLS_DIR ?? path.join(PROJECT_ROOT, '.tools');

export const TOOL = {
  temporal: path.join(TOOLS_DIR, 'venv', 'bin', 'temporal'),
  motoServer: path.join(TOOLS_DIR, 'venv', 'bin', 'moto_server'),
  /** The Python moto is installed in. */
  python: path.join(TOOLS_DIR, 'venv', 'bin', 'python3'),
  kubectl: path.join(TOOLS_DIR, 'venv', 'bin', 'kubectl'),
  kubeApiserver: path.join(TOOLS_DIR, 'bin', 'kube-apiserver'),
  etcd: path.join(TOOLS_DIR, 'bin', 'etcd'),
} as const;

export function requireTool(p: string): string {
  if (!existsSync(p)) {
    throw new Error(`${p} is missing: run "bash scripts/ensure-tools.sh" (npm test and npm run sandbox do this for you)`);
  }
  return p;
}

/** A free TCP port on 127.0.0.1 (the OS picks it; we release it right away). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') return reject(new Error('no port'));
      srv.close(() => resolve(addr.port));
    });
  });
}

export interface ManagedProcess {
  child: ChildProcess;
  /** The last lines the process printed, for error messages. */
  tail(): string;
  stop(): Promise<void>;
}

/** Spawns a long-running server; no shell is involved. */
export function startProcess(name: string, cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; echo?: boolean; logFile?: string; stdin?: boolean } = {}): ManagedProcess {
  const child = spawn(cmd, args, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    // `stdin`: the caller writes to child.stdin; otherwise the process reads nothing.
    stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const log = opts.logFile ? createWriteStream(opts.logFile, { flags: 'a' }) : undefined;
  const collect = (buf: Buffer) => {
    log?.write(buf);
    for (const l of buf.toString().split('\n')) {
      if (!l) continue;
      lines.push(l);
      if (lines.length > 40) lines.shift();
      if (opts.echo) process.stderr.write(`[${name}] ${l}\n`);
    }
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  let exited = false;
  const exitPromise = new Promise<void>((resolve) => child.once('exit', () => { exited = true; resolve(); }));
  return {
    child,
    tail: () => lines.join('\n'),
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => { if (!exited) child.kill('SIGKILL'); }, 10_000);
      await exitPromise;
      clearTimeout(timer);
    },
  };
}

/** Polls `probe` until it resolves true, or fails with the process output. */
export async function waitUntil(what: string, probe: () => Promise<boolean>, opts: { timeoutMs: number; proc?: ManagedProcess }): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    if (opts.proc && opts.proc.child.exitCode !== null) {
      throw new Error(`${what}: process exited with ${opts.proc.child.exitCode}\n${opts.proc.tail()}`);
    }
    try {
      if (await probe()) return;
    } catch (err) {
      lastErr = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what}: not ready after ${opts.timeoutMs} ms (${String(lastErr)})\n${opts.proc?.tail() ?? ''}`);
}

/**
 * Runs one of our TypeScript entry points as a single node process (tsx as a
 * loader, not the tsx CLI, which would put a second process in between and
 * let a SIGKILL miss the real one).
 */
export function startTsProcess(name: string, script: string, opts: Parameters<typeof startProcess>[3] = {}): ManagedProcess {
  return startProcess(name, process.execPath, ['--import', 'tsx', path.resolve(PROJECT_ROOT, script)], { cwd: PROJECT_ROOT, ...opts });
}

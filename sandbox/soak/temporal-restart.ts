// Restarting the Temporal dev server on its database file and its port, as a
// Temporal outage and recovery would look to workers and clients: the first
// server (started by startBackends) is stopped, a new `temporal server
// start-dev` opens the same SQLite file on the same frontend port.
import { TOOL, freePort, requireTool, startProcess, waitUntil, type ManagedProcess } from '../backends/tools.js';
// The same command line as the first start, so a restarted server behaves the same.
import { devServerArgs, namespaceReachable } from '../backends/temporal.js';

export interface RestartableTemporal {
  /** host:port, the same across restarts. */
  readonly address: string;
  readonly restarts: number;
  /** Stops the running server (SIGTERM, or SIGKILL when `kill`) and starts a new one on the same file and port; resolves when it answers. */
  restart(opts?: { kill?: boolean; downMs?: number }): Promise<{ downMs: number }>;
  stop(): Promise<void>;
}

export function restartableTemporal(first: { address: string; namespace: string; stop(): Promise<void> }, dbFile: string, opts: { logFile?: string } = {}): RestartableTemporal {
  const [host, portText] = first.address.split(':');
  const port = Number(portText);
  let current: { stop(): Promise<void>; kill?(): Promise<void> } = first;
  let restarts = 0;

  const startOnce = async (): Promise<ManagedProcess> => {
    const args = devServerArgs({ ip: host ?? '127.0.0.1', port, uiPort: await freePort(), namespace: first.namespace, dbFile });
    const proc = startProcess('temporal', requireTool(TOOL.temporal), args, { logFile: opts.logFile });
    try {
      await waitUntil('restarted temporal dev server', () => namespaceReachable(first.address, first.namespace), { timeoutMs: 60_000, proc });
    } catch (err) {
      await proc.stop();
      throw err;
    }
    return proc;
  };

  return {
    address: first.address,
    get restarts() { return restarts; },
    async restart(o = {}) {
      const t0 = Date.now();
      if (o.kill && current.kill) await current.kill();
      else await current.stop();
      if (o.downMs) await new Promise((r) => setTimeout(r, o.downMs));
      // The port was just released; another process could grab it in between (then this fails loudly).
      let lastErr: unknown;
      for (let attempt = 1; attempt <= 3; attempt++) {
        try {
          const proc = await startOnce();
          current = { stop: () => proc.stop(), kill: async () => { proc.child.kill('SIGKILL'); await proc.stop(); } };
          restarts++;
          return { downMs: Date.now() - t0 };
        } catch (err) {
          lastErr = err;
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
      throw lastErr;
    },
    stop: () => current.stop(),
  };
}

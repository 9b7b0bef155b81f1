// Restarting the Temporal dev server on its database file and its port, as a
// Temporal outage and recovery would look to workers and clients: the first
// server (started by startBackends) is stopped, a new `temporal server
// start-dev` opens the same SQLite file on the same frontend port.
import { Connection } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { ALL_SEARCH_ATTRIBUTES } from '../../common/search-attributes.js';
import { TOOL, freePort, requireTool, startProcess, waitUntil, type ManagedProcess } from '../backends/tools.js';

// The same dynamic config the backends start the dev server with (sandbox/backends/temporal.ts).
const DYNAMIC_CONFIG = [
  'frontend.enableServerVersionCheck=false',
  'frontend.enableUpdateWorkflowExecution=true',
  'frontend.enableUpdateWorkflowExecutionAsyncAccepted=true',
];

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
    const args = [
      'server', 'start-dev',
      '--ip', host ?? '127.0.0.1',
      '--port', String(port),
      '--ui-port', String(await freePort()),
      '--namespace', first.namespace,
      '--log-level', 'warn',
      '--ui-disable-news-fetch',
      '--headless',
      '--db-filename', dbFile,
      ...ALL_SEARCH_ATTRIBUTES.flatMap((key) => ['--search-attribute', `${key.name}=${TypedSearchAttributes.toMetadataType(key.type)}`]),
      ...DYNAMIC_CONFIG.flatMap((kv) => ['--dynamic-config-value', kv]),
    ];
    const proc = startProcess('temporal', requireTool(TOOL.temporal), args, { logFile: opts.logFile });
    try {
      await waitUntil('restarted temporal dev server', () => reachable(first.address, first.namespace), { timeoutMs: 60_000, proc });
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

async function reachable(address: string, namespace: string): Promise<boolean> {
  const connection = await Connection.connect({ address, connectTimeout: '2s' });
  try {
    await connection.workflowService.getSystemInfo({});
    await connection.workflowService.describeNamespace({ namespace });
    return true;
  } finally {
    await connection.close();
  }
}

// The Temporal dev server (`temporal server start-dev` from the pinned CLI) as
// a real server process on free loopback ports. We spawn it ourselves rather
// than through @temporalio/testing, whose 5 s startup limit is too short on a
// loaded 2-core machine.
import { Connection } from '@temporalio/client';
import { TypedSearchAttributes, type SearchAttributeType } from '@temporalio/common';
// Exported by the SDK precisely so tests can register search attributes.
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes.js';
import { ALL_SEARCH_ATTRIBUTES } from '../../common/search-attributes.js';
import { TOOL, freePort, requireTool, startProcess, waitUntil } from './tools.js';

export interface TemporalServer {
  /** host:port of the frontend gRPC service. */
  address: string;
  namespace: string;
  /** Set when started with `ui: true`. */
  uiUrl?: string;
  /** Set when started with `metrics: true`: the server's Prometheus endpoint. */
  metricsUrl?: string;
  stop(): Promise<void>;
}

export interface TemporalOptions {
  /** SQLite file that keeps workflows across restarts; in-memory when absent. */
  dbFile?: string;
  ui?: boolean;
  echo?: boolean;
  namespace?: string;
  /** More `key=value` dynamic config settings, e.g. lowered limits for a test. */
  dynamicConfig?: string[];
  /** Serve the server's Prometheus metrics on a free port (TemporalServer.metricsUrl). */
  metrics?: boolean;
}

const READY_TIMEOUT_MS = 60_000;

// What the SDK's own dev-server launcher sets, so updates work as in production.
const DYNAMIC_CONFIG = [
  'frontend.enableServerVersionCheck=false',
  'frontend.enableUpdateWorkflowExecution=true',
  'frontend.enableUpdateWorkflowExecutionAsyncAccepted=true',
  'matching.numTaskqueueReadPartitions=1',
  'matching.numTaskqueueWritePartitions=1',
];

/**
 * Free ports are picked, released and then bound by the server, and the dev
 * server picks more ports of its own: another process can take one in
 * between. A start that fails that way is tried again on fresh ports.
 */
export async function startTemporal(opts: TemporalOptions = {}): Promise<TemporalServer> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startTemporalOnce(opts);
    } catch (err) {
      if (attempt >= 3 || !String(err).includes('process exited')) throw err;
    }
  }
}

async function startTemporalOnce(opts: TemporalOptions): Promise<TemporalServer> {
  const namespace = opts.namespace ?? 'default';
  const [port, uiPort] = [await freePort(), await freePort()];
  const metricsPort = opts.metrics ? await freePort() : undefined;
  const address = `127.0.0.1:${port}`;
  const args = devServerArgs({ ip: '127.0.0.1', port, uiPort, namespace, ui: opts.ui, dbFile: opts.dbFile, dynamicConfig: opts.dynamicConfig, metricsPort });
  const proc = startProcess('temporal', requireTool(TOOL.temporal), args, { echo: opts.echo });
  try {
    await waitUntil('temporal dev server', () => namespaceReachable(address, namespace), { timeoutMs: READY_TIMEOUT_MS, proc });
    await registerSearchAttributes(address, namespace);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return {
    address,
    namespace,
    uiUrl: opts.ui ? `http://127.0.0.1:${uiPort}` : undefined,
    metricsUrl: metricsPort ? `http://127.0.0.1:${metricsPort}/metrics` : undefined,
    stop: () => proc.stop(),
  };
}

/** The dev server's command line, shared with the soak's restarts (sandbox/soak/temporal-restart.ts). */
export function devServerArgs(o: { ip: string; port: number; uiPort: number; namespace: string; ui?: boolean; dbFile?: string; dynamicConfig?: string[]; metricsPort?: number }): string[] {
  return [
    'server', 'start-dev',
    '--ip', o.ip,
    '--port', String(o.port),
    '--ui-port', String(o.uiPort),
    '--namespace', o.namespace,
    '--log-level', 'warn',
    '--ui-disable-news-fetch',
    ...(o.ui ? [] : ['--headless']),
    ...(o.dbFile ? ['--db-filename', o.dbFile] : []),
    ...(o.metricsPort ? ['--metrics-port', String(o.metricsPort)] : []),
    ...ALL_SEARCH_ATTRIBUTES.flatMap((key) => ['--search-attribute', `${key.name}=${TypedSearchAttributes.toMetadataType(key.type)}`]),
    ...[...DYNAMIC_CONFIG, ...(o.dynamicConfig ?? [])].flatMap((kv) => ['--dynamic-config-value', kv]),
  ];
}

/** The frontend answers and the namespace exists. */
export async function namespaceReachable(address: string, namespace: string): Promise<boolean> {
  const connection = await Connection.connect({ address, connectTimeout: '2s' });
  try {
    await connection.workflowService.getSystemInfo({});
    await connection.workflowService.describeNamespace({ namespace });
    return true;
  } finally {
    await connection.close();
  }
}

/**
 * `--search-attribute` only takes effect when the namespace is created, so a
 * server reopening an existing db file gets any missing attributes here.
 */
function indexedValueType(type: SearchAttributeType) {
  const encoded = encodeSearchAttributeIndexedValueType(type);
  if (encoded === undefined) throw new Error(`no indexed value type for search attribute type ${type}`);
  return encoded;
}

async function registerSearchAttributes(address: string, namespace: string): Promise<void> {
  const connection = await Connection.connect({ address });
  try {
    const existing = await connection.operatorService.listSearchAttributes({ namespace });
    const missing = ALL_SEARCH_ATTRIBUTES.filter((key) => !(key.name in (existing.customAttributes ?? {})));
    if (missing.length === 0) return;
    await connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(missing.map((key) => [key.name, indexedValueType(key.type)])),
    });
  } finally {
    await connection.close();
  }
}

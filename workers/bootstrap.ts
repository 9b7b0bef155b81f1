// One place for what every worker process needs: the Temporal runtime
// (JSON logs, Prometheus metrics), the connection, the workers, and a
// graceful drain on SIGTERM/SIGINT (modelled on hashintel/hash's worker-bootstrap).
import { NativeConnection, Runtime, Worker, makeTelemetryFilterString, type WorkerOptions } from '@temporalio/worker';
import type { LogLevel, Logger } from '@temporalio/common';
import { HISTOGRAM_BUCKETS } from '../common/metrics.js';
import { autoHeartbeat } from './heartbeat-interceptor.js';
import { dataConverter } from './payload-codec.js';
import { makeJsonLogger } from './logger.js';
import { TemporalStartupError, explainConnectFailure, nativeConnectionOptions, watchApiKeyFile, type TemporalSettings } from './temporal-connection.js';
import { checkTemporal, type StartupCheckOptions } from './temporal-startup.js';

export interface RuntimeSettings {
  logLevel?: LogLevel;
  /**
   * `host:port` for the Prometheus scrape endpoint (`/metrics`); none when omitted. It serves the SDK's
   * metrics (prefixed `temporal_`) and ours (`nodeeni_`, common/metrics.ts, not prefixed).
   */
  metricsBindAddress?: string;
}

let installed: Logger | undefined;

/** Installs the process-wide runtime once; later calls return the same logger. */
export function installRuntime(settings: RuntimeSettings = {}): Logger {
  if (installed) return installed;
  const logger = makeJsonLogger(settings.logLevel ?? 'INFO');
  Runtime.install({
    logger,
    shutdownSignals: [],
    telemetryOptions: {
      logging: { forward: {}, filter: makeTelemetryFilterString({ core: 'WARN', other: 'ERROR' }) },
      metrics: settings.metricsBindAddress ? { prometheus: { bindAddress: settings.metricsBindAddress, histogramBucketOverrides: HISTOGRAM_BUCKETS } } : undefined,
    },
  });
  installed = logger;
  return logger;
}

/** Address, namespace, TLS and API key: see workers/temporal-connection.ts. */
export type ConnectionSettings = TemporalSettings;

/**
 * The workers' connection, with the TLS and API-key settings; a failure is a
 * TemporalStartupError whose one line says what to fix.
 */
export async function connect(settings: ConnectionSettings, logger?: Logger): Promise<NativeConnection> {
  let connection: NativeConnection;
  try {
    connection = await NativeConnection.connect(nativeConnectionOptions(settings));
  } catch (err) {
    throw new TemporalStartupError([await explainConnectFailure(settings, err)]);
  }
  if (settings.apiKeyFile) watchApiKeyFile(connection, settings, logger);
  return connection;
}

/** A worker connection that passed the start-up checks (namespace, search attributes); closed again when they fail. */
export async function connectChecked(settings: ConnectionSettings, checks: Omit<StartupCheckOptions, 'address' | 'namespace'>): Promise<NativeConnection> {
  const connection = await connect(settings, checks.logger);
  try {
    await checkTemporal(connection, { ...checks, address: settings.address, namespace: settings.namespace });
  } catch (err) {
    await connection.close().catch(() => undefined);
    throw err;
  }
  return connection;
}

export type WorkerSpec = Omit<WorkerOptions, 'connection' | 'namespace'>;

export interface RunningWorkers {
  workers: Worker[];
  /** Resolves when every worker stopped. */
  done: Promise<void>;
  /** Stops polling, lets running activities finish, closes the connection. */
  shutdown(): Promise<void>;
}

export async function startWorkers(connection: NativeConnection, namespace: string, specs: WorkerSpec[]): Promise<RunningWorkers> {
  const workers = await Promise.all(
    specs.map((s) => Worker.create({ dataConverter, ...s, connection, namespace, interceptors: { ...s.interceptors, activity: [autoHeartbeat, ...(s.interceptors?.activity ?? [])] } })),
  );
  const done = Promise.all(workers.map((w) => w.run())).then(() => undefined);
  let closing: Promise<void> | undefined;
  return {
    workers,
    done,
    shutdown() {
      closing ??= (async () => {
        for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
        await done;
        await connection.close();
      })();
      return closing;
    },
  };
}

/** Shuts down on SIGTERM/SIGINT (Kubernetes sends SIGTERM, then waits terminationGracePeriodSeconds). */
export function shutdownOnSignals(logger: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info('shutting down', { signal: sig });
    stop().then(
      () => process.exit(0),
      (err) => {
        logger.error('shutdown failed', { error: String(err) });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

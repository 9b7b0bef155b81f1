// Starts all real backends (Temporal, moto, kube-apiserver + etcd) together.
import path from 'node:path';
import { startKube, type KubeServer } from './kube.js';
import { startMoto, type MotoServer } from './moto.js';
import { startTemporal, type TemporalServer } from './temporal.js';

export type { KubeServer } from './kube.js';
export type { MotoServer } from './moto.js';
export type { TemporalServer } from './temporal.js';

export interface Backends {
  temporal: TemporalServer;
  moto: MotoServer;
  kube: KubeServer;
  stop(): Promise<void>;
}

export interface BackendsOptions {
  /** Working directory; kube keeps its data under `${dir}/kube`. */
  dir: string;
  echo?: boolean;
  temporalDbFile?: string;
  ui?: boolean;
  /** More `key=value` dynamic config for the Temporal dev server (a benchmark's raised poller limit). */
  temporalDynamicConfig?: string[];
  /** Serve the Temporal dev server's Prometheus metrics (the benchmark's --profile). */
  temporalMetrics?: boolean;
  /** Start moto through this Python script (moto.ts MotoOptions.wrapper). */
  motoWrapper?: string;
}

export async function startBackends(opts: BackendsOptions): Promise<Backends> {
  const results = await Promise.allSettled([
    startTemporal({ dbFile: opts.temporalDbFile, ui: opts.ui, echo: opts.echo, dynamicConfig: opts.temporalDynamicConfig, metrics: opts.temporalMetrics }),
    startMoto({ echo: opts.echo, wrapper: opts.motoWrapper }),
    startKube({ dir: path.join(opts.dir, 'kube'), echo: opts.echo }),
  ] as const);
  const [temporal, moto, kube] = results;
  if (temporal.status === 'fulfilled' && moto.status === 'fulfilled' && kube.status === 'fulfilled') {
    const servers = { temporal: temporal.value, moto: moto.value, kube: kube.value };
    return { ...servers, stop: () => stopAll(Object.values(servers)) };
  }
  // Do not leave the ones that did start running behind a failed start.
  await stopAll(results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : [])));
  const failures = results.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
  throw new AggregateError(failures, `backends failed to start:\n${failures.map(String).join('\n')}`);
}

async function stopAll(servers: Array<{ stop(): Promise<void> }>): Promise<void> {
  const results = await Promise.allSettled(servers.map((s) => s.stop()));
  const failures = results.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
  if (failures.length > 0) throw new AggregateError(failures, 'stopping backends failed');
}

// Starts the real backends once per test run and hands their addresses to the
// test files through provide/inject (see test/support/backends.ts).
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startBackends } from '../sandbox/backends/index.js';
import { startFaultProxy } from '../sandbox/ec2/fault-proxy.js';
import { PROJECT_ROOT } from '../sandbox/backends/tools.js';

export interface ProvidedBackends {
  temporalAddress: string;
  temporalNamespace: string;
  /** moto itself, for assertions that must bypass fault injection. */
  motoEndpoint: string;
  /** Where the system under test sends EC2 calls: our fault-injecting proxy in front of moto. */
  ec2Endpoint: string;
  /** `etcdUrl`: the API server's etcd, for tests that store an object as an older CRD left it (not set by benchmarks). */
  kube: { server: string; token: string; caData: string; kubeconfigPath: string; etcdUrl?: string };
}

declare module 'vitest' {
  export interface ProvidedContext {
    backends: ProvidedBackends;
  }
}

export default async function setup({ provide }: TestProject): Promise<() => Promise<void>> {
  const tmpRoot = path.join(PROJECT_ROOT, '.tmp');
  await mkdir(tmpRoot, { recursive: true });
  const dir = await mkdtemp(path.join(tmpRoot, 'backends-'));
  const started = Date.now();
  const backends = await startBackends({ dir, echo: process.env.NODEENI_BACKENDS_ECHO === '1' }).catch(async (err: unknown) => {
    await rm(dir, { recursive: true, force: true });
    throw err;
  });
  console.log(`[global-setup] backends ready in ${Date.now() - started} ms (${dir})`);

  const proxy = await startFaultProxy({ target: backends.moto.endpoint });
  const motoEndpoint = backends.moto.endpoint;

  provide('backends', {
    temporalAddress: backends.temporal.address,
    temporalNamespace: backends.temporal.namespace,
    motoEndpoint,
    ec2Endpoint: proxy.endpoint,
    kube: {
      server: backends.kube.server,
      token: backends.kube.token,
      caData: backends.kube.caData,
      kubeconfigPath: backends.kube.kubeconfigPath,
      etcdUrl: backends.kube.etcdUrl,
    },
  });

  return async () => {
    try {
      await proxy.stop();
      await backends.stop();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
}

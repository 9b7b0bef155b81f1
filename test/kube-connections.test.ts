// The components' Kubernetes API clients keep their TLS connections to the API server
// (activities/kube/pooled-kube-config.ts) instead of a handshake per request, on the real
// kube-apiserver; a rotated CA file gets a new connection.
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PooledKubeConfig } from '../activities/kube/pooled-kube-config.js';
import { getBackends, kubeConfigFor } from './support/backends.js';

const REQUESTS = 20;
let dir: string;
let handshakes = 0;
const connect = tls.connect;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'nodeeni-kube-conn-'));
  // undici opens its sockets with tls.connect from node:tls: count them.
  tls.connect = ((...args: Parameters<typeof tls.connect>) => {
    handshakes++;
    return connect.apply(tls, args);
  }) as typeof tls.connect;
});
afterAll(async () => {
  tls.connect = connect;
  await rm(dir, { recursive: true, force: true });
});

/** Handshakes made by `n` sequential reads through an API client of `kc`. */
async function handshakesFor(kc: KubeConfig, n = REQUESTS): Promise<number> {
  const core = kc.makeApiClient(CoreV1Api);
  const before = handshakes;
  for (let i = 0; i < n; i++) await core.readNamespace({ name: 'default' });
  return handshakes - before;
}

/** A config with a bearer token, as in a pod, and the CA given as a file. */
async function withCaFile(make: () => KubeConfig): Promise<{ kc: KubeConfig; caFile: string }> {
  const admin = kubeConfigFor(getBackends());
  const cluster = admin.getCurrentCluster()!;
  const caFile = path.join(dir, `ca-${Math.random().toString(36).slice(2)}.crt`);
  await writeFile(caFile, Buffer.from(cluster.caData!, 'base64'));
  const kc = make();
  kc.loadFromOptions({
    clusters: [{ name: cluster.name, server: cluster.server, caFile, skipTLSVerify: false }],
    users: [admin.getCurrentUser()!],
    contexts: [{ name: 'c', cluster: cluster.name, user: admin.getCurrentUser()!.name }],
    currentContext: 'c',
  });
  return { kc, caFile };
}

describe('connections to the API server', () => {
  it(`client-node as shipped makes a handshake per request (${REQUESTS} for ${REQUESTS}): what the pooled config is for`, async () => {
    const { kc } = await withCaFile(() => new KubeConfig());
    expect(await handshakesFor(kc)).toBe(REQUESTS);
  });

  it(`the pooled config makes one or two for ${REQUESTS} sequential requests, and none for more`, async () => {
    const { kc } = await withCaFile(() => new PooledKubeConfig());
    // A second connection may open while the first response's socket is not yet back in the pool.
    const first = await handshakesFor(kc);
    expect(first).toBeGreaterThanOrEqual(1);
    expect(first).toBeLessThanOrEqual(2);
    expect(await handshakesFor(kc)).toBe(0);
  });

  it('requests at once share the pool, and a rotated CA file gets a new connection', async () => {
    const { kc, caFile } = await withCaFile(() => new PooledKubeConfig());
    const core = kc.makeApiClient(CoreV1Api);
    const before = handshakes;
    await Promise.all(Array.from({ length: 10 }, () => core.readNamespace({ name: 'default' })));
    // Concurrent requests may each need a connection of the one pool; later ones reuse them.
    const concurrent = handshakes - before;
    expect(concurrent).toBeGreaterThanOrEqual(1);
    expect(concurrent).toBeLessThanOrEqual(10);
    expect(await handshakesFor(kc, 10)).toBe(0);

    const later = new Date(Date.now() + 60_000);
    await utimes(caFile, later, later);
    const rotated = await handshakesFor(kc, 10);
    expect(rotated).toBeGreaterThanOrEqual(1);
    expect(rotated).toBeLessThanOrEqual(2);
    expect(await handshakesFor(kc, 10)).toBe(0);
  });
});

// Connecting to a production-like Temporal: TLS with a private CA, mTLS, a
// server name, an API key — through real TLS-terminating proxies in front of
// the test run's dev server, with the real entry points as child processes.
// And the start-up checks against the dev server itself: a missing namespace,
// a namespace without our search attributes (created here with the temporal
// CLI), the printed fix, and the control worker's create switch.
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { CustomObjectsApi } from '@kubernetes/client-node';
import { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_GROUP, API_VERSION, FINALIZER, NODEENI_PLURAL, entityWorkflowId, nodeTaskQueue } from '../common/names.js';
import { ALL_SEARCH_ATTRIBUTES } from '../common/search-attributes.js';
import { PROJECT_ROOT, TOOL, startTsProcess, type ManagedProcess } from '../sandbox/backends/tools.js';
import { connect, installRuntime } from '../workers/bootstrap.js';
import { connectClient, type TemporalSettings } from '../workers/temporal-connection.js';
import { searchAttributesFix } from '../workers/temporal-startup.js';
import { getBackends, kubeConfigFor } from './support/backends.js';
import { NAMED_SERVER, findOpenssl, makePki, type Pki } from './support/pki.js';
import { startApiKeyProxy, startTlsProxy, type ApiKeyProxy, type TlsProxy } from './support/tls-proxy.js';

const run = promisify(execFile);
const b = getBackends();
const runId = Math.random().toString(36).slice(2, 8);
const API_KEY = `key-${runId}-secret`;

let pki: Pki;
let dir: string;
let mtlsProxy: TlsProxy;
let namedProxy: TlsProxy;
let keyProxy: ApiKeyProxy;
let admin: Connection;
const procs: ManagedProcess[] = [];

beforeAll(async () => {
  // No fallback: without openssl there are no certificates to test with (it is part of the base image).
  if (!findOpenssl()) throw new Error('openssl is not on PATH: the TLS tests make their certificates with it');
  await run('openssl', ['version']);
  dir = await mkdtemp(path.join(os.tmpdir(), 'temporal-tls-'));
  pki = await makePki(dir);
  mtlsProxy = await startTlsProxy({ target: b.temporalAddress, certFile: pki.serverCert, keyFile: pki.serverKey, clientCaFile: pki.caCert });
  namedProxy = await startTlsProxy({ target: b.temporalAddress, certFile: pki.namedServerCert, keyFile: pki.namedServerKey });
  keyProxy = await startApiKeyProxy({ target: b.temporalAddress, certFile: pki.serverCert, keyFile: pki.serverKey, apiKey: API_KEY });
  admin = await Connection.connect({ address: b.temporalAddress });
});

afterAll(async () => {
  await Promise.allSettled(procs.map((p) => p.stop()));
  await Promise.allSettled([mtlsProxy?.close(), namedProxy?.close(), keyProxy?.close(), admin?.close()]);
});

function start(name: string, script: string, env: NodeJS.ProcessEnv): ManagedProcess {
  const p = startTsProcess(name, script, { env: { LOG_LEVEL: 'INFO', NODEENI_WORKFLOWS_FROM_SOURCE: '1', ...env } });
  procs.push(p);
  return p;
}

async function nodeAgent(env: NodeJS.ProcessEnv): Promise<ManagedProcess> {
  const hostRoot = await mkdtemp(path.join(dir, 'host-'));
  return start('node-agent', 'workers/node-agent.ts', { NODE_NAME: `tls-${runId}`, HOST_ROOT: hostRoot, TEMPORAL_NAMESPACE: b.temporalNamespace, ...env });
}

function watcher(env: NodeJS.ProcessEnv): ManagedProcess {
  return start('watcher', 'watcher/main.ts', {
    KUBECONFIG: b.kube.kubeconfigPath,
    TEMPORAL_NAMESPACE: b.temporalNamespace,
    // Only NodeENIs this file makes, on a task queue nobody serves.
    NODEENI_LABEL_SELECTOR: `nodeeni-tls=${runId}`,
    CONTROL_TASK_QUEUE: `tls-control-${runId}`,
    ...env,
  });
}

function controlWorker(env: NodeJS.ProcessEnv): ManagedProcess {
  return start('control-worker', 'workers/control.ts', {
    KUBECONFIG: b.kube.kubeconfigPath,
    CONTROL_TASK_QUEUE: `tls-control-${runId}`,
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL_EC2: b.ec2Endpoint,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    ...env,
  });
}

/** Resolves with the process output once `pattern` shows in it; fails if the process exits first. */
async function waitForLine(p: ManagedProcess, pattern: RegExp, timeoutMs = 90_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const line = p.tail().split('\n').find((l) => pattern.test(l));
    if (line) return line;
    if (p.child.exitCode !== null) throw new Error(`exited with ${p.child.exitCode} before ${pattern}:\n${p.tail()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no ${pattern} within ${timeoutMs} ms:\n${p.tail()}`);
}

/** The exit code and the lines that say why it could not start. */
async function failure(p: ManagedProcess, timeoutMs = 90_000): Promise<{ code: number | null; lines: string[] }> {
  const code = await new Promise<number | null>((resolve, reject) => {
    if (p.child.exitCode !== null) return resolve(p.child.exitCode);
    const timer = setTimeout(() => reject(new Error(`still running after ${timeoutMs} ms:\n${p.tail()}`)), timeoutMs);
    p.child.once('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  const lines = p
    .tail()
    .split('\n')
    .flatMap((l) => {
      try {
        const o = JSON.parse(l) as { level?: string; msg?: string };
        return o.level === 'ERROR' && o.msg ? [o.msg] : [];
      } catch {
        return [];
      }
    });
  return { code, lines };
}

async function eventually(what: string, probe: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await probe()) return;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms (${String(last)})`);
}

async function pollers(taskQueue: string, type: temporal.api.enums.v1.TaskQueueType, namespace = b.temporalNamespace): Promise<number> {
  const res = await admin.workflowService.describeTaskQueue({ namespace, taskQueue: { name: taskQueue }, taskQueueType: type });
  return res.pollers?.length ?? 0;
}

const ACTIVITY = temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY;

describe('TLS to Temporal through a TLS-terminating proxy', () => {
  it('the node agent connects with a private CA and a client certificate (mTLS) and polls its task queue', async () => {
    const handshakesBefore = mtlsProxy.handshakes.length;
    const agent = await nodeAgent({
      TEMPORAL_ADDRESS: mtlsProxy.address,
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.caCert,
      TEMPORAL_TLS_CLIENT_CERT_PATH: pki.clientCert,
      TEMPORAL_TLS_CLIENT_KEY_PATH: pki.clientKey,
    });
    const started = await waitForLine(agent, /"node agent started"/);
    expect(started).toContain(`client certificate ${pki.clientCert}`);
    await eventually('the agent polls node-<name> through the proxy', async () => (await pollers(nodeTaskQueue(`tls-${runId}`), ACTIVITY)) > 0);
    // TLS really ran, and the proxy verified the client certificate against the CA.
    expect(mtlsProxy.handshakes.slice(handshakesBefore).some((h) => h.clientCn === 'client')).toBe(true);
    await agent.stop();
  });

  it('a wrong CA, or no client certificate where one is required: the agent exits non-zero with one line saying which', async () => {
    const wrongCa = await nodeAgent({
      TEMPORAL_ADDRESS: mtlsProxy.address,
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.otherCaCert,
      TEMPORAL_TLS_CLIENT_CERT_PATH: pki.clientCert,
      TEMPORAL_TLS_CLIENT_KEY_PATH: pki.clientKey,
    });
    const noCert = await nodeAgent({ TEMPORAL_ADDRESS: mtlsProxy.address, TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.caCert });
    const [a, c] = [await failure(wrongCa), await failure(noCert)];
    console.log(`wrong CA: ${a.lines.join('\n')}\nno client certificate: ${c.lines.join('\n')}`);
    expect(a.code).not.toBe(0);
    expect(a.lines).toHaveLength(1);
    expect(a.lines[0]).toMatch(new RegExp(`^node agent cannot start: cannot connect to Temporal at ${mtlsProxy.address} \\(TLS, CA ${pki.otherCaCert}`));
    expect(a.lines[0]).toContain('the server certificate is not signed by the CA in TEMPORAL_TLS_SERVER_CA_CERT_PATH');
    expect(c.code).not.toBe(0);
    expect(c.lines).toHaveLength(1);
    expect(c.lines[0]).toContain('the server wants a client certificate: set TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH');
  });

  it('the watcher connects with TEMPORAL_TLS_SERVER_NAME and starts an entity workflow through TLS; without the name it fails clearly', async () => {
    const tlsEnv = { TEMPORAL_ADDRESS: namedProxy.address, TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.caCert };
    // The proxy's certificate is valid for temporal.nodeeni.test only, not for 127.0.0.1.
    const nameless = watcher(tlsEnv);
    const w = watcher({ ...tlsEnv, TEMPORAL_TLS_SERVER_NAME: NAMED_SERVER });
    await waitForLine(w, /"watcher started"/);

    const kc = kubeConfigFor(b);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const name = `tls-${runId}`;
    const obj = (await custom.createClusterCustomObject({
      group: API_GROUP,
      version: API_VERSION,
      plural: NODEENI_PLURAL,
      body: {
        apiVersion: `${API_GROUP}/${API_VERSION}`,
        kind: 'NodeENI',
        metadata: { name, labels: { 'nodeeni-tls': runId } },
        spec: { nodeSelector: { 'nodeeni-tls': runId }, subnetNames: ['multus-a'], securityGroupNames: ['multus-sg'] },
      },
    })) as { metadata: { uid: string } };
    const workflowId = entityWorkflowId(name, obj.metadata.uid);
    try {
      // The watcher's signalWithStart went through the TLS proxy to the dev server.
      await eventually('the watcher started the entity workflow', async () => {
        const d = await admin.workflowService.describeWorkflowExecution({ namespace: b.temporalNamespace, execution: { workflowId } });
        return d.workflowExecutionInfo?.type?.name === 'nodeEniEntity';
      });
    } finally {
      await w.stop();
      await admin.workflowService
        .terminateWorkflowExecution({ namespace: b.temporalNamespace, workflowExecution: { workflowId }, reason: 'test cleanup' })
        .catch(() => undefined);
      // Nobody runs the entity here: take the watcher's finalizer off ourselves.
      const current = (await custom.getClusterCustomObject({ group: API_GROUP, version: API_VERSION, plural: NODEENI_PLURAL, name })) as { metadata: { finalizers?: string[] } };
      if (current.metadata.finalizers?.includes(FINALIZER)) {
        await custom.patchClusterCustomObject({ group: API_GROUP, version: API_VERSION, plural: NODEENI_PLURAL, name, body: [{ op: 'remove', path: '/metadata/finalizers' }] });
      }
      await custom.deleteClusterCustomObject({ group: API_GROUP, version: API_VERSION, plural: NODEENI_PLURAL, name });
    }

    const f = await failure(nameless);
    console.log(`watcher without the server name: ${f.lines.join('\n')}`);
    expect(f.code).not.toBe(0);
    expect(f.lines).toHaveLength(1);
    expect(f.lines[0]).toMatch(/^watcher cannot start: cannot connect to Temporal at .*: set TEMPORAL_TLS_SERVER_NAME to a name it is valid for$/);
  });

  it('an API key from a mounted file is sent as a bearer token: the node agent passes the proxy’s check and polls; a wrong key is a clear failure', async () => {
    const keyFile = path.join(dir, 'api-key');
    await writeFile(keyFile, `${API_KEY}\n`, { mode: 0o600 });
    const seenBefore = keyProxy.seen.length;
    const agent = await nodeAgent({ NODE_NAME: `key-${runId}`, TEMPORAL_ADDRESS: keyProxy.address, TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.caCert, TEMPORAL_API_KEY_FILE: keyFile });
    const started = await waitForLine(agent, /"node agent started"/);
    expect(started).toContain(`API key from ${keyFile}`);
    expect(started).not.toContain(API_KEY);
    await eventually('the agent polls through the API-key proxy', async () => (await pollers(nodeTaskQueue(`key-${runId}`), ACTIVITY)) > 0);
    const seen = keyProxy.seen.slice(seenBefore);
    expect(seen.length).toBeGreaterThan(2);
    expect(new Set(seen)).toEqual(new Set([`Bearer ${API_KEY}`]));
    await agent.stop();
    expect(agent.tail()).not.toContain(API_KEY);

    const wrongFile = path.join(dir, 'wrong-key');
    await writeFile(wrongFile, 'not-the-key');
    const wrong = await nodeAgent({ NODE_NAME: `key-${runId}`, TEMPORAL_ADDRESS: keyProxy.address, TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.caCert, TEMPORAL_API_KEY_FILE: wrongFile });
    const f = await failure(wrong);
    expect(f.code).not.toBe(0);
    expect(f.lines).toEqual([expect.stringMatching(/^node agent cannot start: cannot connect to Temporal at .*Request unauthorized.* — the server rejected the API key \(TEMPORAL_API_KEY_FILE\)$/)]);
    expect(wrong.tail()).not.toContain('not-the-key');
  });

  it('a key that may not list search attributes: the watcher says it cannot check them, and starts', async () => {
    const listPath = '/temporal.api.operatorservice.v1.OperatorService/ListSearchAttributes';
    keyProxy.denied.add(listPath);
    try {
      const w = watcher({ TEMPORAL_ADDRESS: keyProxy.address, TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.caCert, TEMPORAL_API_KEY: API_KEY });
      const warning = JSON.parse(await waitForLine(w, /cannot check the custom search attributes/)) as { level: string; msg: string };
      expect(warning.level).toBe('WARN');
      expect(warning.msg).toMatch(/not allowed for this API key\); continuing — make sure these exist: NodeENI \(Keyword\), NodeName \(Keyword\), ENIId \(Keyword\)$/);
      await waitForLine(w, /"watcher started"/);
      await w.stop();
    } finally {
      keyProxy.denied.delete(listPath);
    }
  });

  it('the CLI sends TEMPORAL_API_KEY over TLS and reaches the server', async () => {
    const seenBefore = keyProxy.seen.length;
    const res = await run(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'nodeeni'), 'state', `nothing-${runId}`], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, TEMPORAL_ADDRESS: keyProxy.address, TEMPORAL_NAMESPACE: b.temporalNamespace, TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.caCert, TEMPORAL_API_KEY: API_KEY },
    }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }),
    );
    // The list query ran on the server: the answer is "no such entity", not a connection error.
    // (grpc-js makes Node warn, DEP0123, when the address is an IP; production addresses are names.)
    expect(res.code).toBe(1);
    expect(res.stderr.split('\n').filter((l) => l.startsWith('nodeeni:'))).toEqual([`nodeeni: no running entity workflow for NodeENI nothing-${runId}`]);
    const seen = keyProxy.seen.slice(seenBefore);
    expect(seen.length).toBeGreaterThan(0);
    expect(new Set(seen)).toEqual(new Set([`Bearer ${API_KEY}`]));
  });

  it('a rotated key in TEMPORAL_API_KEY_FILE is used without a restart, by worker and client connections', async () => {
    installRuntime({ logLevel: 'WARN' });
    const keyFile = path.join(dir, 'rotating-key');
    await writeFile(keyFile, API_KEY);
    const s: TemporalSettings = { address: keyProxy.address, namespace: b.temporalNamespace, tls: { serverCaCertPath: pki.caCert }, apiKeyFile: keyFile, apiKeyReloadMs: 200 };
    const [native, client] = [await connect(s), await connectClient(s)];
    try {
      for (const c of [native, client]) await c.workflowService.describeNamespace({ namespace: b.temporalNamespace });
      const rotated = `${API_KEY}-rotated`;
      keyProxy.apiKey = rotated;
      for (const c of [native, client]) await expect(c.workflowService.describeNamespace({ namespace: b.temporalNamespace })).rejects.toThrow(/unauthorized/i);
      await writeFile(keyFile, `${rotated}\n`);
      for (const c of [native, client]) {
        await eventually('the rotated key is used', async () => {
          await c.workflowService.describeNamespace({ namespace: b.temporalNamespace });
          return true;
        }, 10_000);
      }
      expect(keyProxy.seen.at(-1)).toBe(`Bearer ${rotated}`);
    } finally {
      keyProxy.apiKey = API_KEY;
      await Promise.allSettled([native.close(), client.close()]);
    }
  });
});

describe('start-up checks against the dev server', () => {
  async function createNamespace(ns: string): Promise<void> {
    await run(TOOL.temporal, ['operator', 'namespace', 'create', '--address', b.temporalAddress, '--namespace', ns, '--retention', '24h']);
    await eventually(`namespace ${ns} visible`, async () => {
      await admin.workflowService.describeNamespace({ namespace: ns });
      return true;
    });
  }

  async function customAttributes(ns: string): Promise<Record<string, number>> {
    return ((await admin.operatorService.listSearchAttributes({ namespace: ns })).customAttributes ?? {}) as Record<string, number>;
  }

  it('a namespace that does not exist: node agent, watcher and CLI each stop with one line naming it', async () => {
    const ns = `missing-${runId}`;
    const env = { TEMPORAL_ADDRESS: b.temporalAddress, TEMPORAL_NAMESPACE: ns };
    const [agent, w] = [await nodeAgent(env), watcher(env)];
    const expected = `namespace "${ns}" does not exist on Temporal at ${b.temporalAddress}: set TEMPORAL_NAMESPACE, or create it (temporal operator namespace create --address ${b.temporalAddress} --namespace ${ns})`;
    expect(await failure(agent)).toEqual({ code: 1, lines: [`node agent cannot start: ${expected}`] });
    expect(await failure(w)).toEqual({ code: 1, lines: [`watcher cannot start: ${expected}`] });
    const cli = await run(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'nodeeni'), 'state', 'x', '--address', b.temporalAddress, '--namespace', ns], { cwd: PROJECT_ROOT }).catch((e: { code: number; stderr: string }) => e);
    expect(cli).toMatchObject({ code: 1, stderr: `nodeeni: ${expected}\n` });
  });

  it('a fresh namespace without our search attributes: watcher and control worker stop naming them and the command, and that command fixes it', async () => {
    const ns = `fresh-${runId}`;
    await createNamespace(ns);
    const env = { TEMPORAL_ADDRESS: b.temporalAddress, TEMPORAL_NAMESPACE: ns };
    const [w, cw] = [watcher(env), controlWorker(env)];
    const [fw, fc] = [await failure(w), await failure(cw)];
    console.log(`watcher: ${fw.lines.join('\n')}\ncontrol worker: ${fc.lines.join('\n')}`);
    const command = `temporal operator search-attribute create --address ${b.temporalAddress} --namespace ${ns} --name NodeENI --type Keyword --name NodeName --type Keyword --name ENIId --type Keyword`;
    const missing = `missing custom search attributes in namespace "${ns}": NodeENI (Keyword), NodeName (Keyword), ENIId (Keyword) — create them with: ${command}`;
    expect(fw).toEqual({ code: 1, lines: [`watcher cannot start: ${missing} (or start the control worker once with TEMPORAL_CREATE_SEARCH_ATTRIBUTES=true)`] });
    expect(fc).toEqual({ code: 1, lines: [`control worker cannot start: ${missing} (or set TEMPORAL_CREATE_SEARCH_ATTRIBUTES=true on the control worker to create them at start)`] });
    expect(Object.keys(await customAttributes(ns))).toEqual([]);

    // Run the printed command as it stands (our pinned CLI for `temporal`), then the watcher starts.
    const [, ...args] = command.split(' ');
    await run(TOOL.temporal, args);
    const again = watcher(env);
    await waitForLine(again, /"watcher started"/);
    await again.stop();
  });

  it('with TEMPORAL_CREATE_SEARCH_ATTRIBUTES=true the control worker creates the missing ones and carries on', async () => {
    const ns = `create-${runId}`;
    await createNamespace(ns);
    const cw = controlWorker({ TEMPORAL_ADDRESS: b.temporalAddress, TEMPORAL_NAMESPACE: ns, TEMPORAL_CREATE_SEARCH_ATTRIBUTES: 'true' });
    const line = await waitForLine(cw, /created custom search attributes/);
    expect(JSON.parse(line)).toMatchObject({ level: 'INFO', namespace: ns, searchAttributes: ['NodeENI', 'NodeName', 'ENIId'] });
    const registered = await customAttributes(ns);
    for (const key of ALL_SEARCH_ATTRIBUTES) expect(registered[key.name]).toBe(temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD);
    // Past the checks the worker goes on to start (bundling the workflows takes a while on a busy machine).
    await waitForLine(cw, /"control worker started"/, 240_000);
    await eventually('the control worker polls in the new namespace', async () => (await pollers(`tls-control-${runId}`, temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, ns)) > 0);
    await cw.stop();
  }, 300_000);

  it('on Temporal Cloud the fix names Cloud’s tools (its namespaces take no operator-API search attributes)', () => {
    expect(searchAttributesFix(ALL_SEARCH_ATTRIBUTES, { address: 'nodeeni.a1b2c.tmprl.cloud:7233', namespace: 'nodeeni.a1b2c' })).toBe(
      'create them in Temporal Cloud (tcld namespace search-attributes add, the Cloud UI or the Cloud Ops API): NodeENI=Keyword NodeName=Keyword ENIId=Keyword',
    );
  });

  it('a search attribute registered with another type is named; the create switch does not paper over it', async () => {
    const ns = `wrongtype-${runId}`;
    await createNamespace(ns);
    await run(TOOL.temporal, ['operator', 'search-attribute', 'create', '--address', b.temporalAddress, '--namespace', ns, '--name', 'NodeENI', '--type', 'Text']);
    const cw = controlWorker({ TEMPORAL_ADDRESS: b.temporalAddress, TEMPORAL_NAMESPACE: ns, TEMPORAL_CREATE_SEARCH_ATTRIBUTES: 'true' });
    const f = await failure(cw);
    expect(f.code).toBe(1);
    expect(f.lines).toEqual([
      `control worker cannot start: search attribute NodeENI in namespace "${ns}" has type Text, the code needs Keyword: a type cannot be changed in place (temporal operator search-attribute remove --address ${b.temporalAddress} --namespace ${ns} --name NodeENI, then create it again)`,
    ]);
  });
});

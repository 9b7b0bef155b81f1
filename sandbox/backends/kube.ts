// A real Kubernetes control plane: etcd + kube-apiserver built from source
// (tools/kube-testenv), started with the flags from test-backends.md §2.5.
// No controllers run: namespaces never finish terminating, nothing is
// garbage-collected and pods stay Pending unless a test patches their status.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import path from 'node:path';
import { ApiException, ApiextensionsV1Api, KubeConfig, KubernetesObjectApi, loadAllYaml, type KubernetesObject } from '@kubernetes/client-node';
import { parseAllDocuments, stringify } from 'yaml';
import { PROJECT_ROOT, TOOL, freePort, requireTool, startProcess, waitUntil, type ManagedProcess } from './tools.js';

export interface KubeServer {
  /** https://127.0.0.1:PORT */
  server: string;
  /** Bearer token of a system:masters user. */
  token: string;
  /** Base64 PEM of the self-signed serving certificate chain. */
  caData: string;
  /** etcd's client URL (plaintext, loopback): tests that must store an object as another controller's CRD left it. */
  etcdUrl: string;
  /** A kubeconfig file for kubectl and other tools. */
  kubeconfigPath: string;
  kubeConfig(): KubeConfig;
  stop(): Promise<void>;
}

export interface KubeOptions {
  /** Working directory for etcd data, certificates, keys and the kubeconfig. */
  dir: string;
  echo?: boolean;
  /** CRD manifests to apply once the API is ready; default deploy/crds/ (skipped if missing). */
  crdDir?: string;
}

const READY_TIMEOUT_MS = 120_000;

export async function startKube(opts: KubeOptions): Promise<KubeServer> {
  const dir = path.resolve(opts.dir);
  const certDir = path.join(dir, 'certs');
  await mkdir(certDir, { recursive: true });
  const token = randomBytes(24).toString('hex');
  const tokenFile = path.join(dir, 'tokens.csv');
  await writeFile(tokenFile, `${token},admin,admin,"system:masters"\n`, { mode: 0o600 });
  const saKeyFile = path.join(dir, 'sa.key');
  await writeFile(saKeyFile, serviceAccountKey(), { mode: 0o600 });

  const [etcdClientPort, etcdPeerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const etcdUrl = `http://127.0.0.1:${etcdClientPort}`;
  const peerUrl = `http://127.0.0.1:${etcdPeerPort}`;
  const server = `https://127.0.0.1:${apiPort}`;

  const started: ManagedProcess[] = [];
  const stopAll = async () => {
    // The API server first, so it does not log etcd connection errors on the way down.
    for (const proc of [...started].reverse()) await proc.stop();
  };
  try {
    const etcd = startProcess('etcd', requireTool(TOOL.etcd), [
      '--data-dir', path.join(dir, 'etcd'),
      '--listen-client-urls', etcdUrl,
      '--advertise-client-urls', etcdUrl,
      '--listen-peer-urls', peerUrl,
      '--initial-advertise-peer-urls', peerUrl,
      '--initial-cluster', `default=${peerUrl}`,
      '--unsafe-no-fsync=true',
      '--log-level', 'warn',
    ], { echo: opts.echo });
    started.push(etcd);
    await waitUntil('etcd', async () => (await fetch(`${etcdUrl}/health`)).ok, { timeoutMs: READY_TIMEOUT_MS, proc: etcd });

    const apiserver = startProcess('kube-apiserver', requireTool(TOOL.kubeApiserver), [
      '--etcd-servers', etcdUrl,
      '--bind-address', '127.0.0.1',
      // Without it a loopback bind looks for the default route's interface and dies when there is none.
      '--advertise-address', '127.0.0.1',
      // 1.37 refuses a loopback advertise address for the `kubernetes` Service endpoints.
      '--endpoint-reconciler-type', 'none',
      '--secure-port', String(apiPort),
      '--cert-dir', certDir,
      '--service-cluster-ip-range', '10.0.0.0/24',
      '--service-account-issuer', server,
      '--service-account-key-file', saKeyFile,
      '--service-account-signing-key-file', saKeyFile,
      '--token-auth-file', tokenFile,
      '--authorization-mode', 'RBAC',
      // No controller-manager creates default ServiceAccounts.
      '--disable-admission-plugins', 'ServiceAccount',
      '--allow-privileged=true',
    ], { echo: opts.echo });
    started.push(apiserver);
    // kube-apiserver writes its self-signed chain here on first start.
    const certFile = path.join(certDir, 'apiserver.crt');
    await waitUntil('kube-apiserver', async () => existsSync(certFile) && (await httpsStatus(`${server}/readyz`, await readFile(certFile), token)) === 200, {
      timeoutMs: READY_TIMEOUT_MS,
      proc: apiserver,
    });

    const caData = (await readFile(certFile)).toString('base64');
    const kubeConfig = () => buildKubeConfig(server, caData, token);
    const kubeconfigPath = path.join(dir, 'kubeconfig');
    await writeFile(kubeconfigPath, kubeconfigYaml(server, caData, token), { mode: 0o600 });

    const crdDir = opts.crdDir ?? path.join(PROJECT_ROOT, 'deploy', 'crds');
    if (existsSync(crdDir)) await applyCrds(kubeConfig(), crdDir);

    return { server, token, caData, etcdUrl, kubeconfigPath, kubeConfig, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

function serviceAccountKey(): string {
  // One PKCS#8 private key serves both SA flags (the API server derives the public half).
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

function buildKubeConfig(server: string, caData: string, token: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'testenv', server, caData, skipTLSVerify: false }],
    users: [{ name: 'admin', token }],
    contexts: [{ name: 'testenv', cluster: 'testenv', user: 'admin' }],
    currentContext: 'testenv',
  });
  return kc;
}

function kubeconfigYaml(server: string, caData: string, token: string): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'testenv', cluster: { server, 'certificate-authority-data': caData } }],
    users: [{ name: 'admin', user: { token } }],
    contexts: [{ name: 'testenv', context: { cluster: 'testenv', user: 'admin' } }],
    'current-context': 'testenv',
  });
}

/** Status code of an authenticated GET; node's fetch cannot take a private CA. */
function httpsStatus(url: string, ca: Buffer, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', ca, headers: { Authorization: `Bearer ${token}` }, timeout: 5_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Creates or replaces every object in the *.yaml / *.yml files of `dir` and
 * waits until each CustomResourceDefinition among them is Established.
 * Returns the names of those CRDs.
 */
export async function applyCrds(kc: KubeConfig, dir: string): Promise<string[]> {
  const objects: KubernetesObject[] = [];
  const files = (await readdir(dir)).filter((f) => /\.ya?ml$/.test(f)).sort();
  for (const file of files) {
    const text = await readFile(path.join(dir, file), 'utf8');
    for (const doc of parseAllDocuments(text)) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]?.message}`);
    }
    // loadAllYaml returns client-node model objects; plain objects would lose every field the
    // serializer does not know (default, enum, x-kubernetes-*), silently weakening the CRD.
    for (const obj of loadAllYaml(text) as Array<KubernetesObject | null>) if (obj) objects.push(obj);
  }
  const client = KubernetesObjectApi.makeApiClient(kc);
  for (const obj of objects) await createOrReplace(client, obj);

  const crdNames = objects.filter((o) => o.kind === 'CustomResourceDefinition').map((o) => o.metadata?.name ?? '');
  const extensions = kc.makeApiClient(ApiextensionsV1Api);
  for (const name of crdNames) {
    await waitUntil(`CRD ${name} Established`, async () => {
      const crd = await extensions.readCustomResourceDefinition({ name });
      return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ?? false;
    }, { timeoutMs: 30_000 });
  }
  return crdNames;
}

async function createOrReplace(client: KubernetesObjectApi, obj: KubernetesObject): Promise<void> {
  try {
    await client.create(obj);
  } catch (err) {
    if (!(err instanceof ApiException && err.code === 409)) throw err;
    const current = await client.read({ apiVersion: obj.apiVersion, kind: obj.kind, metadata: { name: obj.metadata?.name ?? '', namespace: obj.metadata?.namespace } });
    await client.replace({ ...obj, metadata: { ...obj.metadata, resourceVersion: current.metadata?.resourceVersion } });
  }
}

// Start-up configuration: validated before any client exists, one clear line per bad value.
import { readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { startTsProcess } from '../sandbox/backends/tools.js';
import { controlConfigSchema, loadConfig, nodeAgentConfigSchema, temporalClientConfigSchema, watcherConfigSchema } from '../workers/config.js';
import { clientConnectionOptions, describeTemporal, nativeConnectionOptions, temporalSettings } from '../workers/temporal-connection.js';
import { makePki, type Pki } from './support/pki.js';

describe('node agent configuration', () => {
  it('names a missing NODE_NAME', () => {
    expect(() => loadConfig(nodeAgentConfigSchema, {})).toThrow(/NODE_NAME: NODE_NAME is required/);
  });

  it('rejects hostile or malformed values, each with its variable', async () => {
    const err = (() => {
      try {
        loadConfig(nodeAgentConfigSchema, { NODE_NAME: '../etc', HOST_ROOT: 'relative/root', METRICS_BIND_ADDRESS: 'nope' });
      } catch (e) {
        return String(e);
      }
      return '';
    })();
    expect(err).toMatch(/NODE_NAME: must be a lowercase DNS subdomain/);
    expect(err).toMatch(/HOST_ROOT: must be an absolute path/);
    expect(err).toMatch(/METRICS_BIND_ADDRESS: must be host:port/);
    expect(() => loadConfig(nodeAgentConfigSchema, { NODE_NAME: 'n1', HOST_ROOT: '/no/such/dir' })).toThrow(/HOST_ROOT: must be an existing directory/);
    expect(() => loadConfig(nodeAgentConfigSchema, { NODE_NAME: 'n1', HOST_ROOT: '/host/../etc' })).toThrow(/HOST_ROOT: must not contain/);
  });

  it('accepts a valid environment', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'root-'));
    const cfg = loadConfig(nodeAgentConfigSchema, { NODE_NAME: 'ip-10-0-0-10.ec2.internal', HOST_ROOT: root });
    expect(cfg).toMatchObject({ NODE_NAME: 'ip-10-0-0-10.ec2.internal', HOST_ROOT: root, TEMPORAL_NAMESPACE: 'default' });
  });

  it('the agent process exits at once with the message, before connecting anywhere', async () => {
    const started = Date.now();
    // Port 1 is closed: had the agent tried to connect first, it would hang or report that instead.
    const p = startTsProcess('node-agent', 'workers/node-agent.ts', { env: { NODE_NAME: '', TEMPORAL_ADDRESS: '127.0.0.1:1' } });
    const code = await new Promise<number | null>((resolve) => p.child.once('exit', resolve));
    expect(code).not.toBe(0);
    expect(p.tail()).toContain('NODE_NAME');
    expect(p.tail()).not.toMatch(/connect|ECONNREFUSED/i);
    expect(Date.now() - started).toBeLessThan(30_000);
  });
});

describe('control worker and watcher configuration', () => {
  it('requires AWS_REGION and parses lists', () => {
    expect(() => loadConfig(controlConfigSchema, {})).toThrow(/AWS_REGION/);
    const cfg = loadConfig(controlConfigSchema, { AWS_REGION: 'us-east-1', DEVICE_PLUGIN_NAMESPACES: 'kube-system, sriov' });
    expect(cfg.DEVICE_PLUGIN_NAMESPACES).toEqual(['kube-system', 'sriov']);
    expect(cfg.DEVICE_PLUGIN_SELECTORS.length).toBeGreaterThan(0);
    expect(() => loadConfig(controlConfigSchema, { AWS_REGION: 'us-east-1', DEVICE_PLUGIN_SELECTORS: 'app' })).toThrow(/selectors are key=value/);
  });

  it('bounds the watcher timings', () => {
    expect(() => loadConfig(watcherConfigSchema, { RESYNC_SECONDS: '1' })).toThrow(/RESYNC_SECONDS/);
    expect(loadConfig(watcherConfigSchema, {}).RESYNC_SECONDS).toBe(300);
  });
});

describe('Temporal connection: TLS and API key (every component and the CLI)', () => {
  let pki: Pki;
  let dir: string;
  const problems = (env: NodeJS.ProcessEnv, schema: Parameters<typeof loadConfig>[0] = watcherConfigSchema): string[] => {
    try {
      loadConfig(schema, env);
    } catch (e) {
      return String((e as Error).message).split('\n').slice(1).map((l) => l.trim());
    }
    return [];
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'tls-config-'));
    pki = await makePki(dir);
  });

  it('with no TLS variable the connection is plaintext, as before', () => {
    const s = temporalSettings(loadConfig(watcherConfigSchema, {}));
    expect(s).toEqual({ address: '127.0.0.1:7233', namespace: 'default' });
    expect(nativeConnectionOptions(s)).toEqual({ address: '127.0.0.1:7233', tls: undefined });
    expect(clientConnectionOptions(s)).toEqual({ address: '127.0.0.1:7233', tls: false });
    expect(describeTemporal(s)).toBe('plaintext');
    // Set but empty, as a template renders "no value": unset.
    expect(temporalSettings(loadConfig(watcherConfigSchema, { TEMPORAL_TLS: '', TEMPORAL_API_KEY: '', TEMPORAL_TLS_SERVER_CA_CERT_PATH: '' }))).toEqual(s);
  });

  it('TEMPORAL_TLS=true alone: TLS against the system CAs', () => {
    const s = temporalSettings(loadConfig(nodeAgentConfigSchema, { NODE_NAME: 'n1', TEMPORAL_TLS: 'true', TEMPORAL_ADDRESS: 'ns.acct.tmprl.cloud:7233' }));
    expect(s.tls).toEqual({});
    expect(nativeConnectionOptions(s)).toEqual({ address: 'ns.acct.tmprl.cloud:7233', tls: {} });
    expect(describeTemporal(s)).toBe('TLS, system CAs');
  });

  it('CA, client certificate, key and server name become the SDK options, for workers and clients alike', () => {
    const env = {
      AWS_REGION: 'us-east-1',
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.caCert,
      TEMPORAL_TLS_CLIENT_CERT_PATH: pki.clientCert,
      TEMPORAL_TLS_CLIENT_KEY_PATH: pki.clientKey,
      TEMPORAL_TLS_SERVER_NAME: 'temporal.example.internal',
    };
    const s = temporalSettings(loadConfig(controlConfigSchema, env));
    const tls = {
      serverNameOverride: 'temporal.example.internal',
      serverRootCACertificate: readFileSync(pki.caCert),
      clientCertPair: { crt: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) },
    };
    expect(nativeConnectionOptions(s)).toEqual({ address: '127.0.0.1:7233', tls });
    expect(clientConnectionOptions(s)).toEqual({ address: '127.0.0.1:7233', tls });
    expect(describeTemporal(s)).toBe(`TLS, CA ${pki.caCert}, server name temporal.example.internal, client certificate ${pki.clientCert}`);
    // The CLI reads the same variables through the same schema.
    expect(temporalSettings(loadConfig(temporalClientConfigSchema, env))).toEqual(s);
  });

  it('an API key implies TLS; from a file (a mounted Secret) it is read and trimmed, and never shown', async () => {
    const keyFile = path.join(dir, 'api-key');
    await writeFile(keyFile, 'tmprl-secret-key\n');
    const fromFile = temporalSettings(loadConfig(watcherConfigSchema, { TEMPORAL_API_KEY_FILE: keyFile }));
    expect(fromFile.tls).toEqual({});
    expect(clientConnectionOptions(fromFile)).toEqual({ address: '127.0.0.1:7233', tls: {}, apiKey: 'tmprl-secret-key' });
    expect(nativeConnectionOptions(fromFile)).toEqual({ address: '127.0.0.1:7233', tls: {}, apiKey: 'tmprl-secret-key' });
    expect(describeTemporal(fromFile)).toBe(`TLS, system CAs, API key from ${keyFile}`);
    const fromEnv = temporalSettings(loadConfig(watcherConfigSchema, { TEMPORAL_API_KEY: 'tmprl-secret-key' }));
    expect(nativeConnectionOptions(fromEnv)).toMatchObject({ tls: {}, apiKey: 'tmprl-secret-key' });
    expect(describeTemporal(fromEnv)).not.toContain('tmprl-secret-key');
    // Built by hand without TLS, the module still refuses to send a key in plaintext.
    expect(() => nativeConnectionOptions({ address: 'a:1', namespace: 'n', apiKey: 'k' })).toThrow(/only sent over TLS/);
  });

  it('reports every problem at once, one line each, naming the variable', () => {
    const lines = problems({
      TEMPORAL_TLS: 'yes',
      TEMPORAL_ADDRESS: 'https://temporal:7233',
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: path.join(dir, 'no-such-ca.pem'),
      TEMPORAL_TLS_CLIENT_CERT_PATH: pki.clientCert,
      TEMPORAL_TLS_SERVER_NAME: 'not a name',
      TEMPORAL_API_KEY: 'k',
      TEMPORAL_API_KEY_FILE: pki.caCert,
      TEMPORAL_TLS_DISABLE_HOST_VERIFICATION: 'true',
      TEMPORAL_TLS_CLIENT_KEY_DATA: '-----BEGIN PRIVATE KEY-----',
    });
    expect(lines.sort()).toEqual(
      [
        'TEMPORAL_TLS: must be true or false',
        'TEMPORAL_ADDRESS: must be host:port, without a scheme',
        `TEMPORAL_TLS_SERVER_CA_CERT_PATH: ${path.join(dir, 'no-such-ca.pem')} does not exist`,
        'TEMPORAL_TLS_CLIENT_KEY_PATH: required with TEMPORAL_TLS_CLIENT_CERT_PATH (a client certificate needs its private key)',
        'TEMPORAL_TLS_SERVER_NAME: must be a DNS name (the name in the server certificate)',
        'TEMPORAL_API_KEY_FILE: set only one of TEMPORAL_API_KEY and TEMPORAL_API_KEY_FILE',
        'TEMPORAL_TLS_DISABLE_HOST_VERIFICATION: not supported by the TypeScript SDK: set TEMPORAL_TLS_SERVER_NAME to the name in the server certificate',
        'TEMPORAL_TLS_CLIENT_KEY_DATA: not supported: mount the key and set TEMPORAL_TLS_CLIENT_KEY_PATH',
      ].sort(),
    );
    expect(lines.join('\n')).not.toContain('BEGIN PRIVATE KEY');
  });

  it('TEMPORAL_TLS=false with TLS settings or an API key is a contradiction, reported per variable', async () => {
    const keyFile = path.join(dir, 'api-key-2');
    await writeFile(keyFile, 'k');
    expect(problems({ TEMPORAL_TLS: 'false', TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.caCert, TEMPORAL_API_KEY_FILE: keyFile })).toEqual([
      'TEMPORAL_TLS_SERVER_CA_CERT_PATH: is set but TEMPORAL_TLS=false: remove one of them',
      'TEMPORAL_API_KEY_FILE: an API key is only sent over TLS (Temporal Cloud requires it), but TEMPORAL_TLS=false',
    ]);
    expect(problems({ TEMPORAL_TLS: 'false', TEMPORAL_API_KEY: 'k' })).toEqual(['TEMPORAL_API_KEY: an API key is only sent over TLS (Temporal Cloud requires it), but TEMPORAL_TLS=false']);
    expect(problems({ TEMPORAL_TLS: 'false' })).toEqual([]);
  });

  it('checks the files: absolute, a readable file, PEM of the right kind, key matching certificate, not expired, key file not empty', async () => {
    const sub = path.join(dir, 'sub');
    await mkdir(sub, { recursive: true });
    const empty = path.join(dir, 'empty-key');
    await writeFile(empty, '\n');
    expect(problems({ TEMPORAL_TLS_SERVER_CA_CERT_PATH: 'ca.pem' })).toEqual(['TEMPORAL_TLS_SERVER_CA_CERT_PATH: must be an absolute path (got "ca.pem")']);
    expect(problems({ TEMPORAL_TLS_SERVER_CA_CERT_PATH: sub })).toEqual([`TEMPORAL_TLS_SERVER_CA_CERT_PATH: ${sub} is not a file`]);
    expect(problems({ TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.caCert.replace('.crt', '.key') })).toEqual(['TEMPORAL_TLS_SERVER_CA_CERT_PATH: is not a PEM certificate (no "BEGIN CERTIFICATE" block)']);
    expect(problems({ TEMPORAL_TLS_CLIENT_CERT_PATH: pki.clientCert, TEMPORAL_TLS_CLIENT_KEY_PATH: pki.clientCert })).toEqual(['TEMPORAL_TLS_CLIENT_KEY_PATH: is not an unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1)']);
    expect(problems({ TEMPORAL_TLS_CLIENT_CERT_PATH: pki.clientCert, TEMPORAL_TLS_CLIENT_KEY_PATH: pki.serverKey })).toEqual(['TEMPORAL_TLS_CLIENT_KEY_PATH: does not belong to the certificate in TEMPORAL_TLS_CLIENT_CERT_PATH']);
    expect(problems({ TEMPORAL_TLS_CLIENT_KEY_PATH: pki.clientKey })).toEqual(['TEMPORAL_TLS_CLIENT_CERT_PATH: required with TEMPORAL_TLS_CLIENT_KEY_PATH (a private key needs its client certificate)']);
    expect(problems({ TEMPORAL_TLS_CLIENT_CERT_PATH: pki.expiredCert, TEMPORAL_TLS_CLIENT_KEY_PATH: pki.expiredKey })).toEqual([
      'TEMPORAL_TLS_CLIENT_CERT_PATH: the certificate CN=expired expired on 2020-01-02T00:00:00.000Z',
    ]);
    expect(problems({ TEMPORAL_API_KEY_FILE: empty })).toEqual(['TEMPORAL_API_KEY_FILE: is empty']);
    if (process.getuid?.() !== 0) {
      // root reads anything: only meaningful for the non-root user the manifests run as.
      const locked = path.join(dir, 'locked.pem');
      await writeFile(locked, readFileSync(pki.caCert));
      await chmod(locked, 0o000);
      expect(problems({ TEMPORAL_TLS_SERVER_CA_CERT_PATH: locked })).toEqual([expect.stringMatching(/^TEMPORAL_TLS_SERVER_CA_CERT_PATH: .* is not readable by this process/)]);
    }
  });

  it('TEMPORAL_CREATE_SEARCH_ATTRIBUTES: off unless true, on the control worker', () => {
    expect(loadConfig(controlConfigSchema, { AWS_REGION: 'us-east-1' }).TEMPORAL_CREATE_SEARCH_ATTRIBUTES).toBe(false);
    expect(loadConfig(controlConfigSchema, { AWS_REGION: 'us-east-1', TEMPORAL_CREATE_SEARCH_ATTRIBUTES: 'true' }).TEMPORAL_CREATE_SEARCH_ATTRIBUTES).toBe(true);
    expect(problems({ AWS_REGION: 'us-east-1', TEMPORAL_CREATE_SEARCH_ATTRIBUTES: 'yes' }, controlConfigSchema)).toEqual(['TEMPORAL_CREATE_SEARCH_ATTRIBUTES: must be true or false']);
  });

  it('the watcher process exits at once with the lines, before connecting anywhere', async () => {
    const p = startTsProcess('watcher', 'watcher/main.ts', {
      env: { TEMPORAL_ADDRESS: '127.0.0.1:1', TEMPORAL_TLS_CLIENT_CERT_PATH: pki.clientCert, TEMPORAL_TLS: 'false', KUBECONFIG: path.join(dir, 'none') },
    });
    const code = await new Promise<number | null>((resolve) => p.child.once('exit', resolve));
    expect(code).not.toBe(0);
    expect(p.tail()).toContain('TEMPORAL_TLS_CLIENT_KEY_PATH: required with TEMPORAL_TLS_CLIENT_CERT_PATH');
    expect(p.tail()).toContain('TEMPORAL_TLS_CLIENT_CERT_PATH: is set but TEMPORAL_TLS=false');
    expect(p.tail()).not.toMatch(/cannot connect|ECONNREFUSED/i);
  });
});

// The connection to Temporal for every component: the validated environment
// (workers/config.ts) becomes NativeConnection options (control worker, node
// agent) or Connection options (watcher, CLI) here and nowhere else — TLS with
// a private CA, a client certificate (mTLS), a server name, an API key from a
// variable or a mounted Secret. A failed connection is explained in one line
// that names what to fix; the secrets themselves are never logged.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { Connection, type ConnectionOptions } from '@temporalio/client';
import type { Logger } from '@temporalio/common';
// Type only: the CLI and the watcher must not load the worker's native module.
import type { NativeConnectionOptions } from '@temporalio/worker';
import { temporalTlsEnabled, type TemporalConnectionEnv } from './config.js';

export interface TemporalSettings {
  /** host:port */
  address: string;
  namespace: string;
  /** Absent: plaintext (the dev server, the sandbox, the tests). */
  tls?: {
    /** PEM CA bundle the server certificate must chain to; absent: the system's CAs. */
    serverCaCertPath?: string;
    /** PEM client certificate and key for mTLS; both or neither. */
    clientCertPath?: string;
    clientKeyPath?: string;
    /** The name the server certificate must be valid for, when it is not the address's host. */
    serverName?: string;
  };
  /** Sent as `authorization: Bearer …`; only over TLS. */
  apiKey?: string;
  /** A file holding the API key (a mounted Secret); re-read every `apiKeyReloadMs` so a rotated key is used. */
  apiKeyFile?: string;
  /** Default 30 s. */
  apiKeyReloadMs?: number;
}

type TlsConfig = Exclude<NonNullable<NativeConnectionOptions['tls']>, boolean>;

/** The settings from a validated environment (see temporalConnectionFields in config.ts). */
export function temporalSettings(env: TemporalConnectionEnv): TemporalSettings {
  const s: TemporalSettings = { address: env.TEMPORAL_ADDRESS, namespace: env.TEMPORAL_NAMESPACE };
  if (temporalTlsEnabled(env)) {
    s.tls = {};
    if (env.TEMPORAL_TLS_SERVER_CA_CERT_PATH) s.tls.serverCaCertPath = env.TEMPORAL_TLS_SERVER_CA_CERT_PATH;
    if (env.TEMPORAL_TLS_CLIENT_CERT_PATH) s.tls.clientCertPath = env.TEMPORAL_TLS_CLIENT_CERT_PATH;
    if (env.TEMPORAL_TLS_CLIENT_KEY_PATH) s.tls.clientKeyPath = env.TEMPORAL_TLS_CLIENT_KEY_PATH;
    if (env.TEMPORAL_TLS_SERVER_NAME) s.tls.serverName = env.TEMPORAL_TLS_SERVER_NAME;
  }
  if (env.TEMPORAL_API_KEY) s.apiKey = env.TEMPORAL_API_KEY;
  if (env.TEMPORAL_API_KEY_FILE) s.apiKeyFile = env.TEMPORAL_API_KEY_FILE;
  return s;
}

/** The API key now: the variable, or the file's content (trimmed: Secrets often end in a newline). */
export function currentApiKey(s: TemporalSettings): string | undefined {
  if (s.apiKey) return s.apiKey;
  if (!s.apiKeyFile) return undefined;
  const key = readFileSync(s.apiKeyFile, 'utf8').trim();
  if (!key) throw new Error(`TEMPORAL_API_KEY_FILE ${s.apiKeyFile} is empty`);
  return key;
}

function tlsConfig(s: TemporalSettings): TlsConfig | undefined {
  if (!s.tls) return undefined;
  const t: TlsConfig = {};
  if (s.tls.serverName) t.serverNameOverride = s.tls.serverName;
  if (s.tls.serverCaCertPath) t.serverRootCACertificate = readFileSync(s.tls.serverCaCertPath);
  if (s.tls.clientCertPath && s.tls.clientKeyPath) t.clientCertPair = { crt: readFileSync(s.tls.clientCertPath), key: readFileSync(s.tls.clientKeyPath) };
  return t;
}

function guardApiKey(s: TemporalSettings): void {
  // config.ts refuses this; settings built by hand must not leak a key either.
  if ((s.apiKey || s.apiKeyFile) && !s.tls) throw new Error('an API key is only sent over TLS: enable TLS (TEMPORAL_TLS=true)');
}

/** For the workers' NativeConnection.connect. */
export function nativeConnectionOptions(s: TemporalSettings): NativeConnectionOptions {
  guardApiKey(s);
  const apiKey = currentApiKey(s);
  return { address: s.address, tls: tlsConfig(s), ...(apiKey ? { apiKey } : {}) };
}

/** For the clients' Connection.connect (watcher, CLI). */
export function clientConnectionOptions(s: TemporalSettings): ConnectionOptions {
  guardApiKey(s);
  const apiKey = currentApiKey(s);
  // `tls: undefined` would let the SDK turn TLS on by itself when an API key is set; we decide.
  return { address: s.address, tls: tlsConfig(s) ?? false, ...(apiKey ? { apiKey } : {}) };
}

/** How this process connects, for logs and messages; no secret in it. */
export function describeTemporal(s: TemporalSettings): string {
  if (!s.tls) return 'plaintext';
  const parts = ['TLS', s.tls.serverCaCertPath ? `CA ${s.tls.serverCaCertPath}` : 'system CAs'];
  if (s.tls.serverName) parts.push(`server name ${s.tls.serverName}`);
  if (s.tls.clientCertPath) parts.push(`client certificate ${s.tls.clientCertPath}`);
  if (s.apiKeyFile) parts.push(`API key from ${s.apiKeyFile}`);
  else if (s.apiKey) parts.push('API key from TEMPORAL_API_KEY');
  return parts.join(', ');
}

/** What stops a component from starting: one line per problem, each saying what to fix. */
export class TemporalStartupError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
    this.name = 'TemporalStartupError';
  }
}

/** A connected client (watcher, CLI), or a TemporalStartupError saying why not. */
export async function connectClient(s: TemporalSettings, logger?: Logger): Promise<Connection> {
  let connection: Connection;
  try {
    connection = await Connection.connect(clientConnectionOptions(s));
  } catch (err) {
    throw new TemporalStartupError([await explainConnectFailure(s, err)]);
  }
  if (s.apiKeyFile) watchApiKeyFile(connection, s, logger);
  return connection;
}

/**
 * Re-reads TEMPORAL_API_KEY_FILE and hands a changed key to the connection:
 * Kubernetes updates a mounted Secret in place, so a rotated key is picked up
 * without a restart. Stops when the connection refuses (it was closed).
 */
export function watchApiKeyFile(connection: { setApiKey(key: string): unknown }, s: TemporalSettings, logger?: Logger): () => void {
  let current = currentApiKey(s);
  const timer = setInterval(() => {
    let key: string;
    try {
      key = readFileSync(s.apiKeyFile!, 'utf8').trim();
    } catch (err) {
      logger?.warn('cannot re-read TEMPORAL_API_KEY_FILE; keeping the current key', { file: s.apiKeyFile, error: (err as Error).message });
      return;
    }
    if (!key || key === current) return;
    current = key;
    Promise.resolve()
      .then(() => connection.setApiKey(key))
      .then(
        () => logger?.info('Temporal API key reloaded', { file: s.apiKeyFile }),
        (err: unknown) => {
          clearInterval(timer);
          logger?.warn('could not set the reloaded API key', { file: s.apiKeyFile, error: String(err) });
        },
      );
  }, s.apiKeyReloadMs ?? 30_000);
  timer.unref();
  return () => clearInterval(timer);
}

export function splitAddress(address: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?(?::(\d+))?$/.exec(address);
  return { host: m?.[1] || address, port: Number(m?.[2] ?? 7233) };
}

function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error && !err.message.includes(err.cause.message) ? ` (${err.cause.message})` : '';
  return `${err.message}${cause}`;
}

// The HTTP/2 client preface and an empty SETTINGS frame: a server answers with its SETTINGS.
const H2_PREFACE = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);

/**
 * What the transport says, seen with node:tls/net and the same settings: the
 * SDKs' own errors range from a Rust debug string to "Failed to connect before
 * the deadline". Undefined when the transport is fine (the failure is above it).
 */
export function probeTransport(s: TemporalSettings, timeoutMs = 5000): Promise<string | undefined> {
  const { host, port } = splitAddress(s.address);
  return new Promise((resolve) => {
    let settled = false;
    let sock: net.Socket;
    const done = (r: string | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done(`no answer from ${s.address} within ${timeoutMs} ms`), timeoutMs);
    if (!s.tls) {
      sock = net.connect(port, host, () => done(undefined));
    } else {
      let ca: Buffer | undefined, cert: Buffer | undefined, key: Buffer | undefined;
      try {
        ca = s.tls.serverCaCertPath ? readFileSync(s.tls.serverCaCertPath) : undefined;
        cert = s.tls.clientCertPath ? readFileSync(s.tls.clientCertPath) : undefined;
        key = s.tls.clientKeyPath ? readFileSync(s.tls.clientKeyPath) : undefined;
      } catch (err) {
        sock = new net.Socket();
        done((err as Error).message);
        return;
      }
      const servername = s.tls.serverName ?? (net.isIP(host) ? undefined : host);
      sock = tls.connect({ host, port, servername, ca, cert, key, ALPNProtocols: ['h2'] }, () => {
        // Under TLS 1.3 a refused client certificate shows only after the handshake: speak, and wait for the answer.
        sock.write(H2_PREFACE);
        sock.once('data', () => done(undefined));
      });
      sock.on('close', () => done('the server closed the connection after the TLS handshake'));
    }
    sock.on('error', (err: NodeJS.ErrnoException) => {
      // OpenSSL's text carries its source location: keep the reason only.
      const message = /SSL routines:[^:]*:([^:]+)/.exec(err.message)?.[1] ?? err.message;
      done(err.code && !message.includes(err.code) ? `${err.code}: ${message}` : message);
    });
  });
}

function hint(text: string, s: TemporalSettings): string | undefined {
  const t = text.toLowerCase();
  if (/unknownissuer|unable to verify|self[- ]signed|unable to get (local )?issuer|unknown ca|untrusted/.test(t)) {
    return s.tls?.serverCaCertPath
      ? 'the server certificate is not signed by the CA in TEMPORAL_TLS_SERVER_CA_CERT_PATH'
      : 'the server certificate is not signed by a CA this system trusts: set TEMPORAL_TLS_SERVER_CA_CERT_PATH';
  }
  if (/notvalidforname|altname|does not match|hostname\/ip/.test(t)) {
    return `the server certificate is not valid for ${s.tls?.serverName ?? splitAddress(s.address).host}: set TEMPORAL_TLS_SERVER_NAME to a name it is valid for`;
  }
  if (/certificate required|did not return a certificate|bad certificate|certificate unknown|closed the connection after the tls handshake|handshake failure/.test(t)) {
    return s.tls?.clientCertPath
      ? 'the server refused the client certificate in TEMPORAL_TLS_CLIENT_CERT_PATH'
      : 'the server wants a client certificate: set TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH';
  }
  if (/wrong version number|packet length too long|invalidcontenttype|corrupt ?message|unexpected eof|eproto/.test(t) && s.tls) {
    return 'the server does not speak TLS there: check TEMPORAL_ADDRESS and TEMPORAL_TLS';
  }
  if (/unauthenticated|valid authentication credentials|unauthorized/.test(t)) {
    return s.apiKey || s.apiKeyFile
      ? `the server rejected the API key (${s.apiKeyFile ? 'TEMPORAL_API_KEY_FILE' : 'TEMPORAL_API_KEY'})`
      : 'the server wants credentials: set TEMPORAL_API_KEY_FILE (or a client certificate)';
  }
  if (/permission_denied|permission denied/.test(t)) return 'the credentials are not allowed this call: check the namespace permissions of the API key or certificate';
  if (/econnrefused|connection refused/.test(t)) return 'nothing listens there: check TEMPORAL_ADDRESS';
  if (/enotfound|eai_again|failed to lookup|dns error/.test(t)) return 'the host name does not resolve: check TEMPORAL_ADDRESS';
  return undefined;
}

/** One line: where, how, what went wrong, and what to change. */
export async function explainConnectFailure(s: TemporalSettings, err: unknown): Promise<string> {
  const sdk = errorText(err);
  const transport = await probeTransport(s);
  let detail = transport ? `${transport} (SDK: ${sdk})` : sdk;
  let h = hint(`${transport ?? ''} ${sdk}`, s);
  if (!h && !transport && !s.tls) h = 'the port answers but gRPC failed: if the server uses TLS, set TEMPORAL_TLS=true (and TEMPORAL_TLS_SERVER_CA_CERT_PATH for a private CA)';
  detail = detail.replace(/\s+/g, ' ').trim();
  if (detail.length > 600) detail = `${detail.slice(0, 600)}…`;
  return `cannot connect to Temporal at ${s.address} (${describeTemporal(s)}): ${detail}${h ? ` — ${h}` : ''}`;
}

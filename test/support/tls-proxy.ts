// TLS in front of the plaintext dev server, the way production Temporal
// (Temporal Cloud, or a self-hosted frontend behind TLS) looks to a client.
//
// startTlsProxy: terminates TLS (ALPN h2, optionally requiring a client
// certificate signed by a given CA) and forwards the bytes to the dev server,
// which speaks HTTP/2 without TLS: gRPC frames pass through untouched.
//
// startApiKeyProxy: terminates TLS *and* HTTP/2, checks every request's
// `authorization: Bearer <key>` like Temporal Cloud does (UNAUTHENTICATED
// otherwise), and forwards accepted requests stream by stream.
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';

export interface TlsProxyOptions {
  /** host:port of the plaintext dev server. */
  target: string;
  certFile: string;
  keyFile: string;
  /** Require a client certificate signed by this CA (mTLS). */
  clientCaFile?: string;
}

export interface TlsProxy {
  address: string;
  /** Handshakes that completed, with the client certificate's CN when one was presented. */
  handshakes: Array<{ clientCn?: string }>;
  /** Handshakes that failed, with the reason node:tls saw. */
  failures: string[];
  close(): Promise<void>;
}

function splitTarget(target: string): { host: string; port: number } {
  const i = target.lastIndexOf(':');
  return { host: target.slice(0, i), port: Number(target.slice(i + 1)) };
}

function listen(server: net.Server): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const a = server.address() as net.AddressInfo;
      resolve(`127.0.0.1:${a.port}`);
    });
  });
}

export async function startTlsProxy(opts: TlsProxyOptions): Promise<TlsProxy> {
  const { host, port } = splitTarget(opts.target);
  const handshakes: TlsProxy['handshakes'] = [];
  const failures: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = tls.createServer({
    cert: readFileSync(opts.certFile),
    key: readFileSync(opts.keyFile),
    ALPNProtocols: ['h2'],
    ...(opts.clientCaFile ? { ca: readFileSync(opts.clientCaFile), requestCert: true, rejectUnauthorized: true } : {}),
  });
  server.on('tlsClientError', (err) => failures.push(err.message));
  server.on('secureConnection', (client) => {
    const peer = client.getPeerCertificate();
    handshakes.push({ clientCn: peer && 'subject' in peer && peer.subject ? String(peer.subject.CN) : undefined });
    const upstream = net.connect(port, host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  const address = await listen(server);
  return {
    address,
    handshakes,
    failures,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface ApiKeyProxy {
  address: string;
  /** The API key requests must carry; changeable, to test a rotated key. */
  apiKey: string;
  /** `authorization` header of every request (undefined when absent), in order. */
  seen: Array<string | undefined>;
  /** Requests refused for a missing or wrong key. */
  refused: number;
  /** gRPC methods (`/package.Service/Method`) this key may not call: answered PERMISSION_DENIED. */
  denied: Set<string>;
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set([':authority', ':scheme', 'connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection']);

export async function startApiKeyProxy(opts: { target: string; certFile: string; keyFile: string; apiKey: string }): Promise<ApiKeyProxy> {
  const upstream = http2.connect(`http://${opts.target}`);
  upstream.on('error', () => undefined);
  const state: ApiKeyProxy = {
    address: '',
    apiKey: opts.apiKey,
    seen: [],
    refused: 0,
    denied: new Set(),
    close: async () => undefined,
  };
  const server = http2.createSecureServer({ cert: readFileSync(opts.certFile), key: readFileSync(opts.keyFile), ALPNProtocols: ['h2'] });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    const auth = headers.authorization as string | undefined;
    state.seen.push(auth);
    if (auth !== `Bearer ${state.apiKey}`) {
      state.refused += 1;
      // A trailers-only gRPC response, as Temporal Cloud answers a bad key.
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '16', 'grpc-message': 'Request unauthorized: invalid API key' }, { endStream: true });
      return;
    }
    if (state.denied.has(String(headers[':path']))) {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '7', 'grpc-message': 'Request unauthorized: not allowed for this API key' }, { endStream: true });
      return;
    }
    const fwd: http2.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) fwd[k] = v;
    const req = upstream.request(fwd);
    req.on('error', () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
    stream.on('close', () => {
      if (!req.closed) req.close(http2.constants.NGHTTP2_CANCEL);
    });
    let trailers: http2.OutgoingHttpHeaders | undefined;
    req.on('response', (resHeaders) => {
      const out: http2.OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(resHeaders)) if (!HOP_BY_HOP.has(k) && v !== undefined) out[k] = v;
      if (stream.destroyed) return;
      if ('grpc-status' in resHeaders) {
        // Trailers-only response: pass it on as one.
        stream.respond(out, { endStream: true });
        return;
      }
      stream.respond(out, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers(trailers ?? {}));
      req.pipe(stream);
    });
    req.on('trailers', (t) => {
      const out: http2.OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(t)) if (v !== undefined && v !== null) out[k] = v as http2.OutgoingHttpHeaders[string];
      trailers = out;
    });
    stream.pipe(req);
  });
  state.address = await listen(server as unknown as net.Server);
  state.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sessions) s.destroy();
      upstream.destroy();
      server.close(() => resolve());
    });
  return state;
}

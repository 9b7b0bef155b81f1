// A KubeConfig whose API clients keep their connections to the API server.
//
// client-node (2.0.1) gives every request of a generated API client a new undici Agent
// (KubeConfig.applySecurityAuthentication → createDispatcher), so every call opens a new
// TCP connection and makes a TLS handshake, and builds a new secure context from the CA.
// Measured in the control worker at 300 nodes: about a fifth of its CPU went to TLS
// (handshakes, getPeerCertificate, SecureContext), and the API server paid its side of each
// handshake too. This keeps the first Agent and hands it to every later request for as long
// as the TLS material it was built from stays the same (a rotated CA or client certificate
// file, or another context, gets a new one; the old one closes once its requests are done).
// Credentials sent as headers (tokens, a rotating ServiceAccount token file) are still
// applied to every request by client-node itself.
import { statSync } from 'node:fs';
import { KubeConfig, type RequestContext } from '@kubernetes/client-node';

type Dispatcher = NonNullable<ReturnType<RequestContext['getDispatcher']>>;

export class PooledKubeConfig extends KubeConfig {
  private pooled?: { key: string; dispatcher: Dispatcher };

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const fresh = context.getDispatcher();
    // None set (no TLS options): fetch's own global pool already keeps the connections.
    if (!fresh) return;
    const key = this.tlsIdentity();
    if (this.pooled?.key === key) {
      context.setDispatcher(this.pooled.dispatcher);
      // Never used, so it holds no connection: closing it frees nothing but is tidy.
      void fresh.close().catch(() => undefined);
      return;
    }
    const old = this.pooled?.dispatcher;
    this.pooled = { key, dispatcher: fresh };
    void old?.close().catch(() => undefined);
  }

  /** What the Agent's TLS options are built from: the cluster's and user's settings, files by path and modification time. */
  private tlsIdentity(): string {
    const cluster = this.getCurrentCluster();
    const user = this.getCurrentUser();
    return JSON.stringify([
      cluster?.name, cluster?.server, cluster?.skipTLSVerify, cluster?.tlsServerName, cluster?.proxyUrl, cluster?.caData, fileVersion(cluster?.caFile),
      user?.name, user?.certData, fileVersion(user?.certFile), user?.keyData, fileVersion(user?.keyFile),
    ]);
  }
}

function fileVersion(file: string | undefined): string | undefined {
  if (!file) return undefined;
  try {
    const s = statSync(file);
    return `${file}@${s.mtimeMs}/${s.size}`;
  } catch {
    return `${file}@missing`;
  }
}

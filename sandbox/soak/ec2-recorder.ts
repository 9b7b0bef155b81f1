// A pass-through HTTP recorder between the fault proxy and moto: it forwards
// every request unchanged and keeps an audit trail of the ENI-changing calls
// moto accepted (create, attach, detach, delete, and TerminateInstances), so
// the soak can count the ENIs created and deleted exactly, and show the
// timeline of one ENI as evidence. The fault proxy's own EC2 calls (its
// real-EC2 behaviours, e.g. the deletes of DeleteOnTermination) pass here too.
import { createServer, request as httpRequest, type IncomingMessage } from 'node:http';

export interface Ec2AuditEntry {
  /** Epoch ms the reply came back. */
  at: number;
  action: string;
  status: number;
  eniId?: string;
  attachmentId?: string;
  instanceIds?: string[];
  /** EC2 error code, when moto refused. */
  code?: string;
}

export interface Ec2Recorder {
  endpoint: string;
  /** Audit entries, oldest first. */
  entries(): readonly Ec2AuditEntry[];
  /** ENI ids moto created with HTTP 200. */
  created(): Set<string>;
  /** ENI ids moto deleted with HTTP 200. */
  deleted(): Set<string>;
  /** Every entry about this ENI (or its attachments). */
  historyOf(eniId: string): Ec2AuditEntry[];
  stop(): Promise<void>;
}

const RECORDED = new Set(['CreateNetworkInterface', 'AttachNetworkInterface', 'DetachNetworkInterface', 'DeleteNetworkInterface', 'ModifyNetworkInterfaceAttribute', 'TerminateInstances']);

function readBody(stream: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

const tagText = (xml: string, tag: string) => new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(xml)?.[1];

export async function startEc2Recorder(target: string): Promise<Ec2Recorder> {
  const upstream = new URL(target);
  const log: Ec2AuditEntry[] = [];
  const attachmentToEni = new Map<string, string>();

  const server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      const params = new URLSearchParams(new URL(req.url ?? '/', 'http://x').search);
      if (req.method === 'POST') for (const [k, v] of new URLSearchParams(body.toString())) params.append(k, v);
      const action = params.get('Action') ?? '';
      const out = httpRequest({ hostname: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
        void readBody(r).then((replyBody) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          res.end(replyBody);
          if (!RECORDED.has(action)) return;
          const status = r.statusCode ?? 0;
          const xml = replyBody.toString();
          const entry: Ec2AuditEntry = { at: Date.now(), action, status };
          if (status !== 200) entry.code = tagText(xml, 'Code');
          switch (action) {
            case 'CreateNetworkInterface':
              entry.eniId = status === 200 ? tagText(xml, 'networkInterfaceId') : undefined;
              break;
            case 'AttachNetworkInterface':
              entry.eniId = params.get('NetworkInterfaceId') ?? undefined;
              entry.attachmentId = status === 200 ? tagText(xml, 'attachmentId') : undefined;
              if (entry.attachmentId && entry.eniId) attachmentToEni.set(entry.attachmentId, entry.eniId);
              break;
            case 'DetachNetworkInterface':
              entry.attachmentId = params.get('AttachmentId') ?? undefined;
              entry.eniId = entry.attachmentId ? attachmentToEni.get(entry.attachmentId) : undefined;
              break;
            case 'DeleteNetworkInterface':
            case 'ModifyNetworkInterfaceAttribute':
              entry.eniId = params.get('NetworkInterfaceId') ?? undefined;
              break;
            case 'TerminateInstances':
              entry.instanceIds = [...params.entries()].filter(([k]) => /^InstanceId\.\d+$/.test(k)).map(([, v]) => v);
              break;
          }
          log.push(entry);
        }, () => res.destroy());
      });
      out.on('error', () => res.destroy());
      out.end(body);
    })().catch(() => res.destroy());
  });

  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      if (addr === null || typeof addr === 'string') return reject(new Error('recorder has no TCP address'));
      resolve(addr.port);
    });
  });

  const ok = (action: string) => log.filter((e) => e.action === action && e.status === 200 && e.eniId);
  return {
    endpoint: `http://127.0.0.1:${port}`,
    entries: () => log,
    created: () => new Set(ok('CreateNetworkInterface').map((e) => e.eniId!)),
    deleted: () => new Set(ok('DeleteNetworkInterface').map((e) => e.eniId!)),
    historyOf: (eniId) => log.filter((e) => e.eniId === eniId),
    stop: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

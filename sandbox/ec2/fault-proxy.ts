// A fault-injecting HTTP proxy in front of moto (test-backends.md §1.8).
// EC2 Query API requests are forwarded unchanged unless a fault rule selects
// them (error reply, latency, dropped connection) or a real-EC2 behaviour moto
// lacks applies (fidelity.ts). Rules, counters and settings are driven through
// a JSON control API under /__faults on the same port (fault-client.ts).
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { z } from 'zod';
import { DEFAULT_REGION, MOTO_ACCOUNT_HEADER, MOTO_DEFAULT_ACCOUNT } from './client.js';
import { ec2ErrorReply, type Ec2Reply } from './ec2-xml.js';
import { Ec2Fidelity, type Ec2Call, type Exchange, type FidelitySettings } from './fidelity.js';

export type { FidelitySettings } from './fidelity.js';

export const CONTROL_PATH = '/__faults';

const faultRuleSchema = z
  .object({
    /** EC2 action name, e.g. "AttachNetworkInterface"; "*" matches every action. */
    action: z.string().min(1),
    code: z.string().min(1).optional(),
    message: z.string().optional(),
    httpStatus: z.number().int().min(400).max(599).optional(),
    /** Times to apply; unlimited when absent. */
    count: z.number().int().positive().optional(),
    latencyMs: z.number().int().nonnegative().optional(),
    dropConnection: z.boolean().optional(),
    /** Only requests for this x-moto-account-id (moto's default account when no header). */
    account: z.string().optional(),
    /** Only requests whose form parameters have these values, e.g. { NetworkInterfaceId: "eni-1" }. */
    match: z.record(z.string(), z.string()).optional(),
  })
  .strict()
  .refine((r) => r.code !== undefined || r.latencyMs !== undefined || r.dropConnection === true, {
    message: 'a rule needs code, latencyMs or dropConnection',
  });

export type FaultRule = z.infer<typeof faultRuleSchema>;

export interface FaultRuleState extends FaultRule {
  id: number;
  /** How many requests the rule has affected so far. */
  applied: number;
}

export interface FaultProxyState {
  rules: FaultRuleState[];
  /** Requests received per action (faulted ones included), all accounts. */
  counts: Record<string, number>;
  countsByAccount: Record<string, Record<string, number>>;
  fidelity: FidelitySettings;
}

const fidelitySchema = z
  .object({
    enabled: z.boolean().optional(),
    attachDelayMs: z.number().int().nonnegative().optional(),
    detachDelayMs: z.number().int().nonnegative().optional(),
  })
  .strict();

export interface FaultProxy {
  endpoint: string;
  stop(): Promise<void>;
}

// Unref: a request held by a latency rule must not keep a stopping process alive.
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms).unref());

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function sendReply(res: ServerResponse, reply: Ec2Reply): void {
  const headers = { ...reply.headers };
  delete headers['transfer-encoding'];
  headers['content-length'] = String(reply.body.length);
  res.writeHead(reply.status, headers);
  res.end(reply.body);
}

/** The region moto will pick: the SigV4 credential scope `Credential=AK/date/REGION/ec2/aws4_request`. */
function regionOf(req: IncomingMessage): string {
  const auth = req.headers.authorization ?? '';
  return /Credential=[^/,\s]+\/[^/]+\/([^/]+)\//.exec(auth)?.[1] ?? DEFAULT_REGION;
}

function parseCall(req: IncomingMessage, body: Buffer): Ec2Call | undefined {
  const url = new URL(req.url ?? '/', 'http://proxy');
  const params = new URLSearchParams(url.search);
  if ((req.headers['content-type'] ?? '').includes('application/x-www-form-urlencoded') || req.method === 'POST') {
    for (const [k, v] of new URLSearchParams(body.toString())) params.append(k, v);
  }
  const action = params.get('Action');
  if (!action) return undefined;
  const header = req.headers[MOTO_ACCOUNT_HEADER];
  const accountHeader = Array.isArray(header) ? header[0] : header;
  return { action, params, region: regionOf(req), account: accountHeader ?? MOTO_DEFAULT_ACCOUNT, accountHeader };
}

function ruleMatches(rule: FaultRuleState, call: Ec2Call): boolean {
  if (rule.count !== undefined && rule.applied >= rule.count) return false;
  if (rule.action !== '*' && rule.action !== call.action) return false;
  if (rule.account !== undefined && rule.account !== call.account) return false;
  return Object.entries(rule.match ?? {}).every(([k, v]) => call.params.get(k) === v);
}

function defaultStatus(code: string): number {
  return code === 'RequestLimitExceeded' ? 503 : 400;
}

function defaultMessage(code: string, action: string): string {
  return code === 'RequestLimitExceeded' ? 'Request limit exceeded.' : `Injected ${code} for ${action}.`;
}

export async function startFaultProxy(opts: { target: string; port?: number }): Promise<FaultProxy> {
  const target = new URL(opts.target);
  const fidelity = new Ec2Fidelity(opts.target);
  let rules: FaultRuleState[] = [];
  let nextRuleId = 1;
  let countsByAccount: Record<string, Record<string, number>> = {};

  const state = (): FaultProxyState => {
    const counts: Record<string, number> = {};
    for (const perAccount of Object.values(countsByAccount)) {
      for (const [action, n] of Object.entries(perAccount)) counts[action] = (counts[action] ?? 0) + n;
    }
    return { rules: rules.map((r) => ({ ...r })), counts, countsByAccount: structuredClone(countsByAccount), fidelity: fidelity.settings };
  };

  function upstream(req: IncomingMessage, body: Buffer, onResponse: (r: IncomingMessage) => void, onError: (e: Error) => void): void {
    const out = httpRequest(
      { hostname: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      onResponse,
    );
    out.on('error', onError);
    out.end(body);
  }

  function exchange(req: IncomingMessage, res: ServerResponse, body: Buffer, call: Ec2Call): Exchange {
    return {
      call,
      forward: () => forward(req, res, body),
      fetchUpstream: () =>
        new Promise<Ec2Reply>((resolve, reject) => {
          upstream(req, body, (r) => {
            readBody(r).then((b) => resolve({ status: r.statusCode ?? 502, headers: r.headers, body: b }), reject);
          }, reject);
        }),
      send: (reply) => sendReply(res, reply),
    };
  }

  function forward(req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      upstream(req, body, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
        r.on('end', resolve);
        r.on('error', reject);
      }, reject);
    });
  }

  async function control(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const body = await readBody(req);
    let json: unknown;
    try {
      json = body.length > 0 ? JSON.parse(body.toString()) : undefined;
    } catch {
      return sendJson(res, 400, { error: 'body is not JSON' });
    }
    if (path === CONTROL_PATH && req.method === 'GET') return sendJson(res, 200, state());
    if (path === CONTROL_PATH && req.method === 'POST') {
      const parsed = z.union([faultRuleSchema, z.array(faultRuleSchema)]).safeParse(json);
      if (!parsed.success) return sendJson(res, 400, { error: z.prettifyError(parsed.error) });
      const added = (Array.isArray(parsed.data) ? parsed.data : [parsed.data]).map((r) => ({ ...r, id: nextRuleId++, applied: 0 }));
      rules = [...rules, ...added];
      return sendJson(res, 200, { added });
    }
    if (path === CONTROL_PATH && req.method === 'DELETE') {
      rules = [];
      countsByAccount = {};
      return sendJson(res, 200, state());
    }
    if (path === `${CONTROL_PATH}/fidelity` && req.method === 'GET') return sendJson(res, 200, fidelity.settings);
    if (path === `${CONTROL_PATH}/fidelity` && req.method === 'POST') {
      const parsed = fidelitySchema.safeParse(json);
      if (!parsed.success) return sendJson(res, 400, { error: z.prettifyError(parsed.error) });
      const update: Partial<FidelitySettings> = {};
      for (const [k, v] of Object.entries(parsed.data)) if (v !== undefined) Object.assign(update, { [k]: v });
      return sendJson(res, 200, fidelity.update(update));
    }
    return sendJson(res, 404, { error: `no control endpoint ${req.method} ${path}` });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://proxy').pathname;
    if (path === CONTROL_PATH || path.startsWith(`${CONTROL_PATH}/`)) return control(req, res, path);
    const body = await readBody(req);
    const call = parseCall(req, body);
    if (!call) return forward(req, res, body);

    const perAccount = (countsByAccount[call.account] ??= {});
    perAccount[call.action] = (perAccount[call.action] ?? 0) + 1;

    const rule = rules.find((r) => ruleMatches(r, call));
    if (rule) {
      rule.applied += 1;
      if (rule.latencyMs) await sleep(rule.latencyMs);
      if (rule.dropConnection) {
        req.socket.destroy();
        return;
      }
      if (rule.code !== undefined) {
        const status = rule.httpStatus ?? defaultStatus(rule.code);
        return sendReply(res, ec2ErrorReply(status, rule.code, rule.message ?? defaultMessage(rule.code, call.action)));
      }
    }
    return fidelity.handle(exchange(req, res, body, call));
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      // A transport failure towards moto, reported the way a gateway would.
      sendReply(res, ec2ErrorReply(502, 'ProxyUpstreamError', err instanceof Error ? err.message : String(err)));
    });
  });

  // Port 0 lets the OS pick a free port without a probe-then-bind race.
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      const addr = server.address();
      if (addr === null || typeof addr === 'string') return reject(new Error('fault proxy has no TCP address'));
      resolve(addr.port);
    });
  });

  return {
    endpoint: `http://127.0.0.1:${port}`,
    async stop() {
      fidelity.stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

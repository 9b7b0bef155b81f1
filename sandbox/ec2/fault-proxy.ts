// A fault-injecting HTTP proxy in front of moto (test-backends.md §1.8).
// EC2 Query API requests are forwarded unchanged unless a fault rule selects
// them (error reply, latency, dropped connection) or a real-EC2 behaviour moto
// lacks applies (fidelity.ts). Rules, counters and settings are driven through
// a JSON control API under /__faults on the same port (fault-client.ts).
//
// Rules are tried in the order they were added; the first rule that selects a
// request and fires applies to it, the request then goes no further down the
// list. A rule selects a request when its action, account and `match` fit, it
// is inside its time window and its `count` is not used up. It then fires
// always, or with its `probability`: a rule that selects but does not fire
// leaves the request alone (it does not consume `count`) and the next rules
// are tried, so with one rule the request goes on as if there were no rule.
//
// Time windows, measured from the moment the rule was added: the rule is
// `pending` for `startAfterMs`, then `active` for `activeForMs` (unbounded when
// absent), then `expired`. Expired and used-up (`exhausted`) rules stay in the
// state with their counters until the rules are cleared; they never match again.
//
// Randomness is reproducible: one seed (start option `seed`, or POST
// /__faults/seed; random when neither is given, and reported in the state)
// starts a mulberry32 sequence from which every added rule takes its own
// stream, in the order rules are added. So the n-th rule added since the seed
// was set (or the rules cleared) draws the same decisions for the same
// sequence of requests it selects, whatever other rules see. Setting the seed
// gives the existing rules fresh streams from the new sequence, as if they
// had been added after it; clearing the rules restarts the sequence.
//
// Request-rate throttling (throttle.ts; off unless the start option `throttle`
// or POST /__faults/throttle turns it on) models EC2's own limits: a token
// bucket per account, Region and API action, sized by the action's category
// (or its own figures), so a burst beyond a bucket's capacity gets
// RequestLimitExceeded (HTTP 503) until the bucket refills. It decides before
// any rule or fidelity handling: a throttled request is counted as received
// and as throttled, and goes no further. The control API is never throttled.
// Changing the throttle settings, or clearing, refills every bucket and
// restarts the per-bucket `served` counts, from which lowerBoundSecondsAll
// (throttle.ts) gives the time the buckets alone forced on those calls.
import { randomInt } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { z } from 'zod';
import { DEFAULT_REGION, MOTO_ACCOUNT_HEADER, MOTO_DEFAULT_ACCOUNT } from './client.js';
import { ec2ErrorReply, type Ec2Reply } from './ec2-xml.js';
import { Ec2Fidelity, type Ec2Call, type Exchange, type FidelitySettings } from './fidelity.js';
import {
  mergeThrottleSettings,
  throttlePreset,
  throttleSettingsSchema,
  throttleUpdateSchema,
  ThrottleBuckets,
  THROTTLE_PRESETS,
  type ThrottleBucketState,
  type ThrottlePreset,
  type ThrottleSettings,
} from './throttle.js';

export type { FidelitySettings } from './fidelity.js';
export type { ThrottleBucketState, ThrottlePreset, ThrottleSettings, ThrottleUpdate } from './throttle.js';

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
    /**
     * The request reaches EC2 and takes effect first; the fault (code or dropConnection) then replaces
     * its answer: an answer lost on the way back, after which a client cannot tell whether it happened.
     */
    afterEffect: z.boolean().optional(),
    /** Only requests for this x-moto-account-id (moto's default account when no header). */
    account: z.string().optional(),
    /** Only requests whose form parameters have these values, e.g. { NetworkInterfaceId: "eni-1" }. */
    match: z.record(z.string(), z.string()).optional(),
    /** Fires for each selected request with this probability (0 < p ≤ 1); always when absent. */
    probability: z.number().gt(0).max(1).optional(),
    /** Selects nothing until this long after the rule was added. */
    startAfterMs: z.number().int().nonnegative().optional(),
    /** Selects for this long once its start (added + startAfterMs) has come, then expires; unbounded when absent. */
    activeForMs: z.number().int().positive().optional(),
  })
  .strict()
  .refine((r) => r.code !== undefined || r.latencyMs !== undefined || r.dropConnection === true, {
    message: 'a rule needs code, latencyMs or dropConnection',
  })
  .refine((r) => r.afterEffect !== true || r.code !== undefined || r.dropConnection === true, {
    message: 'afterEffect replaces the answer: it needs code or dropConnection',
  });

export type FaultRule = z.infer<typeof faultRuleSchema>;

/**
 * `pending` before startAfterMs has passed, `active` while it may select
 * requests, `expired` after its activeForMs window, `exhausted` once it has
 * been applied `count` times.
 */
export type FaultRuleStatus = 'pending' | 'active' | 'expired' | 'exhausted';

export interface FaultRuleState extends FaultRule {
  id: number;
  /** How many requests the rule has affected (faulted) so far. */
  applied: number;
  /** How many requests the rule selected, fired or not (≥ applied; differs only with `probability`). */
  matched: number;
  status: FaultRuleStatus;
  /** When the rule was added (ISO 8601); its time window is measured from here. */
  addedAt: string;
}

/** Faults injected since the last clear, all rules and accounts together. */
export interface InjectedFaults {
  /** Requests a rule was applied to, each counted once. */
  total: number;
  /** Error replies sent, per EC2 error code. */
  byCode: Record<string, number>;
  /** Connections dropped. */
  dropped: number;
  /** Requests held back by latencyMs. */
  delayed: number;
}

/** Requests the throttle answered RequestLimitExceeded since the last clear (rules' faults are in `injected`). */
export interface ThrottledRequests {
  total: number;
  byAction: Record<string, number>;
}

/** GET and POST /__faults/throttle. */
export interface ThrottleStatus {
  settings: ThrottleSettings;
  /** The buckets in use, with their tokens now; none after a refill, they are created full on first use. */
  buckets: ThrottleBucketState[];
}

export interface FaultProxyState {
  rules: FaultRuleState[];
  /** Requests received per action (faulted ones included), all accounts. */
  counts: Record<string, number>;
  countsByAccount: Record<string, Record<string, number>>;
  injected: InjectedFaults;
  /** The seed of the current random sequence (see the head of this file). */
  seed: number;
  fidelity: FidelitySettings;
  /** Request-rate throttling settings (throttle.ts). */
  throttle: ThrottleSettings;
  throttled: ThrottledRequests;
  /**
   * Requests that passed the throttle (each took a token when it was on), per
   * `account/region` and bucket (`Action:category`), since every bucket was
   * last full (the last clear or throttle change): what lowerBoundSecondsAll
   * (throttle.ts) takes. Counted with throttling off too.
   */
  served: Record<string, Record<string, number>>;
  /**
   * When each action was first and last served (epoch ms), since the same
   * moment as `served`: with the counts, the rate each API actually got.
   */
  servedSpan: Record<string, { firstMs: number; lastMs: number }>;
}

const MAX_SEED = 0xffffffff;
const seedSchema = z.number().int().min(0).max(MAX_SEED);
const seedBodySchema = z.object({ seed: seedSchema }).strict();

/** GET /__faults/attachment-changes?after=N&waitMs=M: the attachments made and ended after position N, in order. */
const attachmentChangesQuerySchema = z.object({
  after: z.coerce.number().int().nonnegative(),
  /** How long to wait for a change when there is none yet (at most 30 s). */
  waitMs: z.coerce.number().int().nonnegative().max(30_000).default(0),
});

const fidelitySchema = z
  .object({
    enabled: z.boolean().optional(),
    attachDelayMs: z.number().int().nonnegative().optional(),
    detachDelayMs: z.number().int().nonnegative().optional(),
    paginate: z.boolean().optional(),
  })
  .strict();

export interface FaultProxy {
  endpoint: string;
  stop(): Promise<void>;
}

export interface FaultProxyOptions {
  /** moto's endpoint. */
  target: string;
  /** Port to listen on (127.0.0.1); a free one when absent. */
  port?: number;
  /** Seed of the random sequence, an integer 0 … 2³²−1; random when absent (and reported in the state). */
  seed?: number;
  /** EC2 request-rate throttling: a preset name or full settings (throttle.ts); 'off' when absent. */
  throttle?: ThrottleSettings | ThrottlePreset;
}

/** mulberry32: a small, fast 32-bit PRNG; the same seed gives the same sequence of uint32 values. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** A uniform float in [0, 1) from a uint32 generator. */
const unit = (next: () => number) => () => next() / 2 ** 32;

/** A rule as the proxy keeps it: the rule, its counters, its window (performance.now() ms) and its random stream. */
interface LiveRule {
  rule: FaultRule;
  id: number;
  applied: number;
  matched: number;
  addedAt: number;
  startsAt: number;
  expiresAt: number | undefined;
  random: () => number;
}

function emptyInjected(): InjectedFaults {
  return { total: 0, byCode: {}, dropped: 0, delayed: 0 };
}

function emptyThrottled(): ThrottledRequests {
  return { total: 0, byAction: {} };
}

function initialThrottle(option: FaultProxyOptions['throttle']): ThrottleSettings {
  if (option === undefined) return throttlePreset('off');
  if (typeof option === 'string') {
    if (!(THROTTLE_PRESETS as readonly string[]).includes(option)) throw new Error(`fault proxy throttle must be ${THROTTLE_PRESETS.join(' or ')} or settings, got "${option}"`);
    return throttlePreset(option);
  }
  const parsed = throttleSettingsSchema.safeParse(option);
  if (!parsed.success) throw new Error(`fault proxy throttle settings: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
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

function ruleStatus(live: LiveRule, now: number): FaultRuleStatus {
  if (live.expiresAt !== undefined && now >= live.expiresAt) return 'expired';
  if (live.rule.count !== undefined && live.applied >= live.rule.count) return 'exhausted';
  if (now < live.startsAt) return 'pending';
  return 'active';
}

function ruleSelects(live: LiveRule, call: Ec2Call, now: number): boolean {
  const { rule } = live;
  if (ruleStatus(live, now) !== 'active') return false;
  if (rule.action !== '*' && rule.action !== call.action) return false;
  if (rule.account !== undefined && rule.account !== call.account) return false;
  return Object.entries(rule.match ?? {}).every(([k, v]) => call.params.get(k) === v);
}

/**
 * The HTTP status EC2 sends with an error code: throttling and service-side
 * failures are 5xx (the SDKs retry those), authorization failures 401/403,
 * every other client error 400. A rule's `httpStatus` overrides it.
 */
const EC2_ERROR_STATUS: Record<string, number> = {
  RequestLimitExceeded: 503,
  ServiceUnavailable: 503,
  Unavailable: 503,
  InternalError: 500,
  InternalFailure: 500,
  UnauthorizedOperation: 403,
  AuthFailure: 401,
};

function defaultStatus(code: string): number {
  return EC2_ERROR_STATUS[code] ?? 400;
}

function defaultMessage(code: string, action: string): string {
  return code === 'RequestLimitExceeded' ? 'Request limit exceeded.' : `Injected ${code} for ${action}.`;
}

export async function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  if (opts.seed !== undefined && !seedSchema.safeParse(opts.seed).success) {
    throw new Error(`fault proxy seed must be an integer 0 … ${MAX_SEED}, got ${opts.seed}`);
  }
  const target = new URL(opts.target);
  const fidelity = new Ec2Fidelity(opts.target);
  const buckets = new ThrottleBuckets(initialThrottle(opts.throttle));
  let throttled = emptyThrottled();
  let served: Record<string, Record<string, number>> = {};
  let servedSpan: Record<string, { firstMs: number; lastMs: number }> = {};
  let rules: LiveRule[] = [];
  let nextRuleId = 1;
  let countsByAccount: Record<string, Record<string, number>> = {};
  let injected = emptyInjected();
  let seed = opts.seed ?? randomInt(0, MAX_SEED);
  // Hands each added rule the seed of its own stream.
  let ruleSeeds = mulberry32(seed);

  const reseed = (value: number) => {
    seed = value;
    ruleSeeds = mulberry32(seed);
    for (const live of rules) live.random = unit(mulberry32(ruleSeeds()));
  };

  const publicRule = (live: LiveRule, now: number): FaultRuleState => ({
    ...live.rule,
    id: live.id,
    applied: live.applied,
    matched: live.matched,
    status: ruleStatus(live, now),
    addedAt: new Date(live.addedAt).toISOString(),
  });

  const state = (): FaultProxyState => {
    const counts: Record<string, number> = {};
    for (const perAccount of Object.values(countsByAccount)) {
      for (const [action, n] of Object.entries(perAccount)) counts[action] = (counts[action] ?? 0) + n;
    }
    const now = performance.now();
    return {
      rules: rules.map((r) => publicRule(r, now)),
      counts,
      countsByAccount: structuredClone(countsByAccount),
      injected: structuredClone(injected),
      seed,
      fidelity: fidelity.settings,
      throttle: buckets.settings,
      throttled: structuredClone(throttled),
      served: structuredClone(served),
      servedSpan: structuredClone(servedSpan),
    };
  };

  const throttleStatus = (): ThrottleStatus => ({ settings: buckets.settings, buckets: buckets.snapshot() });

  const addRule = (rule: FaultRule, now: number): LiveRule => {
    const startsAt = now + (rule.startAfterMs ?? 0);
    return {
      rule,
      id: nextRuleId++,
      applied: 0,
      matched: 0,
      addedAt: Date.now(),
      startsAt,
      expiresAt: rule.activeForMs === undefined ? undefined : startsAt + rule.activeForMs,
      random: unit(mulberry32(ruleSeeds())),
    };
  };

  /** The first rule that selects the call and fires, counters updated; undefined when none does. */
  const firingRule = (call: Ec2Call): LiveRule | undefined => {
    const now = performance.now();
    for (const live of rules) {
      if (!ruleSelects(live, call, now)) continue;
      live.matched += 1;
      const p = live.rule.probability;
      if (p !== undefined && live.random() >= p) continue;
      live.applied += 1;
      return live;
    }
    return undefined;
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
      fetchUpstream: () => fetchUpstream(req, body),
      send: (reply) => sendReply(res, reply),
    };
  }

  function fetchUpstream(req: IncomingMessage, body: Buffer): Promise<Ec2Reply> {
    return new Promise<Ec2Reply>((resolve, reject) => {
      upstream(req, body, (r) => {
        readBody(r).then((b) => resolve({ status: r.statusCode ?? 502, headers: r.headers, body: b }), reject);
      }, reject);
    });
  }

  /** An exchange whose answer goes nowhere: the request takes effect, the client hears nothing of it. */
  function effectOnly(req: IncomingMessage, body: Buffer, call: Ec2Call): Exchange {
    const fetch = () => fetchUpstream(req, body);
    return { call, forward: async () => void (await fetch()), fetchUpstream: fetch, send: () => undefined };
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
      const now = performance.now();
      const added = (Array.isArray(parsed.data) ? parsed.data : [parsed.data]).map((r) => addRule(r, now));
      rules = [...rules, ...added];
      return sendJson(res, 200, { added: added.map((r) => publicRule(r, now)) });
    }
    if (path === CONTROL_PATH && req.method === 'DELETE') {
      rules = [];
      countsByAccount = {};
      injected = emptyInjected();
      throttled = emptyThrottled();
      served = {};
      servedSpan = {};
      buckets.refillAll();
      ruleSeeds = mulberry32(seed);
      return sendJson(res, 200, state());
    }
    if (path === `${CONTROL_PATH}/seed` && req.method === 'GET') return sendJson(res, 200, { seed });
    if (path === `${CONTROL_PATH}/seed` && req.method === 'POST') {
      const parsed = seedBodySchema.safeParse(json);
      if (!parsed.success) return sendJson(res, 400, { error: z.prettifyError(parsed.error) });
      reseed(parsed.data.seed);
      return sendJson(res, 200, { seed });
    }
    if (path === `${CONTROL_PATH}/fidelity` && req.method === 'GET') return sendJson(res, 200, fidelity.settings);
    if (path === `${CONTROL_PATH}/fidelity` && req.method === 'POST') {
      const parsed = fidelitySchema.safeParse(json);
      if (!parsed.success) return sendJson(res, 400, { error: z.prettifyError(parsed.error) });
      const update: Partial<FidelitySettings> = {};
      for (const [k, v] of Object.entries(parsed.data)) if (v !== undefined) Object.assign(update, { [k]: v });
      return sendJson(res, 200, fidelity.update(update));
    }
    if (path === `${CONTROL_PATH}/attachment-changes` && req.method === 'GET') {
      const query = new URL(req.url ?? '/', 'http://proxy').searchParams;
      const parsed = attachmentChangesQuerySchema.safeParse(Object.fromEntries(query));
      if (!parsed.success) return sendJson(res, 400, { error: z.prettifyError(parsed.error) });
      // A long poll: a reader that goes away stops the wait.
      const gone = new AbortController();
      res.once('close', () => gone.abort());
      const changes = await fidelity.changes.next(parsed.data.after, parsed.data.waitMs, gone.signal);
      if (gone.signal.aborted && !res.writable) return;
      return sendJson(res, 200, changes);
    }
    if (path === `${CONTROL_PATH}/throttle` && req.method === 'GET') return sendJson(res, 200, throttleStatus());
    if (path === `${CONTROL_PATH}/throttle` && req.method === 'POST') {
      // A bare preset name is short for { "preset": name }.
      const parsed = throttleUpdateSchema.safeParse(typeof json === 'string' ? { preset: json } : json);
      if (!parsed.success) return sendJson(res, 400, { error: z.prettifyError(parsed.error) });
      buckets.set(mergeThrottleSettings(buckets.settings, parsed.data));
      // `served` counts from the moment every bucket was full, as lowerBoundSeconds assumes.
      served = {};
      servedSpan = {};
      return sendJson(res, 200, throttleStatus());
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

    // EC2's own request-rate limit comes first: a throttled request reaches no rule and no fidelity handler.
    const decision = buckets.take(call);
    if (!decision.allowed) {
      throttled.total += 1;
      throttled.byAction[call.action] = (throttled.byAction[call.action] ?? 0) + 1;
      return sendReply(res, ec2ErrorReply(defaultStatus('RequestLimitExceeded'), 'RequestLimitExceeded', defaultMessage('RequestLimitExceeded', call.action)));
    }
    const perScope = (served[decision.scope] ??= {});
    perScope[decision.bucket] = (perScope[decision.bucket] ?? 0) + 1;
    const servedAt = Date.now();
    const span = (servedSpan[call.action] ??= { firstMs: servedAt, lastMs: servedAt });
    span.lastMs = servedAt;

    const rule = firingRule(call)?.rule;
    if (rule) {
      // Counted when decided, so a clear during the latency does not see it afterwards.
      injected.total += 1;
      if (rule.latencyMs) injected.delayed += 1;
      if (rule.dropConnection) injected.dropped += 1;
      else if (rule.code !== undefined) injected.byCode[rule.code] = (injected.byCode[rule.code] ?? 0) + 1;
      if (rule.latencyMs) await sleep(rule.latencyMs);
      // The request takes effect; its answer is thrown away and the fault sent instead.
      if (rule.afterEffect) await fidelity.handle(effectOnly(req, body, call));
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

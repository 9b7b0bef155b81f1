// Client for the fault proxy's JSON control API (fault-proxy.ts, /__faults).
import {
  CONTROL_PATH,
  type FaultProxyState,
  type FaultRule,
  type FaultRuleState,
  type FidelitySettings,
  type InjectedFaults,
  type ThrottledRequests,
  type ThrottleStatus,
} from './fault-proxy.js';
import type { AttachmentChanges } from './attachment-changes.js';
import { lowerBoundSecondsAll, type LowerBoundOptions, type ThrottlePreset, type ThrottleSettings, type ThrottleUpdate } from './throttle.js';

export type { AttachmentChanges } from './attachment-changes.js';
export type {
  FaultProxyState,
  FaultRule,
  FaultRuleState,
  FaultRuleStatus,
  FidelitySettings,
  InjectedFaults,
  ThrottleBucketState,
  ThrottledRequests,
  ThrottlePreset,
  ThrottleSettings,
  ThrottleStatus,
  ThrottleUpdate,
} from './fault-proxy.js';

export class FaultProxyClient {
  constructor(private readonly endpoint: string) {}

  private async call<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const res = await fetch(`${this.endpoint}${path}`, {
      method,
      signal,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`fault proxy ${method} ${path}: HTTP ${res.status} ${text}`);
    return JSON.parse(text) as T;
  }

  /** Adds rules after the existing ones; the first matching rule wins. */
  async addRules(rules: FaultRule | FaultRule[]): Promise<FaultRuleState[]> {
    const out = await this.call<{ added: FaultRuleState[] }>('POST', CONTROL_PATH, rules);
    return out.added;
  }

  /**
   * Removes every rule, resets the request counters, the injected-fault and
   * throttled totals and the served counts, refills every throttle bucket, and
   * restarts the random sequence from the current seed (fidelity and throttle
   * settings and the seed stay).
   */
  async clear(): Promise<void> {
    await this.call('DELETE', CONTROL_PATH);
  }

  async state(): Promise<FaultProxyState> {
    return this.call<FaultProxyState>('GET', CONTROL_PATH);
  }

  async rules(): Promise<FaultRuleState[]> {
    return (await this.state()).rules;
  }

  /** Requests received per action since the last clear: all accounts, or only `account`. */
  async counts(account?: string): Promise<Record<string, number>> {
    const s = await this.state();
    return account === undefined ? s.counts : (s.countsByAccount[account] ?? {});
  }

  /** Faults injected since the last clear: total, per EC2 error code, dropped connections, delays. */
  async injected(): Promise<InjectedFaults> {
    return (await this.state()).injected;
  }

  async seed(): Promise<number> {
    return (await this.call<{ seed: number }>('GET', `${CONTROL_PATH}/seed`)).seed;
  }

  /**
   * Restarts the random sequence from `seed` (an integer 0 … 2³²−1): the
   * existing rules get fresh streams as if added after it, in their order.
   */
  async setSeed(seed: number): Promise<number> {
    return (await this.call<{ seed: number }>('POST', `${CONTROL_PATH}/seed`, { seed })).seed;
  }

  async fidelity(): Promise<FidelitySettings> {
    return this.call<FidelitySettings>('GET', `${CONTROL_PATH}/fidelity`);
  }

  /** Merges the given settings into the current ones and returns the result. */
  async setFidelity(settings: Partial<FidelitySettings>): Promise<FidelitySettings> {
    return this.call<FidelitySettings>('POST', `${CONTROL_PATH}/fidelity`, settings);
  }

  /**
   * The attachments the proxy made and ended after position `after` (0 at
   * the start), in order, waiting up to `waitMs` for one; `complete` false
   * means some were dropped or `after` is from an earlier proxy.
   */
  async attachmentChanges(after: number, waitMs = 0, signal?: AbortSignal): Promise<AttachmentChanges> {
    return this.call<AttachmentChanges>('GET', `${CONTROL_PATH}/attachment-changes?after=${after}&waitMs=${waitMs}`, undefined, signal);
  }

  /** Request-rate throttling: the settings and the buckets in use with their tokens now. */
  async throttle(): Promise<ThrottleStatus> {
    return this.call<ThrottleStatus>('GET', `${CONTROL_PATH}/throttle`);
  }

  /**
   * Switches to a preset ('aws': EC2's documented limits; 'off') or merges a
   * change (throttle.ts, ThrottleUpdate; it may name a preset to start from).
   * Every bucket starts full again and the served counts restart. Returns the
   * settings now in force.
   */
  async setThrottle(presetOrUpdate: ThrottlePreset | ThrottleUpdate): Promise<ThrottleSettings> {
    const body: ThrottleUpdate = typeof presetOrUpdate === 'string' ? { preset: presetOrUpdate } : presetOrUpdate;
    return (await this.call<ThrottleStatus>('POST', `${CONTROL_PATH}/throttle`, body)).settings;
  }

  /** Requests the throttle answered RequestLimitExceeded since the last clear. */
  async throttled(): Promise<ThrottledRequests> {
    return (await this.state()).throttled;
  }

  /**
   * Requests that passed the throttle since every bucket was last full (the
   * last clear or setThrottle), per `account/region` and bucket (`Action:category`).
   */
  async served(): Promise<Record<string, Record<string, number>>> {
    return (await this.state()).served;
  }

  /**
   * The time the throttle buckets alone force on the requests served since
   * they were last full (see served()): throttle.ts lowerBoundSecondsAll,
   * under `settings` or the proxy's own.
   */
  async throttleLowerBoundSeconds(settings?: ThrottleSettings, opts?: LowerBoundOptions): Promise<number> {
    const s = await this.state();
    return lowerBoundSecondsAll(s.served, settings ?? s.throttle, opts);
  }
}

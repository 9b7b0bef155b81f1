// Client for the fault proxy's JSON control API (fault-proxy.ts, /__faults).
import {
  CONTROL_PATH,
  type FaultProxyState,
  type FaultRule,
  type FaultRuleState,
  type FidelitySettings,
  type InjectedFaults,
} from './fault-proxy.js';

export type { FaultProxyState, FaultRule, FaultRuleState, FaultRuleStatus, FidelitySettings, InjectedFaults } from './fault-proxy.js';

export class FaultProxyClient {
  constructor(private readonly endpoint: string) {}

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.endpoint}${path}`, {
      method,
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
   * Removes every rule, resets the request counters and the injected-fault
   * totals, and restarts the random sequence from the current seed (fidelity
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
}

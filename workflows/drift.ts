// Drift on the nodes: after a reboot an interface is back at the default MTU,
// down, and a DPDK device back on its kernel driver, while EC2 still shows the
// ENI attached and the status would stay Ready. On its full passes the entity
// asks each node's agent (read-only verifyInterfaces) whether its Ready
// attachments still look as configured; what drifted is shown, and re-applied
// by a provisioning child with `repair` (the node steps are idempotent).
import { log } from '@temporalio/workflow';
import type { ConfiguredAttachment, DriftRecord, EntityState, ExpectedInterface, InterfaceDrift } from '../common/workflow-api.js';
import { isNodeAgentUnavailable } from './failures.js';
import { metrics } from './metrics.js';
import { onNode } from './proxies.js';
import { driftText } from './status.js';

/** How long a check waits for a node's agent: a node whose agent is away is checked next time. */
const AGENT_WAIT_MS = 10_000;

/** Kinds a re-apply repairs. `missing` and `ambiguous` need EC2 or a person, not the node steps. */
const REPAIRABLE = new Set<InterfaceDrift['kind']>(['mtu', 'down', 'driver']);

export class NodeDrift {
  private readonly drift: Record<string, DriftRecord>;

  /**
   * `keepWhileRepairing` says whether a drift whose attachment a provisioning child is re-applying
   * stays recorded until the child ends (REPAIRS_KEPT_PATCH): forgotten, a repair lasting over a
   * pass ended without DriftRepaired and a failed one was retried at once.
   */
  constructor(
    private readonly state: EntityState,
    private readonly event: (type: 'Normal' | 'Warning', reason: string, message: string) => Promise<void>,
    private readonly keepWhileRepairing: () => boolean,
  ) {
    this.drift = state.drift ??= {};
  }

  /**
   * One step of a round of checks. A round asks every node with settled attachments, at most
   * `perPass` a pass (one activity each, three history events: a round over a thousand nodes in one
   * pass would fill a run's history), and is kept in the entity state, so continue-as-new neither
   * loses nor restarts it. `start` begins a new round (the resync came, or something outside
   * changed): every such node not already waiting joins the end. Returns whether nodes are left
   * for a next pass.
   */
  async checkRound(settled: Map<string, { node: string; done: ConfiguredAttachment }>, repairing: ReadonlySet<string>, start: boolean, perPass: number): Promise<boolean> {
    const nodes = [...new Set([...settled.values()].map((s) => s.node))].sort();
    if (start) {
      // Nodes not yet asked keep their place: restarting the round would ask the first nodes again and again.
      const pending = this.state.driftRound?.pending ?? [];
      const queued = new Set(pending);
      this.state.driftRound = { startedAt: Date.now(), pending: [...pending, ...nodes.filter((n) => !queued.has(n))] };
    }
    this.forgetUnsettled(settled, repairing);
    const round = this.state.driftRound;
    if (!round) return false;
    const present = new Set(nodes);
    round.pending = round.pending.filter((n) => present.has(n));
    const now = new Set(round.pending.splice(0, Math.max(1, perPass)));
    if (now.size > 0) await this.check(settled, repairing, now);
    return round.pending.length > 0;
  }

  /**
   * Asks every node with settled attachments (`settled`: attachment key → what was configured)
   * whether they still look so; with `onlyNodes`, just those (their agents started again).
   */
  async check(settled: Map<string, { node: string; done: ConfiguredAttachment }>, repairing: ReadonlySet<string>, onlyNodes?: ReadonlySet<string>): Promise<void> {
    const byNode = new Map<string, Array<[string, ConfiguredAttachment]>>();
    for (const [key, { node, done }] of settled) if (!onlyNodes || onlyNodes.has(node)) byNode.set(node, [...(byNode.get(node) ?? []), [key, done]]);
    this.forgetUnsettled(settled, repairing, onlyNodes);
    await Promise.all([...byNode].map(async ([node, entries]) => {
      const expected: ExpectedInterface[] = entries.map(([, done]) => ({
        macAddress: done.macAddress,
        mtu: done.mtu,
        ...(done.dpdk ? { dpdk: { driver: done.dpdk.driver, pciAddress: done.dpdk.pciAddress } } : {}),
      }));
      let result;
      try {
        result = await onNode(node, AGENT_WAIT_MS).verifyInterfaces.executeWithOptions({ summary: `verify ${entries.length} interfaces on ${node}`, retry: { maximumAttempts: 3 } }, [{ expected }]);
      } catch (err) {
        if (!isNodeAgentUnavailable(err)) log.warn('drift check failed', { node, error: String(err) });
        return;
      }
      for (const [i, [key]] of entries.entries()) {
        const check = result.interfaces[i]!;
        const found = check.drift.filter((d) => REPAIRABLE.has(d.kind));
        if (found.length === 0) {
          delete this.drift[key];
          continue;
        }
        const before = this.drift[key];
        this.drift[key] = { node, drift: found, at: Date.now() };
        if (!before) await this.event('Warning', 'DriftDetected', `node ${node}: ${check.actual.interfaceName ?? check.macAddress} drifted: ${driftText(this.drift[key]!)}; re-applying`);
      }
    }));
  }

  /**
   * Keys no longer settled have nothing to say: torn down, or their node gone. One a provisioning
   * child is re-applying keeps its record: the child's end says DriftRepaired, or leaves it to be
   * repaired again after the failure's back-off.
   */
  private forgetUnsettled(settled: ReadonlyMap<string, unknown>, repairing: ReadonlySet<string>, onlyNodes?: ReadonlySet<string>): void {
    for (const [key, d] of Object.entries(this.drift)) {
      if (settled.has(key) || (onlyNodes && !onlyNodes.has(d.node))) continue;
      if (repairing.has(key) && this.keepWhileRepairing()) continue;
      delete this.drift[key];
    }
  }

  /** Attachment keys to re-apply now. */
  keys(): string[] {
    return Object.keys(this.drift);
  }

  get(key: string): DriftRecord | undefined {
    return this.drift[key];
  }

  /** A repairing provisioning finished well: the drift is gone. */
  async repaired(key: string): Promise<void> {
    const d = this.drift[key];
    if (!d) return;
    delete this.drift[key];
    for (const x of d.drift) metrics().driftRepaired(x.kind);
    await this.event('Normal', 'DriftRepaired', `node ${d.node}: re-applied ${driftText(d)}`);
  }
}

// Our own Prometheus metrics, recorded through Temporal's MetricMeter and
// exported on the worker runtime's Prometheus endpoint (METRICS_BIND_ADDRESS,
// /metrics). Workflow code passes `metricMeter` from '@temporalio/workflow'
// (replay-safe: nothing is emitted while replaying), activities
// `Context.current().metricMeter`, worker code `Runtime.instance().metricMeter`.
// The runtime's `metricPrefix` (default `temporal_`) applies to the SDK's own
// metrics only: these keep their names as written here. Pure module: no Node
// imports, so workflow code may import it.
import type { MetricMeter, MetricTags } from '@temporalio/common';

type Kind = 'counter' | 'gauge' | 'histogram';

interface MetricDef {
  name: string;
  kind: Kind;
  /** Our labels; the meter adds its own (workflowType or activityType, namespace, taskQueue). */
  labels: readonly string[];
  help: string;
  unit?: string;
}

const def = <K extends string>(defs: Record<K, MetricDef>) => defs;

/** Every metric of ours, for the README and the dashboard (test/metrics.test.ts checks the dashboard names each). */
export const METRICS = def({
  attachmentsDesired: { name: 'nodeeni_attachments_desired', kind: 'gauge', labels: ['nodeeni'], help: 'attachments the NodeENI wants now (set by its entity every pass; 0 once it is gone)' },
  attachmentsReady: { name: 'nodeeni_attachments_ready', kind: 'gauge', labels: ['nodeeni'], help: 'attachments that are Ready (status.readyCount)' },
  enisManaged: { name: 'nodeeni_enis_managed', kind: 'gauge', labels: ['nodeeni'], help: 'ENIs EC2 holds for the NodeENI by tag, those on their way out included, those left behind not' },
  entityPass: {
    name: 'nodeeni_entity_last_pass_timestamp_seconds', kind: 'gauge', labels: ['nodeeni'], unit: 's',
    help: 'when the entity last set the gauges above (Unix seconds): with several workers, the series of the newest pass is the current one',
  },
  provisions: { name: 'nodeeni_provisions_total', kind: 'counter', labels: ['outcome', 'reason'], help: 'provisionAttachment runs ended, by outcome (ok, failed, forced) and reason' },
  provisionDuration: { name: 'nodeeni_provision_duration_seconds', kind: 'histogram', labels: ['outcome'], unit: 's', help: 'time from the start of a provisionAttachment run to its end' },
  teardowns: { name: 'nodeeni_teardowns_total', kind: 'counter', labels: ['outcome', 'reason'], help: 'teardownAttachment runs ended, by outcome (ok, failed, forced) and reason' },
  teardownDuration: { name: 'nodeeni_teardown_duration_seconds', kind: 'histogram', labels: ['outcome'], unit: 's', help: 'time from the start of a teardownAttachment run to its end' },
  ec2Errors: { name: 'nodeeni_ec2_errors_total', kind: 'counter', labels: ['operation', 'code'], help: 'EC2 calls that failed, by EC2 action and error code (EC2Unreachable: no answer)' },
  ec2Throttled: { name: 'nodeeni_ec2_throttled_total', kind: 'counter', labels: ['operation', 'code'], help: 'EC2 calls refused for their rate (RequestLimitExceeded and the other throttling codes)' },
  enisLeaked: { name: 'nodeeni_enis_leaked_total', kind: 'counter', labels: ['nodeeni'], help: 'ENIs left behind in EC2 by a force-finish (tagged for the sweeper)' },
  reconcileFailures: { name: 'nodeeni_reconcile_failures_total', kind: 'counter', labels: ['reason'], help: 'failed reconcile passes of the long-lived workflows, by reason (workflowType tells which)' },
  enisSwept: { name: 'nodeeni_enis_swept_total', kind: 'counter', labels: ['mode'], help: 'leaked ENIs the sweeper deleted (mode=delete) or would have (mode=dry_run)' },
  driftRepaired: { name: 'nodeeni_drift_repaired_total', kind: 'counter', labels: ['kind'], help: 'drift found and repaired, by kind' },
});

export type MetricKey = keyof typeof METRICS;

/** Seconds: a provisioning ends by its deadline (900 s by default); a teardown waits for a detach, then Force. */
const DURATION_BUCKETS = [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 900, 1800];

/** For the Prometheus exporter's histogramBucketOverrides (its default buckets are milliseconds). */
export const HISTOGRAM_BUCKETS: Record<string, number[]> = {
  [METRICS.provisionDuration.name]: DURATION_BUCKETS,
  [METRICS.teardownDuration.name]: DURATION_BUCKETS,
};

export type Outcome = 'ok' | 'failed' | 'forced';
export type SweepMode = 'delete' | 'dry_run';

/** Label values stay short and bounded: failure types and EC2 codes, never messages or IDs. */
export function labelValue(v: string): string {
  const cleaned = v.replace(/[^A-Za-z0-9_.:-]/g, '').slice(0, 64);
  return cleaned || 'Unknown';
}

/** The EC2 action a call's context names ("AttachNetworkInterface eni-1 to i-2 at 1" → AttachNetworkInterface). */
export function ec2Operation(context: string): string {
  const first = context.trim().split(/\s+/)[0] ?? '';
  return /^[A-Z][A-Za-z0-9]+$/.test(first) ? first : 'Other';
}

/** Codes that say "too fast" (activities/ec2/errors.ts retries them after a jittered back-off). */
export const THROTTLING_CODES: ReadonlySet<string> = new Set(['RequestLimitExceeded', 'Throttling', 'ThrottlingException', 'RequestThrottled']);

const nonNegative = (n: number) => (Number.isFinite(n) && n > 0 ? n : 0);

/**
 * Typed recorders over a meter. Metric objects are made per call: in workflow
 * code they are plain objects (the worker caches the real ones), and the rest
 * record rarely (a failure, a sweep).
 */
export function nodeEniMetrics(meter: MetricMeter) {
  const counter = (m: MetricDef, tags: MetricTags, n = 1) => {
    if (n > 0) meter.createCounter(m.name, m.unit, m.help).add(Math.round(n), tags);
  };
  const gauge = (m: MetricDef, value: number, tags: MetricTags) => meter.createGauge(m.name, 'int', m.unit, m.help).set(nonNegative(Math.round(value)), tags);
  const seconds = (m: MetricDef, value: number, tags: MetricTags) => meter.createHistogram(m.name, 'float', m.unit, m.help).record(nonNegative(value), tags);
  const ended = (count: MetricDef, duration: MetricDef, outcome: Outcome, reason: string | undefined, durationSeconds: number) => {
    counter(count, { outcome, reason: outcome === 'ok' ? 'None' : labelValue(reason ?? '') });
    seconds(duration, durationSeconds, { outcome });
  };
  return {
    /** The entity's view after a pass; all zero once the NodeENI is gone. */
    nodeEniAttachments(nodeEni: string, v: { desired: number; ready: number; managed: number; /** epoch ms */ passAt: number }): void {
      const tags = { nodeeni: nodeEni };
      gauge(METRICS.attachmentsDesired, v.desired, tags);
      gauge(METRICS.attachmentsReady, v.ready, tags);
      gauge(METRICS.enisManaged, v.managed, tags);
      gauge(METRICS.entityPass, v.passAt / 1000, tags);
    },
    provisionEnded(outcome: Outcome, reason: string | undefined, durationSeconds: number): void {
      ended(METRICS.provisions, METRICS.provisionDuration, outcome, reason, durationSeconds);
    },
    teardownEnded(outcome: Outcome, reason: string | undefined, durationSeconds: number): void {
      ended(METRICS.teardowns, METRICS.teardownDuration, outcome, reason, durationSeconds);
    },
    /** One failed EC2 call; throttling codes also count as throttled. */
    ec2Error(operation: string, code: string): void {
      const tags = { operation: labelValue(operation), code: labelValue(code) };
      counter(METRICS.ec2Errors, tags);
      if (THROTTLING_CODES.has(code)) counter(METRICS.ec2Throttled, tags);
    },
    enisLeaked(nodeEni: string, count = 1): void {
      counter(METRICS.enisLeaked, { nodeeni: nodeEni }, count);
    },
    reconcileFailed(reason: string): void {
      counter(METRICS.reconcileFailures, { reason: labelValue(reason) });
    },
    /** For the leaked-ENI sweeper: ENIs it deleted (`delete`) or, in a dry run, would have (`dry_run`). */
    enisSwept(mode: SweepMode, count = 1): void {
      counter(METRICS.enisSwept, { mode }, count);
    },
    /** For drift repair: one repaired difference of this kind (e.g. security_groups, delete_on_termination). */
    driftRepaired(kind: string, count = 1): void {
      counter(METRICS.driftRepaired, { kind: labelValue(kind) }, count);
    },
  };
}

export type NodeEniMetrics = ReturnType<typeof nodeEniMetrics>;

/** A resctrl pod group's monitoring counters (from mon_data): set by the workflow on its passes and by the node agent while it watches. */
export function resctrlMonGauges(meter: MetricMeter) {
  return {
    llc: meter.createGauge('nodeeni_resctrl_pod_llc_occupancy_bytes', 'int', 'bytes', 'L3 occupancy of the pod group'),
    mbmTotal: meter.createGauge('nodeeni_resctrl_pod_mbm_total_bytes', 'int', 'bytes', 'memory bandwidth total counter of the pod group'),
    mbmLocal: meter.createGauge('nodeeni_resctrl_pod_mbm_local_bytes', 'int', 'bytes', 'memory bandwidth local counter of the pod group'),
  };
}

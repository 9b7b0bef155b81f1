// Where the Temporal dev server's time went during a phase (`--profile`): the
// growth of its latency histograms between two scrapes of its Prometheus
// endpoint, per metric and operation, largest total first. A workflow task
// that waits seconds before a worker sees it waits somewhere in here: in the
// history service's task queues (task_latency_queue, per task type), on a
// shard's lock or I/O semaphore, in persistence, or in matching.

/** `name{labels}` → value, for the `_sum` and `_count` series of every histogram. */
export type MetricsSnapshot = Map<string, number>;

export async function scrapeMetrics(url: string): Promise<MetricsSnapshot> {
  const text = await (await fetch(url)).text();
  const out: MetricsSnapshot = new Map();
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)_(sum|count)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m) continue;
    const [, name, kind, labels, value] = m;
    const label = (key: string) => new RegExp(`(?:^|,)${key}="([^"]*)"`).exec(labels!)?.[1];
    // One row per metric and operation (or task type); the other labels are summed over.
    const what = [label('operation'), label('task_type') !== label('operation') ? label('task_type') : undefined].filter(Boolean).join('/') || '-';
    const key = `${name}|${what}|${kind}`;
    out.set(key, (out.get(key) ?? 0) + Number(value));
  }
  return out;
}

export interface LatencyRow {
  metric: string;
  operation: string;
  count: number;
  totalSeconds: number;
  meanMs: number;
}

/** The rows that grew between the two snapshots, largest total time first. */
export function latencyGrowth(before: MetricsSnapshot, after: MetricsSnapshot, top = 40): LatencyRow[] {
  const rows: LatencyRow[] = [];
  for (const [key, sumAfter] of after) {
    if (!key.endsWith('|sum') || !/latency/.test(key)) continue;
    const [metric, operation] = key.split('|') as [string, string];
    // Long polls wait by design, and a workflow's or activity's own duration is not the server's time.
    if (/Poll|GetTaskQueueUserData/.test(operation) || /poll|long_request|schedule_to_close|end_to_end|start_to_close/.test(metric)) continue;
    const countKey = `${metric}|${operation}|count`;
    const count = (after.get(countKey) ?? 0) - (before.get(countKey) ?? 0);
    const totalSeconds = sumAfter - (before.get(key) ?? 0);
    if (count <= 0 || totalSeconds <= 0) continue;
    rows.push({ metric, operation, count, totalSeconds, meanMs: (totalSeconds / count) * 1000 });
  }
  return rows.sort((a, b) => b.totalSeconds - a.totalSeconds).slice(0, top);
}

export function formatLatencyGrowth(title: string, rows: LatencyRow[]): string {
  return [
    title,
    '| metric | operation | count | total s | mean ms |',
    '|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.metric} | ${r.operation} | ${r.count} | ${r.totalSeconds.toFixed(1)} | ${r.meanMs.toFixed(1)} |`),
  ].join('\n');
}

// JSON logs, one object per line, for every process of the system.
import { DefaultLogger, type LogEntry } from '@temporalio/worker';
import type { LogLevel } from '@temporalio/common';

function jsonLine(entry: LogEntry): void {
  const { message, level, timestampNanos, meta } = entry;
  const line = { time: new Date(Number(timestampNanos / 1_000_000n)).toISOString(), level, msg: message, ...meta };
  process.stdout.write(`${JSON.stringify(line, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}\n`);
}

export function makeJsonLogger(level: LogLevel = 'INFO'): DefaultLogger {
  return new DefaultLogger(level, jsonLine);
}

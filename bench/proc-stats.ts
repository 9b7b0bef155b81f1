// Resident memory and CPU time of processes, from Linux's /proc: VmRSS (now)
// and VmHWM (the peak) of /proc/<pid>/status, utime + stime of /proc/<pid>/stat.
import { readFileSync, readdirSync } from 'node:fs';

const CLOCK_TICKS = 100; // USER_HZ on Linux

export interface ProcSample {
  rssMiB: number;
  hwmMiB: number;
  cpuSeconds: number;
}

/** undefined once the process is gone. */
export function sampleProc(pid: number): ProcSample | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
    // Fields after the command name (which may contain spaces), from field 3 on: utime is 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return { rssMiB: kib('VmRSS') / 1024, hwmMiB: kib('VmHWM') / 1024, cpuSeconds: ticks / CLOCK_TICKS };
  } catch {
    return undefined;
  }
}

/** The direct children of `pid` with their command lines. */
export function childrenOf(pid: number): Array<{ pid: number; cmd: string }> {
  const out: Array<{ pid: number; cmd: string }> = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== pid) continue;
      out.push({ pid: Number(entry), cmd: readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').trim() });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export interface Watched {
  name: string;
  pid: number;
}

export interface ProcStats {
  name: string;
  pid: number;
  /** Largest VmRSS sampled, or VmHWM when larger (the kernel's own peak). */
  maxRssMiB: number;
  lastRssMiB: number;
  /** CPU seconds (user + system) since the sampler started watching it. */
  cpuSeconds: number;
}

/** Samples the watched processes every `intervalMs`; `mark()` returns the figures so far: peak RSS since each started, CPU since the last mark. */
export class ProcSampler {
  private readonly procs = new Map<number, { name: string; maxRss: number; lastRss: number; cpuStart: number; cpuLast: number }>();
  private readonly timer: NodeJS.Timeout;

  constructor(intervalMs = 1000) {
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  watch(name: string, pid: number | undefined): void {
    if (pid === undefined || this.procs.has(pid)) return;
    const s = sampleProc(pid);
    this.procs.set(pid, { name, maxRss: s?.hwmMiB ?? 0, lastRss: s?.rssMiB ?? 0, cpuStart: s?.cpuSeconds ?? 0, cpuLast: s?.cpuSeconds ?? 0 });
  }

  sample(): void {
    for (const [pid, p] of this.procs) {
      const s = sampleProc(pid);
      if (!s) continue;
      p.maxRss = Math.max(p.maxRss, s.rssMiB, s.hwmMiB);
      p.lastRss = s.rssMiB;
      p.cpuLast = s.cpuSeconds;
    }
  }

  /** Peak RSS (VmHWM counts from the process's start), CPU since the last mark; then a new mark. */
  mark(): ProcStats[] {
    this.sample();
    const out: ProcStats[] = [];
    for (const [pid, p] of this.procs) {
      out.push({ name: p.name, pid, maxRssMiB: p.maxRss, lastRssMiB: p.lastRss, cpuSeconds: p.cpuLast - p.cpuStart });
      p.cpuStart = p.cpuLast;
    }
    return out;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

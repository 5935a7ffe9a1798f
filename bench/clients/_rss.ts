// Copyright 2026 the denio authors. MIT license.
// Peak resident memory and CPU time of this process, for the bulk and pipe
// benchmarks.

/** VmHWM from /proc/self/status in bytes, else the current RSS. */
export function peakRss(): number {
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(status);
    if (match) return Number(match[1]) * 1024;
  } catch {
    // Not Linux: fall back to the sampled value.
  }
  return Deno.memoryUsage().rss;
}

/** User + system CPU seconds of this process so far (Linux), else NaN. */
export function cpuSeconds(): number {
  try {
    const stat = Deno.readTextFileSync("/proc/self/stat");
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields, in clock ticks (100 per second on Linux).
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

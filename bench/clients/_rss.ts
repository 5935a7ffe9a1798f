// Copyright 2026 the denio authors. MIT license.
// Peak resident memory of this process, for the bulk benchmark.

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

// Copyright 2026 the denio authors. MIT license.
// Bulk sender: the raw Deno loop, `await conn.write()` of 64 KiB chunks
// until BYTES are written, then close.
// Usage: deno run -A bench/clients/bulk_raw.ts PORT BYTES
// Prints {"seconds":…,"rssPeak":…} (bytes).

import { cpuSeconds, peakRss } from "./_rss.ts";

const port = Number(Deno.args[0]);
const total = Number(Deno.args[1]);
const chunk = new Uint8Array(64 * 1024).fill(120);

const start = performance.now();
const conn = await Deno.connect({ hostname: "127.0.0.1", port });
conn.setNoDelay(true);
let sent = 0;
while (sent < total) {
  const size = Math.min(chunk.length, total - sent);
  let written = 0;
  while (written < size) {
    written += await conn.write(chunk.subarray(written, size));
  }
  sent += size;
}
conn.close();
console.log(JSON.stringify({
  seconds: (performance.now() - start) / 1000,
  rssPeak: peakRss(),
  cpuSeconds: cpuSeconds(),
}));

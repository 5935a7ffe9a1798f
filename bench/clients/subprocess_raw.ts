// Copyright 2026 the denio authors. MIT license.
// Subprocess pipes: BYTES through `cat` with Deno.Command and its web
// streams: a writer loop on stdin (64 KiB chunks, awaiting writer.ready) and
// a reader loop counting stdout, run concurrently.
// Usage: deno run -A bench/clients/subprocess_raw.ts BYTES [COMMAND ARG…]
// Prints {"seconds":…,"bytes":…}.

import { cpuSeconds, peakRss } from "./_rss.ts";

const total = Number(Deno.args[0]);
const command = Deno.args[1] ?? "cat";
const args = Deno.args.slice(2);
const chunk = new Uint8Array(64 * 1024).fill(120);

async function feed(stdin: WritableStream<Uint8Array>): Promise<void> {
  const writer = stdin.getWriter();
  let sent = 0;
  while (sent < total) {
    const size = Math.min(chunk.length, total - sent);
    await writer.ready;
    // A fresh view each time: the stream may hold on to what it is given.
    writer.write(chunk.subarray(0, size));
    sent += size;
  }
  await writer.close();
}

async function drain(stdout: ReadableStream<Uint8Array>): Promise<number> {
  let received = 0;
  for await (const data of stdout) received += data.length;
  return received;
}

const start = performance.now();
const child = new Deno.Command(command, {
  args,
  stdin: "piped",
  stdout: "piped",
  stderr: "null",
}).spawn();
const [, received] = await Promise.all([
  feed(child.stdin),
  drain(child.stdout),
]);
await child.status;
if (received !== total) {
  throw new Error(`cat echoed ${received} bytes of ${total}`);
}
console.log(JSON.stringify({
  seconds: (performance.now() - start) / 1000,
  bytes: received,
  rssPeak: peakRss(),
  cpuSeconds: cpuSeconds(),
}));

// Copyright 2026 the denio authors. MIT license.
// Bulk sender: createConnection, then 64 KiB writes for as long as the
// transport has not called pauseWriting(), continued from resumeWriting(),
// until BYTES are written; then close() and wait for connectionLost.
// Usage: deno run -A bench/clients/bulk_denio.ts PORT BYTES
// Prints {"seconds":…,"rssPeak":…} (bytes).

import { createConnection, type Protocol, type Transport } from "../../mod.ts";
import { cpuSeconds, peakRss } from "./_rss.ts";

const port = Number(Deno.args[0]);
const total = Number(Deno.args[1]);
const chunk = new Uint8Array(64 * 1024).fill(120);

class Sender implements Protocol {
  #transport: Transport | undefined;
  #sent = 0;
  #paused = false;
  done = Promise.withResolvers<Error | null>();

  connectionMade(transport: Transport): void {
    this.#transport = transport;
    this.#pump();
  }
  pauseWriting(): void {
    this.#paused = true;
  }
  resumeWriting(): void {
    this.#paused = false;
    this.#pump();
  }
  connectionLost(error: Error | null): void {
    this.done.resolve(error);
  }

  #pump(): void {
    const transport = this.#transport!;
    while (!this.#paused && this.#sent < total) {
      const size = Math.min(chunk.length, total - this.#sent);
      transport.write(size === chunk.length ? chunk : chunk.subarray(0, size));
      this.#sent += size;
    }
    if (this.#sent >= total && !transport.isClosing()) transport.close();
  }
}

const start = performance.now();
const [, sender] = await createConnection(() => new Sender(), {
  hostname: "127.0.0.1",
  port,
});
const error = await sender.done.promise;
if (error) throw error;
console.log(JSON.stringify({
  seconds: (performance.now() - start) / 1000,
  rssPeak: peakRss(),
  cpuSeconds: cpuSeconds(),
}));

// Copyright 2026 the denio authors. MIT license.
// Subprocess pipes: BYTES through `cat` with denio's subprocessExec; stdin
// written in 64 KiB chunks driven by pauseWriting/resumeWriting, stdout
// counted in pipeDataReceived.
// Usage: deno run -A bench/clients/subprocess_denio.ts BYTES [COMMAND ARG…]
// Prints {"seconds":…,"bytes":…}.

import * as denio from "../../mod.ts";
import { cpuSeconds, peakRss } from "./_rss.ts";

// Looked up at run time so the suite still type-checks and reports "absent"
// while transports/subprocess.ts is not exported yet.
const exec = (denio as Record<string, unknown>).subprocessExec;
if (typeof exec !== "function") {
  console.log("ABSENT subprocessExec is not exported by mod.ts yet");
  Deno.exit(3);
}
const subprocessExec = exec as (
  factory: () => denio.SubprocessProtocol,
  command: string,
  options: {
    args?: string[];
    stdin?: "piped";
    stdout?: "piped";
    stderr?: "null";
  },
) => Promise<[denio.SubprocessTransport, denio.SubprocessProtocol]>;

const total = Number(Deno.args[0]);
const command = Deno.args[1] ?? "cat";
const args = Deno.args.slice(2);
const chunk = new Uint8Array(64 * 1024).fill(120);

class Cat implements denio.SubprocessProtocol {
  #stdin: denio.WriteTransport | undefined;
  #sent = 0;
  #paused = false;
  received = 0;
  done = Promise.withResolvers<Error | null>();

  connectionMade(transport: denio.SubprocessTransport): void {
    this.#stdin = transport.getPipeTransport(0) as denio.WriteTransport;
    this.#pump();
  }
  pauseWriting(): void {
    this.#paused = true;
  }
  resumeWriting(): void {
    this.#paused = false;
    this.#pump();
  }
  pipeDataReceived(_fd: 1 | 2, data: Uint8Array): void {
    this.received += data.length;
  }
  connectionLost(error: Error | null): void {
    this.done.resolve(error);
  }

  #pump(): void {
    const stdin = this.#stdin!;
    while (!this.#paused && this.#sent < total) {
      const size = Math.min(chunk.length, total - this.#sent);
      stdin.write(size === chunk.length ? chunk : chunk.subarray(0, size));
      this.#sent += size;
    }
    if (this.#sent >= total && !stdin.isClosing()) stdin.close();
  }
}

const start = performance.now();
const [transport, cat] = await subprocessExec(() => new Cat(), command, {
  args,
  stdin: "piped",
  stdout: "piped",
  stderr: "null",
});
const error = await (cat as Cat).done.promise;
transport.close();
if (error) throw error;
const received = (cat as Cat).received;
if (received !== total) {
  throw new Error(`cat echoed ${received} bytes of ${total}`);
}
console.log(JSON.stringify({
  seconds: (performance.now() - start) / 1000,
  bytes: received,
  rssPeak: peakRss(),
  cpuSeconds: cpuSeconds(),
}));

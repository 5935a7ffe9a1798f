// Copyright 2026 the denio authors. MIT license.
/**
 * The StreamTransport core's own JavaScript, per echo round trip, with no
 * socket: connections on a memory readiness adapter (a `ReadyIo`, as the
 * native backend's), woken in batches as the reactor wakes them, each wake
 * reading one message that the protocol writes back. What is left is the
 * core's read, callback and write path, the protocol's callbacks and the
 * queued flush: the part of a round trip denio adds, without the kernel's
 * noise. A change of the core's hot path shows here at a few nanoseconds,
 * where a loopback echo on a shared machine moves by microseconds.
 *
 *   deno run -A bench/core.ts [ROUNDS] [SECONDS] [CASES]
 *
 * Prints, for each case (Protocol and BufferedProtocol at 1 KiB x 50
 * connections and 64 KiB x 10 on the readiness side, which the native
 * backend drives; at 1 KiB on the promise side, which Deno's socket API
 * drives), ns of CPU per round trip: the median over ROUNDS (default 5)
 * rounds of SECONDS (default 1) each, with the min – max. CASES: a regular
 * expression on the case names (e.g. `promise`).
 *
 * @module
 */

import {
  type ReadyIo,
  type ReadyListener,
  socketReadable,
  type StreamIo,
  StreamTransport,
} from "../transports/stream_transport.ts";
import type { BufferedProtocol, Protocol, Transport } from "../mod.ts";

/** A connection that always has one message ready when woken. */
class MemoryIo implements ReadyIo {
  readonly readSize = 256 * 1024;
  listener: ReadyListener | null = null;
  #ready = false;
  #size: number;
  written = 0;
  constructor(size: number) {
    this.#size = size;
  }
  arm(): void {
    this.#ready = true;
  }
  readyToRead(): boolean {
    return this.#ready;
  }
  readNow(buffer: Uint8Array): number | null {
    if (!this.#ready) return -1;
    this.#ready = false;
    // The kernel would copy the bytes; the core's cost is what is measured.
    return Math.min(this.#size, buffer.length);
  }
  writeNow(data: Uint8Array): number {
    this.written += data.length;
    return data.length;
  }
  listen(listener: ReadyListener | null): void {
    this.listener = listener;
  }
  wantRead(_on: boolean): void {}
  wantWrite(_on: boolean): void {}
  read(): Promise<number | null> {
    return Promise.reject(new Error("a ReadyIo is read with readNow"));
  }
  write(): Promise<number> {
    return Promise.reject(new Error("a ReadyIo is written with writeNow"));
  }
  close(): void {}
}

/**
 * The same over the promise side of the adapter interface, as Deno's socket
 * API drives the core: each read is a promise that the batch resolves, each
 * write one that is already resolved.
 */
class MemoryPromiseIo implements StreamIo {
  readonly readSize = 256 * 1024;
  #size: number;
  #pending: ((n: number | null) => void) | null = null;
  written = 0;
  constructor(size: number) {
    this.#size = size;
  }
  arm(): void {
    const resolve = this.#pending;
    this.#pending = null;
    resolve?.(this.#size);
  }
  /** Ends a pending read (EOF). */
  stop(): void {
    const resolve = this.#pending;
    this.#pending = null;
    resolve?.(null);
  }
  read(buffer: Uint8Array): Promise<number | null> {
    const size = Math.min(this.#size, buffer.length);
    return new Promise((resolve) => {
      this.#pending = (n) => resolve(n === null ? null : size);
    });
  }
  write(data: Uint8Array): Promise<number> {
    this.written += data.length;
    return Promise.resolve(data.length);
  }
  close(): void {}
}

/** The raw Deno loop's shape (bench/servers/deno_raw.ts), over the same adapter. */
async function rawLoop(io: MemoryPromiseIo): Promise<void> {
  const buffer = new Uint8Array(64 * 1024);
  for (;;) {
    const n = await io.read(buffer);
    if (n === null) return;
    await io.write(buffer.subarray(0, n));
  }
}

class Echo implements Protocol {
  #transport: Transport | undefined;
  connectionMade(transport: Transport): void {
    this.#transport = transport;
  }
  dataReceived(data: Uint8Array): void {
    this.#transport!.write(data);
  }
}

/** The bench servers' zero-copy echo, reduced to one slot (writes finish at once). */
class BufferedEcho implements BufferedProtocol {
  #transport: Transport | undefined;
  #slot = new Uint8Array(256 * 1024);
  connectionMade(transport: Transport): void {
    this.#transport = transport;
  }
  getBuffer(_sizeHint: number): Uint8Array {
    return this.#slot;
  }
  bufferUpdated(nbytes: number): void {
    this.#transport!.write(this.#slot.subarray(0, nbytes));
  }
}

function cpuMicros(): number {
  const fields = Deno.readTextFileSync("/proc/self/stat").split(") ")[1]!
    .split(" ");
  // utime and stime, in clock ticks of 10 ms.
  return (Number(fields[11]) + Number(fields[12])) * 1e4;
}

/** Runs batches for `seconds`; returns ns of CPU per round trip. */
async function run(
  promises: boolean,
  protocol: "plain" | "buffered" | null,
  conns: number,
  size: number,
  seconds: number,
): Promise<number> {
  const ios = Array.from(
    { length: conns },
    () => promises ? new MemoryPromiseIo(size) : new MemoryIo(size),
  );
  const transports = protocol === null
    ? []
    : ios.map((io) =>
      new StreamTransport(
        io,
        protocol === "buffered" ? new BufferedEcho() : new Echo(),
      )
    );
  if (protocol === null) {
    for (const io of ios) rawLoop(io as MemoryPromiseIo);
  }
  await new Promise((resolve) => setTimeout(resolve, 0)); // connectionMade
  let trips = 0;
  const start = performance.now();
  const cpu0 = cpuMicros();
  while (performance.now() - start < seconds * 1000) {
    for (let batch = 0; batch < 100; batch++) {
      for (const io of ios) {
        io.arm();
        if (io instanceof MemoryIo) io.listener![socketReadable]();
      }
      // The reactor's settle hops: the queued flush runs (and, on the
      // promise side, the read loops' continuations).
      for (let hop = 0; hop < (promises ? 24 : 6); hop++) await null;
      trips += conns;
    }
  }
  const cpu = cpuMicros() - cpu0;
  for (const transport of transports) transport.abort();
  for (const io of ios) if (io instanceof MemoryPromiseIo) io.stop();
  const written = ios.reduce((sum, io) => sum + io.written, 0);
  if (written !== trips * size) {
    throw new Error(`echoed ${written} bytes of ${trips * size}`);
  }
  return cpu * 1000 / trips;
}

if (import.meta.main) {
  const rounds = Number(Deno.args[0] ?? 5);
  const seconds = Number(Deno.args[1] ?? 1);
  const allCases = [
    ["ready: Protocol, 1 KiB x 50", false, "plain", 50, 1024],
    ["ready: BufferedProtocol, 1 KiB x 50", false, "buffered", 50, 1024],
    ["ready: Protocol, 64 KiB x 10", false, "plain", 10, 65536],
    ["ready: BufferedProtocol, 64 KiB x 10", false, "buffered", 10, 65536],
    ["promise: raw loop, 1 KiB x 50", true, null, 50, 1024],
    ["promise: Protocol, 1 KiB x 50", true, "plain", 50, 1024],
    ["promise: BufferedProtocol, 1 KiB x 50", true, "buffered", 50, 1024],
  ] as const;
  const only = new RegExp(Deno.args[2] ?? "");
  const cases = allCases.filter(([name]) => only.test(name));
  const results = cases.map(() => [] as number[]);
  for (const [, promises, buffered, conns, size] of cases) {
    await run(promises, buffered, conns, size, 0.3); // warm-up
  }
  for (let round = 0; round < rounds; round++) {
    for (const [i, [, promises, buffered, conns, size]] of cases.entries()) {
      results[i]!.push(await run(promises, buffered, conns, size, seconds));
    }
  }
  for (const [i, [name]] of cases.entries()) {
    const sorted = results[i]!.toSorted((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    console.log(
      `${name.padEnd(40)} ${median.toFixed(0).padStart(6)} ns per round trip (${
        sorted[0]!.toFixed(0)
      } – ${sorted.at(-1)!.toFixed(0)})`,
    );
  }
}

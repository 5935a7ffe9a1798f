// Copyright 2026 the denio authors. MIT license.
// Shared pieces of the reliability tests (load, faults, throwing protocols,
// bad input, fuzzing) and of tools/soak.ts: a seeded PRNG, a checksum, an
// open-fd counter, traps for unhandled rejections and exception-handler
// contexts, a flow-controlled echo protocol and a one-shot echo check.

import { assert, assertEquals } from "@std/assert";
import { makeTestCerts } from "./_certs.ts";
import {
  type ConnectOptions,
  createConnection,
  createServer,
  type ExceptionContext,
  type Protocol,
  type Server,
  setExceptionHandler,
  type Transport,
} from "../mod.ts";
import { sleep, within as withinMs } from "./_timing.ts";

// ------------------------------------------------------------------ random

/** mulberry32: a small seeded PRNG; returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return function next(): number {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [min, max] (both included). */
export function randomInt(
  rand: () => number,
  min: number,
  max: number,
): number {
  return min + Math.floor(rand() * (max - min + 1));
}

/** `n` pseudo-random bytes. */
export function randomBytes(rand: () => number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const v = (rand() * 4294967296) >>> 0;
    out[i] = v;
    out[i + 1] = v >>> 8;
    out[i + 2] = v >>> 16;
    out[i + 3] = v >>> 24;
  }
  for (; i < n; i++) out[i] = (rand() * 256) >>> 0;
  return out;
}

/** Splits `data` into pieces of random sizes from 1 to `maxPiece` bytes. */
export function randomSplits(
  rand: () => number,
  data: Uint8Array,
  maxPiece: number,
): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  let offset = 0;
  while (offset < data.length) {
    const size = randomInt(rand, 1, maxPiece);
    pieces.push(data.subarray(offset, offset + size));
    offset += size;
  }
  return pieces;
}

// ---------------------------------------------------------------- checksum

/**
 * Adler-32 computed incrementally (order-sensitive, so a reordered or
 * dropped chunk changes it), with a byte count.
 */
export class Checksum {
  #a = 1;
  #b = 0;
  /** Bytes seen so far. */
  bytes = 0;

  /** Adds `data`. */
  update(data: Uint8Array): void {
    let a = this.#a;
    let b = this.#b;
    let i = 0;
    const n = data.length;
    while (i < n) {
      // 5552 is the largest block for which b cannot overflow 2^53 before the modulo.
      const end = Math.min(n, i + 5552);
      for (; i < end; i++) {
        a += data[i]!;
        b += a;
      }
      a %= 65521;
      b %= 65521;
    }
    this.#a = a;
    this.#b = b;
    this.bytes += n;
  }

  /** The checksum of everything added. */
  digest(): number {
    return ((this.#b << 16) | this.#a) >>> 0;
  }
}

/** The checksum of one buffer. */
export function checksumOf(...chunks: Uint8Array[]): number {
  const sum = new Checksum();
  for (const chunk of chunks) sum.update(chunk);
  return sum.digest();
}

// ---------------------------------------------------------------- resources

/** The number of open file descriptors of this process (`/proc/self/fd`). */
export function openFdCount(): number {
  let count = 0;
  for (const _ of Deno.readDirSync("/proc/self/fd")) count++;
  // The directory handle itself is one of the entries.
  return count - 1;
}

/** True when `/proc/self/fd` can be listed (Linux). */
export function canCountFds(): boolean {
  try {
    openFdCount();
    return true;
  } catch {
    return false;
  }
}

/**
 * Waits until the fd count is back to `baseline` (sockets closed by a
 * microtask may take a macrotask or two to be released), bounded.
 */
export async function settleFds(
  baseline: number,
  tries = 100,
): Promise<number> {
  let count = openFdCount();
  for (let i = 0; i < tries && count > baseline; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    count = openFdCount();
  }
  return count;
}

/** The soft `ulimit -n`, or `undefined` if it cannot be read. */
export function openFileLimit(): number | undefined {
  try {
    const text = Deno.readTextFileSync("/proc/self/limits");
    const line = text.split("\n").find((l) => l.startsWith("Max open files"));
    const soft = line?.split(/\s+/)[3];
    if (soft === undefined) return undefined;
    return soft === "unlimited" ? Infinity : Number(soft);
  } catch {
    return undefined;
  }
}

/** The resident set size in bytes. */
export function rss(): number {
  return Deno.memoryUsage().rss;
}

// ------------------------------------------------------------------- traps

/** Unhandled rejections and uncaught errors seen while a trap is set. */
export interface UnhandledTrap extends Disposable {
  /** Every reason or error seen. */
  readonly seen: unknown[];
}

/**
 * Records (and swallows, so the test can report them) every unhandled
 * rejection and uncaught error until disposed.
 */
export function trapUnhandled(): UnhandledTrap {
  const seen: unknown[] = [];
  function onRejection(event: PromiseRejectionEvent): void {
    event.preventDefault();
    seen.push(event.reason);
  }
  function onError(event: ErrorEvent): void {
    event.preventDefault();
    seen.push(event.error ?? event.message);
  }
  globalThis.addEventListener("unhandledrejection", onRejection);
  globalThis.addEventListener("error", onError);
  return {
    seen,
    [Symbol.dispose]() {
      globalThis.removeEventListener("unhandledrejection", onRejection);
      globalThis.removeEventListener("error", onError);
    },
  };
}

/** Exception-handler contexts recorded while the recorder is set. */
export interface ContextRecorder extends Disposable {
  /** Every context handed to the exception handler. */
  readonly contexts: ExceptionContext[];
}

/** Installs an exception handler that records every context; dispose restores the default. */
export function recordContexts(): ContextRecorder {
  const contexts: ExceptionContext[] = [];
  setExceptionHandler((context) => contexts.push(context));
  return {
    contexts,
    [Symbol.dispose]() {
      setExceptionHandler(null);
    },
  };
}

// ---------------------------------------------------------------- protocols

/** What a {@linkcode TrackedEcho} saw. */
export interface EchoStats {
  /** Protocols made (connectionMade calls). */
  made: number;
  /** connectionLost calls, all protocols together. */
  lost: number;
  /** connectionLost calls beyond the first on some protocol (must stay 0). */
  doubleLost: number;
  /** Callbacks after connectionLost (must stay 0). */
  afterLost: number;
  /** Bytes received, all protocols together. */
  bytesIn: number;
  /** The errors given to connectionLost (null for clean closes). */
  errors: (Error | null)[];
}

/** A fresh {@linkcode EchoStats}. */
export function newEchoStats(): EchoStats {
  return {
    made: 0,
    lost: 0,
    doubleLost: 0,
    afterLost: 0,
    bytesIn: 0,
    errors: [],
  };
}

/**
 * Echoes what it receives, pausing its reads while its own write buffer is
 * over the high watermark (so a peer that never reads cannot grow it without
 * bound), and counts its lifecycle into `stats`.
 */
export class TrackedEcho implements Protocol {
  transport: Transport | undefined;
  #stats: EchoStats;
  #lost = false;

  constructor(stats: EchoStats) {
    this.#stats = stats;
  }

  connectionMade(transport: Transport): void {
    this.transport = transport;
    this.#stats.made++;
  }

  dataReceived(data: Uint8Array): void {
    if (this.#lost) this.#stats.afterLost++;
    this.#stats.bytesIn += data.length;
    this.transport!.write(data);
  }

  pauseWriting(): void {
    this.transport!.pauseReading();
  }

  resumeWriting(): void {
    this.transport!.resumeReading();
  }

  connectionLost(error: Error | null): void {
    if (this.#lost) {
      this.#stats.doubleLost++;
      return;
    }
    this.#lost = true;
    this.#stats.lost++;
    this.#stats.errors.push(error);
  }
}

/**
 * Connects to `target` (a TCP port on 127.0.0.1, or connect options), sends
 * `message`, half-closes, and resolves to what came back and the
 * connectionLost error (bounded by `timeoutMs`).
 */
export async function echoOnce(
  target: number | ConnectOptions,
  message = "ping",
  timeoutMs = 10_000,
): Promise<{ text: string; error: Error | null }> {
  const lost = Promise.withResolvers<Error | null>();
  const chunks: Uint8Array[] = [];
  const [transport] = await createConnection(
    () => ({
      dataReceived(data: Uint8Array) {
        chunks.push(data.slice());
      },
      connectionLost: lost.resolve,
    }),
    typeof target === "number"
      ? { hostname: "127.0.0.1", port: target }
      : target,
  );
  transport.write(new TextEncoder().encode(message));
  transport.writeEof();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      transport.abort();
      reject(new Error(`echoOnce() timed out after ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    const error = await Promise.race([lost.promise, timeout]);
    return { text: new TextDecoder().decode(concat(chunks)), error };
  } finally {
    clearTimeout(timer);
  }
}

/** Joins byte chunks. */
export function concat(chunks: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const chunk of chunks) total += chunk.length;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

export { sleep };

/**
 * Resolves once `condition()` is true, polling every `intervalMs`; rejects
 * after `timeoutMs` with `what` in the message.
 */
export async function waitFor(
  condition: () => boolean,
  what: string,
  timeoutMs = 10_000,
  intervalMs = 5,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(intervalMs);
  }
}

/** Reads an integer environment variable, or `fallback` (also without --allow-env). */
export function envInt(name: string, fallback: number): number {
  try {
    const value = Deno.env.get(name);
    if (value === undefined || value === "") return fallback;
    const n = Number(value);
    return Number.isFinite(n) ? n : fallback;
  } catch {
    return fallback;
  }
}

/** Resolves or rejects as `promise` does, or rejects after `ms` naming `what`. */
export function within<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  return withinMs(promise, what, ms);
}

/** Optional behaviour of a {@linkcode Recording} protocol. */
export interface RecordingHooks {
  connectionMade?(transport: Transport): void;
  dataReceived?(data: Uint8Array): void;
  eofReceived?(): boolean | void;
  pauseWriting?(): void;
  resumeWriting?(): void;
  connectionLost?(error: Error | null): void;
}

/**
 * A protocol that logs each callback by name (runs of dataReceived collapse
 * into one entry; `bytes` counts them), then runs the matching hook.
 */
export class Recording implements Protocol {
  readonly events: string[] = [];
  readonly lost = Promise.withResolvers<Error | null>();
  readonly chunks: Uint8Array[] = [];
  transport: Transport | undefined;
  bytes = 0;
  lostCalls = 0;
  #hooks: RecordingHooks;
  #keep: boolean;

  constructor(hooks: RecordingHooks = {}, keepData = false) {
    this.#hooks = hooks;
    this.#keep = keepData;
  }

  #log(name: string): void {
    if (name === "dataReceived" && this.events.at(-1) === name) return;
    this.events.push(name);
  }

  connectionMade(transport: Transport): void {
    this.transport = transport;
    this.#log("connectionMade");
    this.#hooks.connectionMade?.call(this, transport);
  }

  dataReceived(data: Uint8Array): void {
    this.#log("dataReceived");
    this.bytes += data.length;
    if (this.#keep) this.chunks.push(data.slice());
    this.#hooks.dataReceived?.call(this, data);
  }

  eofReceived(): boolean | void {
    this.#log("eofReceived");
    return this.#hooks.eofReceived?.call(this);
  }

  pauseWriting(): void {
    this.#log("pauseWriting");
    this.#hooks.pauseWriting?.call(this);
  }

  resumeWriting(): void {
    this.#log("resumeWriting");
    this.#hooks.resumeWriting?.call(this);
  }

  connectionLost(error: Error | null): void {
    this.#log("connectionLost");
    this.lostCalls++;
    this.lost.resolve(error);
    this.#hooks.connectionLost?.call(this, error);
  }
}

/** A short name of a connectionLost error for messages: its class, or "null". */
export function errorName(error: unknown): string {
  if (error === null) return "null";
  if (error instanceof Error) {
    return `${error.constructor.name}: ${error.message}`;
  }
  return String(error);
}

// -------------------------------------------------------------- fault bed

/** Big enough to fill loopback socket buffers: 16 MiB. */
export const BIG = 16 * 1024 * 1024;
export const BOUND = 15_000;

/** Errors that mean "the peer went away" (asyncio's ConnectionResetError family). */
export function isPeerGoneError(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.ConnectionAborted;
}

/** A server to inject faults into, with a bystander connection. */
export interface FaultBed extends AsyncDisposable {
  server: Server;
  /** Where a client connects. */
  target: ConnectOptions;
  /** Raw connection to the server (for peers that misbehave). */
  connectRaw(): Promise<Deno.Conn>;
  /** The echo connections' lifecycle counts. */
  stats: EchoStats;
  /** Exception-handler contexts seen so far. */
  contexts: ExceptionContext[];
  /**
   * The next accepted connection gets `protocol` instead of an echo (a
   * function is called as the protocol factory instead).
   */
  nextProtocol(protocol: Protocol | (() => Protocol)): void;
  /** The bystander still echoes, and so does a fresh connection. */
  assertStillServing(): Promise<void>;
}

let bedCount = 0;

export async function faultBed(
  kind: "tcp" | "unix" | "tls" = "tcp",
): Promise<FaultBed> {
  const unhandled = trapUnhandled();
  const recorder = recordContexts();
  const stats = newEchoStats();
  const pending: (Protocol | (() => Protocol))[] = [];
  const certs = kind === "tls" ? await makeTestCerts() : undefined;
  const dir = kind === "unix" ? Deno.makeTempDirSync() : "";
  const path = `${dir}/bed${bedCount++}.sock`;
  const server = await createServer(
    () => {
      const next = pending.shift() ?? new TrackedEcho(stats);
      return typeof next === "function" ? next() : next;
    },
    kind === "unix" ? { transport: "unix", path } : certs !== undefined
      ? {
        hostname: "127.0.0.1",
        port: 0,
        tls: { cert: certs.cert, key: certs.key },
      }
      : { hostname: "127.0.0.1", port: 0 },
  );
  const target: ConnectOptions = kind === "unix"
    ? { transport: "unix", path }
    : {
      hostname: "127.0.0.1",
      port: (server.addrs[0] as Deno.NetAddr).port,
      ...(certs !== undefined ? { tls: { caCerts: [certs.caCert] } } : {}),
    };
  const bystander = new Recording({}, true);
  await createConnection(() => bystander, target);
  // The server side may attach after the client resolves (TLS finishes its
  // handshake there last): the bystander must not take the next protocol.
  await waitFor(() => stats.made === 1, "the bystander's server side", BOUND);
  let round = 0;
  return {
    server,
    target,
    stats,
    contexts: recorder.contexts,
    connectRaw() {
      if (certs !== undefined) {
        return Deno.connectTls({
          hostname: "127.0.0.1",
          port: target.port!,
          caCerts: [certs.caCert],
        });
      }
      return kind === "unix"
        ? Deno.connect({ transport: "unix", path })
        : Deno.connect({ hostname: "127.0.0.1", port: target.port! });
    },
    nextProtocol(protocol) {
      pending.push(protocol);
    },
    async assertStillServing() {
      const message = `still here ${round++};`;
      const before = bystander.bytes;
      bystander.transport!.write(new TextEncoder().encode(message));
      await waitFor(
        () => bystander.bytes >= before + message.length,
        "the bystander's echo",
        BOUND,
      );
      const text = new TextDecoder().decode(concat(bystander.chunks));
      assert(text.endsWith(message), `bystander got ${JSON.stringify(text)}`);
      const fresh = await echoOnce(target, `fresh ${round}`, BOUND);
      assertEquals(fresh, { text: `fresh ${round}`, error: null });
    },
    async [Symbol.asyncDispose]() {
      try {
        bystander.transport?.close();
        await within(bystander.lost.promise, BOUND, "the bystander to close");
        server.close();
        server.abortClients();
        await within(server.waitClosed(), BOUND, "the server to close");
        assertEquals(bystander.lostCalls, 1);
        assertEquals(stats.doubleLost, 0, "echo connectionLost called twice");
        assertEquals(stats.afterLost, 0, "echo callbacks after connectionLost");
        assertEquals(unhandled.seen, [], "unhandled rejections or errors");
      } finally {
        unhandled[Symbol.dispose]();
        recorder[Symbol.dispose]();
        if (dir) Deno.removeSync(dir, { recursive: true });
        if (certs !== undefined) {
          Deno.removeSync(certs.dir, { recursive: true });
        }
      }
    },
  };
}

/** Writes `total` bytes through flow control; `onPause` runs at each pause. */
export function firehose(
  total: number,
  onPause?: (transport: Transport) => void,
): RecordingHooks & { start(transport: Transport): void } {
  const chunk = new Uint8Array(64 * 1024).fill(0x61);
  let transport: Transport | undefined;
  let sent = 0;
  let paused = false;
  function pump(): void {
    while (!paused && sent < total && !transport!.isClosing()) {
      transport!.write(chunk);
      sent += chunk.length;
    }
  }
  return {
    start(t: Transport) {
      transport = t;
      pump();
    },
    connectionMade(t: Transport) {
      transport = t;
      pump();
    },
    pauseWriting() {
      paused = true;
      onPause?.(transport!);
    },
    resumeWriting() {
      paused = false;
      pump();
    },
  };
}

/**
 * Asserts `connectionMade (pauseWriting resumeWriting)* pauseWriting?
 * connectionLost`: nothing read, flow control crossings alternating.
 */
export function assertFlowOnly(events: string[]): void {
  assertEquals(events[0], "connectionMade", events.join(" "));
  assertEquals(events.at(-1), "connectionLost", events.join(" "));
  const middle = events.slice(1, -1);
  assert(middle.length >= 1, `flow control never engaged: ${events.join(" ")}`);
  middle.forEach((name, i) =>
    assertEquals(
      name,
      i % 2 === 0 ? "pauseWriting" : "resumeWriting",
      events.join(" "),
    )
  );
}

/** Reads until `n` bytes arrived (or EOF). */
export function readAtLeast(conn: Deno.Conn, n: number): Promise<number> {
  async function read(): Promise<number> {
    const buffer = new Uint8Array(64 * 1024);
    let got = 0;
    while (got < n) {
      const r = await conn.read(buffer);
      if (r === null) break;
      got += r;
    }
    return got;
  }
  return within(read(), BOUND, `reading ${n} bytes from the peer`);
}

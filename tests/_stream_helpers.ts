// Copyright 2026 the denio authors. MIT license.
// Test helpers for the stream transport tests: recording protocols, an echo
// server on 127.0.0.1:0, a raw Deno peer, bounded waits and byte patterns.

import {
  type BufferedProtocol,
  createConnection,
  createServer,
  type ExceptionContext,
  type Protocol,
  type Server,
  setExceptionHandler,
  type Transport,
} from "../mod.ts";
import { sleep, within as withinMs } from "./_timing.ts";
import { commandMissing } from "./_peers.ts";

/** How long a test waits for one expected event before failing. */
export const WAIT_MS = 15_000;

/** Rejects if `promise` does not settle within `ms`; the timer is always cleared. */
export function within<T>(
  promise: Promise<T>,
  what: string,
  ms: number = WAIT_MS,
): Promise<T> {
  return withinMs(promise, what, ms);
}

/** Waits `ms` milliseconds (to give something that must NOT happen a chance). */
export { sleep };

/** Lets queued microtasks and one round of I/O callbacks run. */
export function nextMacrotask(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** Polls `condition` every few ms; bounded by `ms`. */
export async function waitUntil(
  condition: () => boolean,
  what: string,
  ms: number = WAIT_MS,
): Promise<void> {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) {
      throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    }
    await sleep(5);
  }
}

/** A deterministic byte pattern of `size` bytes (xorshift from `seed`). */
export function pattern(size: number, seed = 1): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** The SHA-256 of `data` as hex, to compare big buffers cheaply. */
export async function sha256(data: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    data as Uint8Array<ArrayBuffer>,
  );
  return Array.from(
    new Uint8Array(digest),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

/** Joins chunks into one array. */
export function concat(chunks: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const chunk of chunks) size += chunk.length;
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/** UTF-8 encodes `text`. */
export function bytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** UTF-8 decodes `data`. */
export function text(data: Uint8Array): string {
  return new TextDecoder().decode(data);
}

/** Names of the callbacks a recording protocol may be told to throw from. */
export type CallbackName =
  | "connectionMade"
  | "dataReceived"
  | "eofReceived"
  | "pauseWriting"
  | "resumeWriting"
  | "connectionLost"
  | "getBuffer"
  | "bufferUpdated";

/** Options of {@linkcode RecordingProtocol}. */
export interface RecordingOptions {
  /** What `eofReceived` returns. @default {undefined} */
  eofResult?: boolean;
  /** A callback that throws `thrown` when called. */
  throwIn?: CallbackName;
  /** Called after each callback is recorded (before a `throwIn` throw). */
  onEvent?: (name: CallbackName) => void;
}

/**
 * A Protocol that logs each callback (name and, for data, a copy of the
 * bytes), counts them, and offers promises for made/eof/lost.
 */
export class RecordingProtocol implements Protocol {
  /** Every callback name in call order. */
  readonly events: CallbackName[] = [];
  /** Copies of every dataReceived chunk. */
  readonly chunks: Uint8Array[] = [];
  /** Arguments of connectionLost calls. */
  readonly lostErrors: (Error | null)[] = [];
  /** The error this protocol throws when told to. */
  readonly thrown: Error = new Error("Thrown by the recording protocol");
  transport: Transport | undefined;
  readonly made: PromiseWithResolvers<Transport> = Promise.withResolvers();
  readonly eof: PromiseWithResolvers<void> = Promise.withResolvers();
  readonly lost: PromiseWithResolvers<Error | null> = Promise.withResolvers();
  #options: RecordingOptions;
  #waiters: { size: number; resolve: () => void }[] = [];
  #size = 0;

  constructor(options: RecordingOptions = {}) {
    this.#options = options;
  }

  #record(name: CallbackName): void {
    this.events.push(name);
    this.#options.onEvent?.(name);
    if (this.#options.throwIn === name) throw this.thrown;
  }

  connectionMade(transport: Transport): void {
    this.transport = transport;
    this.made.resolve(transport);
    this.#record("connectionMade");
  }

  dataReceived(data: Uint8Array): void {
    this.chunks.push(data.slice());
    this.#size += data.length;
    this.#wake();
    this.#record("dataReceived");
  }

  eofReceived(): boolean | undefined {
    this.eof.resolve();
    this.#record("eofReceived");
    return this.#options.eofResult;
  }

  pauseWriting(): void {
    this.#record("pauseWriting");
  }

  resumeWriting(): void {
    this.#record("resumeWriting");
  }

  connectionLost(error: Error | null): void {
    this.lostErrors.push(error);
    this.lost.resolve(error);
    this.#record("connectionLost");
  }

  /** Total bytes received. */
  get size(): number {
    return this.#size;
  }

  /** All bytes received, joined. */
  received(): Uint8Array {
    return concat(this.chunks);
  }

  /** The received bytes as text. */
  receivedText(): string {
    return text(this.received());
  }

  /** The events with runs of dataReceived collapsed into one. */
  sequence(): CallbackName[] {
    return collapse(this.events, "dataReceived");
  }

  /** How many times `name` was called. */
  count(name: CallbackName): number {
    return this.events.filter((event) => event === name).length;
  }

  /** Resolves once at least `size` bytes were received. */
  waitForBytes(size: number): Promise<void> {
    if (this.#size >= size) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waiters.push({ size, resolve });
    return within(promise, `${size} received bytes (have ${this.#size})`);
  }

  #wake(): void {
    this.#waiters = this.#waiters.filter((waiter) => {
      if (this.#size < waiter.size) return true;
      waiter.resolve();
      return false;
    });
  }
}

/** Options of {@linkcode RecordingBufferedProtocol}. */
export interface RecordingBufferedOptions extends RecordingOptions {
  /** Size of the buffer getBuffer returns. @default {4096} */
  bufferSize?: number;
  /** Overrides what getBuffer returns. */
  getBuffer?: (sizeHint: number) => Uint8Array;
}

/** A BufferedProtocol that logs each callback and collects the bytes. */
export class RecordingBufferedProtocol implements BufferedProtocol {
  readonly events: CallbackName[] = [];
  readonly sizeHints: number[] = [];
  readonly updates: number[] = [];
  readonly lostErrors: (Error | null)[] = [];
  readonly thrown: Error = new Error("Thrown by the recording protocol");
  transport: Transport | undefined;
  readonly made: PromiseWithResolvers<Transport> = Promise.withResolvers();
  readonly eof: PromiseWithResolvers<void> = Promise.withResolvers();
  readonly lost: PromiseWithResolvers<Error | null> = Promise.withResolvers();
  #options: RecordingBufferedOptions;
  #buffer: Uint8Array;
  #chunks: Uint8Array[] = [];

  constructor(options: RecordingBufferedOptions = {}) {
    this.#options = options;
    this.#buffer = new Uint8Array(options.bufferSize ?? 4096);
  }

  #record(name: CallbackName): void {
    this.events.push(name);
    this.#options.onEvent?.(name);
    if (this.#options.throwIn === name) throw this.thrown;
  }

  connectionMade(transport: Transport): void {
    this.transport = transport;
    this.made.resolve(transport);
    this.#record("connectionMade");
  }

  getBuffer(sizeHint: number): Uint8Array {
    this.sizeHints.push(sizeHint);
    this.#record("getBuffer");
    if (this.#options.getBuffer) return this.#options.getBuffer(sizeHint);
    return this.#buffer;
  }

  bufferUpdated(nbytes: number): void {
    this.updates.push(nbytes);
    this.#chunks.push(this.#buffer.slice(0, nbytes));
    this.#record("bufferUpdated");
  }

  eofReceived(): boolean | undefined {
    this.eof.resolve();
    this.#record("eofReceived");
    return this.#options.eofResult;
  }

  pauseWriting(): void {
    this.#record("pauseWriting");
  }

  resumeWriting(): void {
    this.#record("resumeWriting");
  }

  connectionLost(error: Error | null): void {
    this.lostErrors.push(error);
    this.lost.resolve(error);
    this.#record("connectionLost");
  }

  /** All bytes received, joined. */
  received(): Uint8Array {
    return concat(this.#chunks);
  }

  /** How many times `name` was called. */
  count(name: CallbackName): number {
    return this.events.filter((event) => event === name).length;
  }
}

/** `events` with runs of `name` collapsed into one entry. */
export function collapse<T>(events: readonly T[], name: T): T[] {
  const out: T[] = [];
  for (const event of events) {
    if (event === name && out[out.length - 1] === name) continue;
    out.push(event);
  }
  return out;
}

/**
 * An echo protocol with flow control: it pauses reading while its own write
 * buffer is over the high watermark. The default `eofReceived` closes.
 */
export class EchoProtocol implements Protocol {
  transport: Transport | undefined;
  readonly lost: PromiseWithResolvers<Error | null> = Promise.withResolvers();
  connectionMade(transport: Transport): void {
    this.transport = transport;
  }
  dataReceived(data: Uint8Array): void {
    this.transport!.write(data);
  }
  pauseWriting(): void {
    this.transport!.pauseReading();
  }
  resumeWriting(): void {
    this.transport!.resumeReading();
  }
  connectionLost(error: Error | null): void {
    this.lost.resolve(error);
  }
}

/** A BufferedProtocol echo server side: reads into its own buffer, writes copies. */
export class BufferedEchoProtocol implements BufferedProtocol {
  transport: Transport | undefined;
  #buffer = new Uint8Array(64 * 1024);
  connectionMade(transport: Transport): void {
    this.transport = transport;
  }
  getBuffer(): Uint8Array {
    return this.#buffer;
  }
  bufferUpdated(nbytes: number): void {
    this.transport!.write(this.#buffer.slice(0, nbytes));
  }
  pauseWriting(): void {
    this.transport!.pauseReading();
  }
  resumeWriting(): void {
    this.transport!.resumeReading();
  }
}

/** A started server and its TCP port. */
export interface EchoServer {
  server: Server;
  port: number;
  /** Every protocol the server made, in accept order. */
  protocols: EchoProtocol[];
}

/** Starts an {@linkcode EchoProtocol} server on 127.0.0.1:0. */
export async function startEchoServer(): Promise<EchoServer> {
  const protocols: EchoProtocol[] = [];
  const server = await createServer(() => {
    const protocol = new EchoProtocol();
    protocols.push(protocol);
    return protocol;
  }, { hostname: "127.0.0.1", port: 0 });
  const { port } = server.addrs[0] as Deno.NetAddr;
  return { server, port, protocols };
}

/** Closes a server and its clients and waits until they are gone. */
export async function shutdown(server: Server): Promise<void> {
  server.close();
  server.closeClients();
  await within(server.waitClosed(), "server.waitClosed()");
}

/** A transport connected to a raw Deno peer the test drives by hand. */
export interface RawPair<P> extends AsyncDisposable {
  transport: Transport;
  protocol: P;
  /** The accepted Deno connection on the other end. */
  peer: Deno.TcpConn;
  listener: Deno.TcpListener;
}

/**
 * Connects `protocol` with createConnection to a plain Deno listener on
 * 127.0.0.1:0 and returns both ends. Disposing closes the peer and the
 * listener, aborts the transport and waits for connectionLost.
 */
export async function rawPair<P extends Protocol | BufferedProtocol>(
  protocol: P,
): Promise<RawPair<P>> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  let peer: Deno.TcpConn;
  let transport: Transport;
  try {
    const accepted = listener.accept();
    [transport] = await createConnection(() => protocol, { port });
    peer = await accepted;
  } catch (error) {
    listener.close();
    throw error;
  }
  return {
    transport,
    protocol,
    peer,
    listener,
    async [Symbol.asyncDispose]() {
      transport.abort();
      try {
        peer.close();
      } catch {
        // Closed by the test.
      }
      listener.close();
      // The protocol now in charge (setProtocol may have replaced it).
      const current = transport.getProtocol() as {
        lost?: PromiseWithResolvers<unknown>;
      };
      if (current.lost) {
        await within(current.lost.promise, "connectionLost on dispose");
      }
    },
  };
}

/** Reads from `conn` until EOF (bounded by WAIT_MS). */
export function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  return within(
    (async () => {
      const chunks: Uint8Array[] = [];
      const buffer = new Uint8Array(256 * 1024);
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) break;
        chunks.push(buffer.slice(0, n));
      }
      return concat(chunks);
    })(),
    "the raw peer to read to EOF",
  );
}

/** Reads exactly `size` bytes from `conn`. */
export function readExactly(
  conn: Deno.Conn,
  size: number,
): Promise<Uint8Array> {
  return within(
    (async () => {
      const out = new Uint8Array(size);
      let offset = 0;
      while (offset < size) {
        const n = await conn.read(out.subarray(offset));
        if (n === null) throw new Error(`EOF after ${offset} of ${size} bytes`);
        offset += n;
      }
      return out;
    })(),
    `${size} bytes from the raw peer`,
  );
}

/** Writes all of `data` to `conn`. */
export async function writeAll(
  conn: Deno.Conn,
  data: Uint8Array,
): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    offset += await conn.write(data.subarray(offset));
  }
}

/**
 * Installs an exception handler that collects contexts, and a listener that
 * counts unhandled rejections; disposing restores the default handler.
 */
export function collectExceptions(): Disposable & {
  contexts: ExceptionContext[];
  unhandled: unknown[];
} {
  const contexts: ExceptionContext[] = [];
  const unhandled: unknown[] = [];
  const onUnhandled = (event: PromiseRejectionEvent) => {
    unhandled.push(event.reason);
  };
  globalThis.addEventListener("unhandledrejection", onUnhandled);
  setExceptionHandler((context) => contexts.push(context));
  return {
    contexts,
    unhandled,
    [Symbol.dispose]() {
      setExceptionHandler(null);
      globalThis.removeEventListener("unhandledrejection", onUnhandled);
    },
  };
}

// ------------------------------------------------------------ subprocesses

/** A child process is killed if it runs longer than this. */
export const CHILD_TIMEOUT_MS = 30_000;

/** What {@linkcode runCommand} returns. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@linkcode runCommand} and {@linkcode LineProcess}. */
export interface CommandOptions {
  /** The working directory. */
  cwd?: string | URL;
  /** Bytes written to the child's stdin (then closed). */
  stdin?: Uint8Array;
}

/** Runs a command to completion; it is killed after CHILD_TIMEOUT_MS. */
export async function runCommand(
  command: string,
  args: string[],
  options: CommandOptions = {},
): Promise<CommandResult> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), CHILD_TIMEOUT_MS);
  try {
    const child = new Deno.Command(command, {
      args,
      ...(options.cwd ? { cwd: options.cwd } : {}),
      stdin: options.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
      signal: controller.signal,
    }).spawn();
    // Collect the output while stdin is written: a child that echoes what
    // it reads (socat) would otherwise block on a full stdout pipe.
    const collecting = child.output();
    if (options.stdin) {
      const writer = child.stdin.getWriter();
      await writer.write(options.stdin);
      await writer.close();
    }
    const output = await collecting;
    return {
      code: output.code,
      stdout: new TextDecoder().decode(output.stdout),
      stderr: new TextDecoder().decode(output.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * True when `command args` runs and exits 0.
 *
 * @deprecated Use `peerMissing()` from `./_peers.ts`, which also says why.
 */
export function hasCommand(command: string, args: string[]): boolean {
  return commandMissing(command, args) === null;
}

/**
 * A running child process whose stdout is read line by line; it is killed
 * after CHILD_TIMEOUT_MS, and disposing kills it and releases its pipes.
 */
export class LineProcess implements AsyncDisposable {
  readonly lines: string[] = [];
  #name: string;
  #child: Deno.ChildProcess;
  #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";
  #timer: ReturnType<typeof setTimeout>;
  #stderr: Promise<string>;

  constructor(command: string, args: string[], options: CommandOptions = {}) {
    this.#name = args.find((arg) => /\.(ts|py)$/.test(arg)) ?? command;
    const controller = new AbortController();
    this.#timer = setTimeout(() => controller.abort(), CHILD_TIMEOUT_MS);
    this.#child = new Deno.Command(command, {
      args,
      ...(options.cwd ? { cwd: options.cwd } : {}),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: controller.signal,
    }).spawn();
    this.#reader = this.#child.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    this.#stderr = new Response(this.#child.stderr).text();
  }

  /** Reads stdout until a line matches `pattern`; returns that line. */
  async waitForLine(pattern: RegExp): Promise<string> {
    const found = this.lines.find((line) => pattern.test(line));
    if (found !== undefined) return found;
    return await within(
      (async () => {
        while (true) {
          const { value, done } = await this.#reader.read();
          if (done) {
            throw new Error(
              `${this.#name} ended before printing ${pattern}: ${
                this.lines.join(" | ")
              } ${await this.#stderr}`,
            );
          }
          this.#buffer += value;
          let newline;
          while ((newline = this.#buffer.indexOf("\n")) !== -1) {
            const line = this.#buffer.slice(0, newline);
            this.#buffer = this.#buffer.slice(newline + 1);
            this.lines.push(line);
            if (pattern.test(line)) return line;
          }
        }
      })(),
      `${this.#name} to print ${pattern}`,
    );
  }

  /** Sends `signal` to the child. */
  kill(signal: Deno.Signal): void {
    this.#child.kill(signal);
  }

  /** Waits (bounded) for the child to exit. */
  status(): Promise<Deno.CommandStatus> {
    return within(this.#child.status, `${this.#name} to exit`);
  }

  /** What the child wrote to stderr (once it exited). */
  stderr(): Promise<string> {
    return this.#stderr;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    clearTimeout(this.#timer);
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await this.#reader.cancel();
    await this.#stderr;
    await this.#child.status;
  }
}

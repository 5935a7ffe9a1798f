// Copyright 2026 the denio authors. MIT license.
/**
 * asyncio's high-level streams (Lib/asyncio/streams.py) on top of the
 * protocol layer: {@linkcode openConnection} gives a
 * {@linkcode StreamReader} and a {@linkcode StreamWriter};
 * {@linkcode startServer} calls a handler with a pair for each client.
 *
 * @example A line echo server and a client
 * ```ts
 * import { openConnection, startServer } from "@denio/protocols";
 * import { assertEquals } from "@std/assert";
 *
 * await using server = await startServer(async (reader, writer) => {
 *   for await (const line of reader) writer.write(line);
 *   writer.close();
 * }, { hostname: "127.0.0.1", port: 0 });
 * const { port } = server.addrs[0] as Deno.NetAddr;
 *
 * const [reader, writer] = await openConnection({ port });
 * writer.write(new TextEncoder().encode("hello\n"));
 * await writer.drain();
 * assertEquals(new TextDecoder().decode(await reader.readline()), "hello\n");
 * writer.close();
 * await writer.waitClosed();
 * ```
 *
 * @module
 */

import type { Protocol, ReadTransport, Transport } from "../mod.ts";
import {
  type ConnectOptions,
  createConnection,
} from "../transports/connection.ts";
import { callExceptionHandler } from "../transports/exception_handler.ts";
import {
  createServer,
  type ServeOptions,
  type Server,
} from "../transports/server.ts";
import { startTls, type StartTlsOptions } from "../transports/tls.ts";
import { describe } from "./_describe.ts";

/** The default `limit` of a StreamReader: 64 KiB, as asyncio. */
const DEFAULT_LIMIT = 64 * 1024;

const NEWLINE = new Uint8Array([0x0a]);
const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();

// ---------------------------------------------------------------- errors

/**
 * The stream ended before a read could complete: asyncio's
 * `IncompleteReadError`. `partial` holds the bytes read before the end (they
 * are consumed from the stream).
 *
 * @example Catch an early end
 * ```ts
 * import { IncompleteReadError, StreamReader } from "@denio/protocols";
 * import { assertEquals, assertRejects } from "@std/assert";
 *
 * const reader = new StreamReader();
 * reader.feedData(new Uint8Array([1, 2]));
 * reader.feedEof();
 * const error = await assertRejects(() => reader.readexactly(4), IncompleteReadError);
 * assertEquals(error.partial, new Uint8Array([1, 2]));
 * assertEquals(error.expected, 4);
 * ```
 */
export class IncompleteReadError extends Error {
  /** The bytes read before the stream ended. */
  readonly partial: Uint8Array;
  /** The number of bytes asked for, or `null` when reading up to a separator. */
  readonly expected: number | null;

  /**
   * Makes the error; the message says how many bytes were read.
   *
   * @param partial The bytes read before the stream ended.
   * @param expected The number of bytes asked for, or `null` for `readuntil()`.
   * @param options The `cause`, if any.
   */
  constructor(
    partial: Uint8Array,
    expected: number | null,
    options?: ErrorOptions,
  ) {
    super(
      expected === null
        ? `Cannot read until separator as the stream ended first: current value is ${partial.length} bytes read`
        : `Cannot read ${expected} bytes as the stream ended first: current value is ${partial.length} bytes read`,
      options,
    );
    this.name = "IncompleteReadError";
    this.partial = partial;
    this.expected = expected;
  }
}

/**
 * A separator was not found within the reader's `limit`: asyncio's
 * `LimitOverrunError`. `consumed` is how many bytes would have to be consumed
 * to go on; after `readuntil()` they are still in the reader.
 *
 * @example Catch an overlong line
 * ```ts
 * import { LimitOverrunError, StreamReader } from "@denio/protocols";
 * import { assertEquals, assertRejects } from "@std/assert";
 *
 * const reader = new StreamReader({ limit: 4 });
 * reader.feedData(new TextEncoder().encode("too long\n"));
 * const error = await assertRejects(() => reader.readuntil(), LimitOverrunError);
 * assertEquals(error.consumed, 8);
 * ```
 */
export class LimitOverrunError extends Error {
  /** The number of bytes to consume to get past the limit. */
  readonly consumed: number;

  /**
   * Makes the error.
   *
   * @param message What went wrong.
   * @param consumed The number of bytes to consume to get past the limit.
   * @param options The `cause`, if any.
   */
  constructor(message: string, consumed: number, options?: ErrorOptions) {
    super(message, options);
    this.name = "LimitOverrunError";
    this.consumed = consumed;
  }
}

// ---------------------------------------------------------------- helpers

function checkLimit(limit: unknown, action: string): number {
  if (limit === undefined) return DEFAULT_LIMIT;
  if (typeof limit !== "number") {
    throw new TypeError(
      `Cannot ${action} as limit is not a number: current value is ${
        describe(limit)
      }`,
    );
  }
  if (!Number.isSafeInteger(limit) || limit <= 0) {
    throw new RangeError(
      `Cannot ${action} as limit is not a positive integer: current value is ${limit}`,
    );
  }
  return limit;
}

function checkOptions(options: unknown, action: string): void {
  if (options === null || typeof options !== "object") {
    throw new TypeError(
      `Cannot ${action} as options is not an object: current value is ${
        describe(options)
      }`,
    );
  }
}

function checkCount(n: unknown, action: string, min: number): number {
  if (typeof n !== "number") {
    throw new TypeError(
      `Cannot ${action} as n is not a number: current value is ${describe(n)}`,
    );
  }
  if (!Number.isSafeInteger(n) || n < min) {
    throw new RangeError(
      `Cannot ${action} as n is not an integer${
        min === 0 ? " of 0 or more" : ""
      }: current value is ${n}`,
    );
  }
  return n;
}

function toSeparator(separator: unknown): Uint8Array {
  if (typeof separator === "string") return encoder.encode(separator);
  if (separator instanceof Uint8Array) return separator;
  throw new TypeError(
    `Cannot read until separator as separator is not a string or Uint8Array: current value is ${
      describe(separator)
    }`,
  );
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * The reader's buffer: a queue of the chunks fed to it, kept as given (the
 * transport hands each chunk over for good), so bytes are copied only when a
 * result spans chunks. Positions are counted from the first unread byte.
 */
class ByteQueue {
  #chunks: Uint8Array[] = [];
  #head = 0; // index of the first live chunk
  #offset = 0; // unread start inside chunks[#head]
  size = 0;

  push(data: Uint8Array): void {
    this.#chunks.push(data);
    this.size += data.length;
  }

  clear(): void {
    this.#chunks = [];
    this.#head = 0;
    this.#offset = 0;
    this.size = 0;
  }

  /** Removes and returns the first `n` bytes (`n` <= size). */
  take(n: number): Uint8Array {
    if (n === 0) return EMPTY;
    const first = this.#chunks[this.#head]!;
    if (first.length - this.#offset >= n) {
      const out = this.#offset === 0 && n === first.length
        ? first
        : first.subarray(this.#offset, this.#offset + n);
      this.#advance(n);
      return out;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.#chunks[this.#head]!;
      const part = Math.min(chunk.length - this.#offset, n - filled);
      out.set(chunk.subarray(this.#offset, this.#offset + part), filled);
      filled += part;
      this.#advance(part);
    }
    return out;
  }

  /** Drops the first `n` bytes (`n` <= size). */
  skip(n: number): void {
    while (n > 0) {
      const chunk = this.#chunks[this.#head]!;
      const part = Math.min(chunk.length - this.#offset, n);
      this.#advance(part);
      n -= part;
    }
  }

  /** Advances within the head chunk (`n` <= its unread length). */
  #advance(n: number): void {
    this.size -= n;
    this.#offset += n;
    if (this.#offset === this.#chunks[this.#head]!.length) {
      this.#head++;
      this.#offset = 0;
      if (this.#head === this.#chunks.length) {
        this.#chunks = [];
        this.#head = 0;
      } else if (this.#head >= 1024 && this.#head * 2 >= this.#chunks.length) {
        this.#chunks = this.#chunks.slice(this.#head);
        this.#head = 0;
      }
    }
  }

  /** True when `sep` occurs at position `at`. */
  startsWith(sep: Uint8Array, at: number): boolean {
    if (at + sep.length > this.size) return false;
    const [index, local] = this.#locate(at);
    return this.#matchesAt(sep, index, local, 0);
  }

  /**
   * The position of the first `sep` at or after `from`, or -1. The search
   * starts from the chunk holding `from`, found by walking back from the end,
   * so a search that resumes where the last one stopped costs only the new
   * bytes (asyncio's bytearray.find(sep, offset)).
   */
  indexOf(sep: Uint8Array, from: number): number {
    if (from + sep.length > this.size) return -1;
    const first = sep[0]!;
    let [index, local] = this.#locate(from);
    let base = from - local;
    for (; index < this.#chunks.length; index++) {
      const chunk = this.#chunks[index]!;
      for (;;) {
        const hit = chunk.indexOf(first, local);
        if (hit === -1) break;
        const position = base + hit;
        if (position + sep.length > this.size) return -1;
        if (this.#matchesAt(sep, index, hit + 1, 1)) return position;
        local = hit + 1;
      }
      base += chunk.length;
      local = 0;
    }
    return -1;
  }

  /** [chunk index, index inside that chunk] of position `at` (< size). */
  #locate(at: number): [number, number] {
    const chunks = this.#chunks;
    let index = chunks.length - 1;
    // Position of chunks[index][0] relative to the first unread byte.
    let base = this.size - chunks[index]!.length;
    while (base > at) {
      index--;
      base -= chunks[index]!.length;
    }
    return [index, at - base];
  }

  /** Whether sep[from..] matches the bytes starting at chunks[index][local]. */
  #matchesAt(
    sep: Uint8Array,
    index: number,
    local: number,
    from: number,
  ): boolean {
    let chunk = this.#chunks[index]!;
    for (let j = from; j < sep.length; j++) {
      while (local >= chunk.length) {
        index++;
        local = 0;
        const next = this.#chunks[index];
        if (next === undefined) return false;
        chunk = next;
      }
      if (chunk[local] !== sep[j]) return false;
      local++;
    }
    return true;
  }
}

// ---------------------------------------------------------------- reader

/** Sets a reader's transport after `startTls` (set by StreamReader). */
let replaceReaderTransport: (
  reader: StreamReader,
  transport: ReadTransport,
) => void;

/** Options of the {@linkcode StreamReader} constructor. */
export interface StreamReaderOptions {
  /**
   * The buffer limit in bytes: `readuntil()`/`readline()` fail beyond it, and
   * reading from the transport pauses while more than twice this is buffered.
   *
   * @default {65536}
   */
  limit?: number;
}

/**
 * asyncio's `StreamReader`: buffered reads from a stream connection. Get one
 * from {@linkcode openConnection} or {@linkcode startServer}.
 *
 * Flow control as asyncio: when more than `2 * limit` bytes are buffered the
 * reader pauses reading on the transport, and resumes it once the buffer is
 * down to `limit` or less (or when a read needs more data). Only one read may
 * wait for data at a time; a second one throws, as in asyncio.
 *
 * The returned bytes are the caller's to keep. They may be views into a
 * larger buffer received from the transport (no copy is made when a result
 * lies within one received chunk).
 *
 * @example Read lines fed by hand
 * ```ts
 * import { StreamReader } from "@denio/protocols";
 * import { assertEquals } from "@std/assert";
 *
 * const reader = new StreamReader();
 * reader.feedData(new TextEncoder().encode("one\ntwo"));
 * reader.feedEof();
 * const lines: string[] = [];
 * for await (const line of reader) lines.push(new TextDecoder().decode(line));
 * assertEquals(lines, ["one\n", "two"]);
 * ```
 */
export class StreamReader implements AsyncIterable<Uint8Array> {
  #limit: number;
  #queue = new ByteQueue();
  #eof = false;
  #waiter: PromiseWithResolvers<void> | null = null;
  #exception: Error | null = null;
  #transport: ReadTransport | null = null;
  #paused = false;

  static {
    replaceReaderTransport = (reader, transport) => {
      reader.#transport = transport;
      // Flow control goes on where it was: a paused reader pauses the new
      // transport too.
      if (reader.#paused) transport.pauseReading();
    };
  }

  /**
   * Makes an empty reader.
   *
   * @param options The buffer limit.
   * @throws {TypeError} If `limit` is not a number.
   * @throws {RangeError} If `limit` is not a positive integer.
   */
  constructor(options: StreamReaderOptions = {}) {
    checkOptions(options, "create stream reader");
    this.#limit = checkLimit(options.limit, "create stream reader");
  }

  /** The buffer limit in bytes. */
  get limit(): number {
    return this.#limit;
  }

  /** The error set by {@linkcode StreamReader.setException}, or `null`. */
  exception(): Error | null {
    return this.#exception;
  }

  /**
   * Sets the error every read throws from now on; a read waiting for data
   * rejects with it. Used by the protocol when the connection is lost with an
   * error.
   *
   * @param error The error.
   * @throws {TypeError} If `error` is not an Error.
   */
  setException(error: Error): void {
    if (!(error instanceof Error)) {
      throw new TypeError(
        `Cannot set exception as it is not an Error: current value is ${typeof error}`,
      );
    }
    this.#exception = error;
    const waiter = this.#waiter;
    if (waiter !== null) {
      this.#waiter = null;
      waiter.reject(error);
    }
  }

  /**
   * Attaches the transport whose reading is paused and resumed for flow
   * control. Used by the protocol.
   *
   * @param transport The transport the data comes from.
   * @throws {Error} If a transport is already attached.
   */
  setTransport(transport: ReadTransport): void {
    if (this.#transport !== null) {
      throw new Error(
        "Cannot set transport of stream reader as one is already set",
      );
    }
    this.#transport = transport;
  }

  /**
   * Marks the end of the stream; waiting reads wake up. Idempotent. Used by
   * the protocol.
   */
  feedEof(): void {
    this.#eof = true;
    this.#wakeup();
  }

  /** True when the end of the stream was fed and the buffer is empty. */
  atEof(): boolean {
    return this.#eof && this.#queue.size === 0;
  }

  /**
   * Appends received bytes and wakes a waiting read. The reader keeps `data`
   * (it does not copy it): do not modify it afterwards. Pauses reading on the
   * transport when more than `2 * limit` bytes are buffered. Used by the
   * protocol.
   *
   * @param data The bytes.
   * @throws {TypeError} If `data` is not a Uint8Array.
   * @throws {Error} If the end of the stream was already fed.
   */
  feedData(data: Uint8Array): void {
    if (!(data instanceof Uint8Array)) {
      throw new TypeError(
        `Cannot feed data to stream reader as data is not a Uint8Array: current value is ${
          describe(data)
        }`,
      );
    }
    if (this.#eof) {
      throw new Error("Cannot feed data to stream reader as EOF was fed");
    }
    if (data.length === 0) return;
    this.#queue.push(data);
    this.#wakeup();
    if (
      this.#transport !== null && !this.#paused &&
      this.#queue.size > 2 * this.#limit
    ) {
      this.#transport.pauseReading();
      this.#paused = true;
    }
  }

  /**
   * Reads up to `n` bytes: whatever is buffered (at most `n`), waiting for
   * data only when nothing is. With `n` negative (the default), reads until
   * the end of the stream. An empty result means the stream ended.
   *
   * @param n The most bytes to read, or a negative number for all.
   * @returns The bytes.
   * @throws {TypeError} If `n` is not a number.
   * @throws {RangeError} If `n` is not an integer.
   * @throws {Error} The reader's exception, if one was set; or if another
   * read is already waiting for data.
   */
  async read(n = -1): Promise<Uint8Array> {
    checkCount(n, "read from stream", -Infinity);
    if (this.#exception !== null) throw this.#exception;
    if (n === 0) return EMPTY;
    if (n < 0) {
      // asyncio reads `limit`-sized blocks until EOF, then joins them.
      const blocks: Uint8Array[] = [];
      let total = 0;
      for (;;) {
        const block = await this.read(this.#limit);
        if (block.length === 0) break;
        blocks.push(block);
        total += block.length;
      }
      return blocks.length === 0 ? EMPTY : concat(blocks, total);
    }
    if (this.#queue.size === 0 && !this.#eof) await this.#waitForData("read");
    const data = this.#queue.take(Math.min(n, this.#queue.size));
    this.#maybeResume();
    return data;
  }

  /**
   * Reads one line, up to and including `\n`. At the end of the stream it
   * returns the partial last line, then empty bytes.
   *
   * When the line is longer than `limit`, asyncio discards it (through the
   * newline if one was buffered, else the whole buffer) and raises
   * `ValueError`; this throws {@linkcode LimitOverrunError} after
   * discarding the same bytes.
   *
   * @returns The line, with its `\n` unless the stream ended first.
   * @throws {LimitOverrunError} If the line is longer than `limit`.
   * @throws {Error} The reader's exception, if one was set; or if another
   * read is already waiting for data.
   */
  async readline(): Promise<Uint8Array> {
    try {
      return await this.readuntil(NEWLINE);
    } catch (error) {
      if (error instanceof IncompleteReadError) return error.partial;
      if (error instanceof LimitOverrunError) {
        if (this.#queue.startsWith(NEWLINE, error.consumed)) {
          this.#queue.skip(error.consumed + NEWLINE.length);
        } else {
          this.#queue.clear();
        }
        this.#maybeResume();
      }
      throw error;
    }
  }

  /**
   * Reads up to and including `separator`. A string separator is encoded as
   * UTF-8.
   *
   * `separator` may also be an array of separators (Python 3.13's tuple of
   * separators): the read stops at the match that ends first, so the result
   * is the shortest one that ends with any of them. When several end at the
   * same byte the shortest separator is the one that matched (it counts for
   * the `limit` check, as in asyncio: the data before it must fit).
   *
   * @param separator The bytes to stop after, or an array of them.
   * @returns The bytes read, ending with the separator.
   * @throws {TypeError} If `separator` is not a string or Uint8Array, or an
   * array of them.
   * @throws {RangeError} If `separator` (or one of them) is empty, or the
   * array is empty.
   * @throws {IncompleteReadError} If the stream ends first; `partial` holds
   * everything that was buffered (now consumed) and `expected` is `null`.
   * @throws {LimitOverrunError} If no separator is found within `limit` bytes,
   * or the data before it is longer than `limit`; the data stays buffered.
   * @throws {Error} The reader's exception, if one was set; or if another
   * read is already waiting for data.
   *
   * @example Read up to whichever line ending comes first
   * ```ts
   * import { StreamReader } from "@denio/protocols";
   * import { assertEquals } from "@std/assert";
   *
   * const reader = new StreamReader();
   * reader.feedData(new TextEncoder().encode("one\r\ntwo\nthree;"));
   * reader.feedEof();
   * const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
   * const separators = ["\r\n", "\n", ";"];
   * assertEquals(decode(await reader.readuntil(separators)), "one\r\n");
   * assertEquals(decode(await reader.readuntil(separators)), "two\n");
   * assertEquals(decode(await reader.readuntil(separators)), "three;");
   * ```
   */
  async readuntil(
    separator:
      | Uint8Array
      | string
      | readonly (Uint8Array | string)[] = NEWLINE,
  ): Promise<Uint8Array> {
    // Sorted by length (stable), so that of two matches ending at the same
    // byte the shorter separator wins, as CPython 3.13.
    const seps = (Array.isArray(separator) ? [...separator] : [separator])
      .map(toSeparator)
      .sort((a, b) => a.length - b.length);
    if (seps.length === 0) {
      throw new RangeError(
        "Cannot read until separator as the separator array is empty: current value is 0 separators",
      );
    }
    const minLength = seps[0]!.length;
    const maxLength = seps[seps.length - 1]!.length;
    if (minLength === 0) {
      throw new RangeError(
        "Cannot read until separator as separator is empty: current value is 0 bytes",
      );
    }
    if (this.#exception !== null) throw this.#exception;
    const queue = this.#queue;
    let offset = 0;
    let matchStart = -1;
    let matchEnd = -1;
    for (;;) {
      const size = queue.size;
      if (size - offset >= minLength) {
        for (const sep of seps) {
          const found = queue.indexOf(sep, offset);
          if (found === -1) continue;
          const end = found + sep.length;
          if (matchEnd === -1 || end < matchEnd) {
            matchStart = found;
            matchEnd = end;
          }
        }
        if (matchEnd !== -1) break;
        // A separator may still start in the last maxLength - 1 bytes.
        offset = Math.max(0, size + 1 - maxLength);
        if (offset > this.#limit) {
          throw new LimitOverrunError(
            `Cannot read until separator as it is not found within the limit of ${this.#limit} bytes: current value is ${offset} bytes`,
            offset,
          );
        }
      }
      // A complete message may have arrived with the EOF: check after searching.
      if (this.#eof) {
        const partial = queue.take(queue.size);
        throw new IncompleteReadError(partial, null);
      }
      await this.#waitForData("readuntil");
    }
    if (matchStart > this.#limit) {
      throw new LimitOverrunError(
        `Cannot read until separator as the data before it is longer than the limit of ${this.#limit} bytes: current value is ${matchStart} bytes`,
        matchStart,
      );
    }
    const chunk = queue.take(matchEnd);
    this.#maybeResume();
    return chunk;
  }

  /**
   * Reads exactly `n` bytes.
   *
   * @param n The number of bytes.
   * @returns The bytes.
   * @throws {TypeError} If `n` is not a number.
   * @throws {RangeError} If `n` is negative or not an integer.
   * @throws {IncompleteReadError} If the stream ends first; `partial` holds
   * the bytes read (now consumed) and `expected` is `n`.
   * @throws {Error} The reader's exception, if one was set; or if another
   * read is already waiting for data.
   */
  async readexactly(n: number): Promise<Uint8Array> {
    checkCount(n, "read exactly from stream", 0);
    if (this.#exception !== null) throw this.#exception;
    if (n === 0) return EMPTY;
    const queue = this.#queue;
    while (queue.size < n) {
      if (this.#eof) {
        throw new IncompleteReadError(queue.take(queue.size), n);
      }
      await this.#waitForData("readexactly");
    }
    const data = queue.take(n);
    this.#maybeResume();
    return data;
  }

  /**
   * Iterates over lines (as {@linkcode StreamReader.readline}) until the
   * end of the stream.
   *
   * @returns An async iterator of lines.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array, void, undefined> {
    for (;;) {
      const line = await this.readline();
      if (line.length === 0) return;
      yield line;
    }
  }

  #wakeup(): void {
    const waiter = this.#waiter;
    if (waiter !== null) {
      this.#waiter = null;
      waiter.resolve();
    }
  }

  #maybeResume(): void {
    if (this.#paused && this.#queue.size <= this.#limit) {
      this.#paused = false;
      this.#transport!.resumeReading();
    }
  }

  async #waitForData(name: string): Promise<void> {
    if (this.#waiter !== null) {
      throw new Error(
        `Cannot call ${name}() as another read is already waiting for data`,
      );
    }
    // A read that needs more than is buffered must not wait on a paused
    // transport (readexactly(n) with n > 2 * limit, for one).
    if (this.#paused) {
      this.#paused = false;
      this.#transport!.resumeReading();
    }
    const waiter = Promise.withResolvers<void>();
    this.#waiter = waiter;
    try {
      await waiter.promise;
    } finally {
      if (this.#waiter === waiter) this.#waiter = null;
    }
  }
}

// ---------------------------------------------------------------- protocol

/** Called with the reader and writer of each client of {@linkcode startServer}. */
export type ClientConnectedCallback = (
  reader: StreamReader,
  writer: StreamWriter,
) => void | Promise<void>;

/** Options of the {@linkcode StreamReaderProtocol} constructor. */
export interface StreamReaderProtocolOptions {
  /**
   * Called from `connectionMade` with the reader and a new writer. A throw or
   * a rejection goes to the exception handler and closes the transport.
   */
  clientConnected?: ClientConnectedCallback;
}

interface ProtocolInternals {
  protocol: StreamReaderProtocol;
  reader: StreamReader | null;
  closed: Promise<void>;
  /** True for a server's protocol (it has a client-connected callback). */
  serverSide: boolean;
  drain(): Promise<void>;
  /** asyncio's `_replace_transport()`, after `start_tls()`. */
  replaceTransport(transport: Transport): void;
  /** Reports `error` as the end of a connection a failed upgrade took. */
  fail(error: Error): void;
}

let internalsOf: (protocol: StreamReaderProtocol) => ProtocolInternals;

function connectionLostError(error: Error | null): Error {
  return error ?? new Deno.errors.ConnectionReset("Connection lost");
}

/**
 * asyncio's `StreamReaderProtocol` (with its `FlowControlMixin`): the
 * {@linkcode Protocol} that feeds a {@linkcode StreamReader} and lets a
 * {@linkcode StreamWriter} wait in `drain()`. Use it to put streams on any
 * stream transport, a pipe for one.
 *
 * The end of the stream keeps the write side open (`eofReceived` returns
 * true), as asyncio; a transport that cannot half-close closes itself.
 *
 * @example Streams over createConnection
 * ```ts
 * import {
 *   createConnection,
 *   createServer,
 *   StreamReader,
 *   StreamReaderProtocol,
 *   StreamWriter,
 * } from "@denio/protocols";
 * import { assertEquals } from "@std/assert";
 *
 * await using server = await createServer(() => ({
 *   connectionMade(transport) {
 *     transport.write(new TextEncoder().encode("hi\n"));
 *     transport.close();
 *   },
 * }), { hostname: "127.0.0.1", port: 0 });
 * const { port } = server.addrs[0] as Deno.NetAddr;
 *
 * const reader = new StreamReader();
 * const [transport, protocol] = await createConnection(
 *   () => new StreamReaderProtocol(reader),
 *   { port },
 * );
 * await using writer = new StreamWriter(transport, protocol);
 * assertEquals(await reader.readline(), new TextEncoder().encode("hi\n"));
 * ```
 */
export class StreamReaderProtocol implements Protocol {
  #reader: StreamReader | null;
  #clientConnected: ClientConnectedCallback | undefined;
  #transport: Transport | null = null;
  #closed = Promise.withResolvers<void>();
  // FlowControlMixin
  #paused = false;
  #lost = false;
  #lostError: Error | null = null;
  #drainWaiters = new Set<PromiseWithResolvers<void>>();

  static {
    internalsOf = (protocol) => ({
      protocol,
      reader: protocol.#reader,
      closed: protocol.#closed.promise,
      serverSide: protocol.#clientConnected !== undefined,
      drain: () => protocol.#drainHelper(),
      replaceTransport: (transport) => {
        protocol.#transport = transport;
        const reader = protocol.#reader;
        if (reader !== null) replaceReaderTransport(reader, transport);
      },
      fail: (error) => {
        if (!protocol.#lost) protocol.connectionLost(error);
      },
    });
  }

  /**
   * Makes a protocol that feeds `reader`.
   *
   * @param reader The reader to feed.
   * @param options The client-connected callback, if any.
   * @throws {TypeError} If `reader` is not a StreamReader or the callback is
   * not a function.
   */
  constructor(reader: StreamReader, options: StreamReaderProtocolOptions = {}) {
    if (!(reader instanceof StreamReader)) {
      throw new TypeError(
        `Cannot create stream reader protocol as reader is not a StreamReader: current value is ${
          describe(reader)
        }`,
      );
    }
    checkOptions(options, "create stream reader protocol");
    const callback = options.clientConnected;
    if (callback !== undefined && typeof callback !== "function") {
      throw new TypeError(
        `Cannot create stream reader protocol as clientConnected is not a function: current value is ${
          describe(callback)
        }`,
      );
    }
    this.#reader = reader;
    this.#clientConnected = callback;
    // Nobody may ever wait for the close: never an unhandled rejection.
    this.#closed.promise.catch(() => {});
  }

  /**
   * Attaches the reader to `transport` and calls the client-connected
   * callback, if any.
   *
   * @param transport The connection's transport.
   */
  connectionMade(transport: Transport): void {
    this.#transport = transport;
    const reader = this.#reader!;
    reader.setTransport(transport);
    const callback = this.#clientConnected;
    if (callback === undefined) return;
    const writer = new StreamWriter(transport, this);
    const failed = (error: unknown) => {
      callExceptionHandler({
        message: "Unhandled error in the client connected callback",
        error,
        transport,
        protocol: this,
      });
      transport.close();
    };
    try {
      const result = callback(reader, writer);
      if (result instanceof Promise) result.catch(failed);
    } catch (error) {
      failed(error);
    }
  }

  /**
   * Feeds EOF (clean close) or the error to the reader, settles
   * `waitClosed()` and rejects a waiting `drain()`.
   *
   * @param error The error, or `null` for a clean close.
   */
  connectionLost(error: Error | null): void {
    const reader = this.#reader;
    if (reader !== null) {
      if (error === null) reader.feedEof();
      else reader.setException(error);
    }
    if (error === null) this.#closed.resolve();
    else this.#closed.reject(error);
    this.#lost = true;
    this.#lostError = error;
    // asyncio resolves waiting drains on a clean close and lets the next
    // drain fail; they fail at once here.
    const reason = connectionLostError(error);
    for (const waiter of this.#drainWaiters) waiter.reject(reason);
    this.#drainWaiters.clear();
  }

  /**
   * Feeds `data` to the reader.
   *
   * @param data The received bytes.
   */
  dataReceived(data: Uint8Array): void {
    this.#reader?.feedData(data);
  }

  /**
   * Feeds EOF to the reader and keeps the write side open.
   *
   * @returns `true`.
   */
  eofReceived(): boolean {
    this.#reader?.feedEof();
    return true;
  }

  /** Makes `drain()` wait. */
  pauseWriting(): void {
    this.#paused = true;
  }

  /** Wakes every waiting `drain()`. */
  resumeWriting(): void {
    this.#paused = false;
    for (const waiter of this.#drainWaiters) waiter.resolve();
    this.#drainWaiters.clear();
  }

  async #drainHelper(): Promise<void> {
    if (this.#lost) throw connectionLostError(this.#lostError);
    if (!this.#paused) return;
    const waiter = Promise.withResolvers<void>();
    this.#drainWaiters.add(waiter);
    await waiter.promise;
  }
}

// ---------------------------------------------------------------- writer

/**
 * asyncio's `StreamWriter`: writes to a transport, with `drain()` for flow
 * control. Get one from {@linkcode openConnection} or
 * {@linkcode startServer}.
 *
 * `await using` closes the transport and waits until the connection is gone.
 *
 * @example Write, drain, close
 * ```ts
 * import { openConnection, startServer } from "@denio/protocols";
 * import { assertEquals } from "@std/assert";
 *
 * const got = Promise.withResolvers<Uint8Array>();
 * await using server = await startServer(async (reader) => {
 *   got.resolve(await reader.read());
 * }, { hostname: "127.0.0.1", port: 0 });
 * const { port } = server.addrs[0] as Deno.NetAddr;
 *
 * const [, writer] = await openConnection({ port });
 * writer.writelines([new Uint8Array([1, 2]), new Uint8Array([3])]);
 * await writer.drain();
 * writer.writeEof();
 * assertEquals(await got.promise, new Uint8Array([1, 2, 3]));
 * writer.close();
 * await writer.waitClosed();
 * ```
 */
export class StreamWriter implements AsyncDisposable {
  #transport: Transport;
  #internals: ProtocolInternals;

  /**
   * Wraps a transport whose protocol is `protocol`.
   *
   * @param transport The transport to write to.
   * @param protocol The transport's protocol.
   * @throws {TypeError} If `protocol` is not a StreamReaderProtocol or
   * `transport` not an object.
   */
  constructor(transport: Transport, protocol: StreamReaderProtocol) {
    if (transport === null || typeof transport !== "object") {
      throw new TypeError(
        `Cannot create stream writer as transport is not an object: current value is ${
          describe(transport)
        }`,
      );
    }
    if (!(protocol instanceof StreamReaderProtocol)) {
      throw new TypeError(
        `Cannot create stream writer as protocol is not a StreamReaderProtocol: current value is ${
          describe(protocol)
        }`,
      );
    }
    this.#transport = transport;
    this.#internals = internalsOf(protocol);
  }

  /** The underlying transport. */
  get transport(): Transport {
    return this.#transport;
  }

  /**
   * Writes `data` (see `Transport.write`: the transport may keep a
   * reference, so do not modify it afterwards). Follow with `drain()` to
   * respect flow control. After the connection is lost the data is dropped
   * without an error, as asyncio; `drain()` then rejects.
   *
   * @param data The bytes.
   * @throws {TypeError} If `data` is not a Uint8Array.
   * @throws {Error} If `writeEof()` was called.
   */
  write(data: Uint8Array): void {
    this.#transport.write(data);
  }

  /**
   * Writes each chunk in order.
   *
   * @param chunks The chunks.
   * @throws {TypeError} If `chunks` is not iterable or holds a non-Uint8Array.
   * @throws {Error} If `writeEof()` was called.
   */
  writelines(chunks: Iterable<Uint8Array>): void {
    this.#transport.writelines(chunks);
  }

  /**
   * Shuts down the write side once buffered data is sent.
   *
   * @throws {Error} If the transport cannot half-close.
   */
  writeEof(): void {
    this.#transport.writeEof();
  }

  /** True when the transport supports `writeEof()`. */
  canWriteEof(): boolean {
    return this.#transport.canWriteEof();
  }

  /** Closes the transport after flushing buffered data. Idempotent. */
  close(): void {
    this.#transport.close();
  }

  /** True once the transport is closing or closed. */
  isClosing(): boolean {
    return this.#transport.isClosing();
  }

  /**
   * Resolves once the connection is gone.
   *
   * @returns A promise that resolves after `connectionLost(null)`.
   * @throws {Error} The error the connection was lost with (as a rejection).
   */
  waitClosed(): Promise<void> {
    return this.#internals.closed;
  }

  /**
   * Transport information by name (`peername`, `sockname`, `socket`, …).
   *
   * @param name The key.
   * @param defaultValue What to return for an unknown key.
   * @returns The value, or `defaultValue`.
   */
  getExtraInfo(name: string, defaultValue?: unknown): unknown {
    return this.#transport.getExtraInfo(name, defaultValue);
  }

  /**
   * Waits until it is fine to write again: resolves at once unless the
   * transport's write buffer is over its high watermark, in which case it
   * waits until the buffer drains to the low watermark.
   *
   * @returns A promise that resolves when writing may go on.
   * @throws {Error} The reader's exception (the error the connection was
   * lost with); `Deno.errors.ConnectionReset` once the connection is lost
   * without one.
   */
  async drain(): Promise<void> {
    const reader = this.#internals.reader;
    const error = reader?.exception() ?? null;
    if (error !== null) throw error;
    if (this.#transport.isClosing()) {
      // asyncio's sleep(0): lets a queued connectionLost run first.
      await undefined;
    }
    await this.#internals.drain();
  }

  /**
   * Upgrades the connection to TLS in place, as asyncio's
   * `StreamWriter.start_tls()` (Python 3.11): waits for `drain()`, then runs
   * {@linkcode startTls} on the transport with the writer's protocol, and
   * from then on the writer ({@linkcode StreamWriter.transport}) and the
   * reader's flow control use the TLS transport. Bytes the
   * {@linkcode StreamReader} had buffered stay readable, in order, before
   * the decrypted ones.
   *
   * Do not write while the upgrade runs (the old transport drops the data);
   * reads may wait meanwhile. `serverSide` defaults as in asyncio: `true`
   * for a {@linkcode startServer} client (its protocol has a
   * client-connected callback), `false` otherwise.
   *
   * A failure before the handshake starts leaves the plain connection
   * working. When the handshake fails the connection is closed; asyncio then
   * leaves the reader waiting forever, while here the error also goes to
   * the protocol as the connection's end: reads, `drain()` and
   * `waitClosed()` reject with it.
   *
   * @param options The TLS settings, as for {@linkcode startTls}
   * (`hostname` is asyncio's `server_hostname`, `handshakeTimeout` its
   * `ssl_handshake_timeout` in milliseconds).
   * @returns A promise that resolves once the handshake has completed.
   * @throws {TypeError} If `options` is not an object or an option has the
   * wrong type (see {@linkcode startTls}).
   * @throws {RangeError} If `handshakeTimeout` is not positive.
   * @throws {Error} If the connection is lost or closing, the transport is
   * not a stream transport of this module, or the handshake fails or times
   * out (`Deno.errors.TimedOut`).
   *
   * @example STARTTLS on both ends of a stream connection
   * ```ts
   * import { openConnection, startServer } from "@denio/protocols";
   * import { assertEquals } from "@std/assert";
   *
   * // A self-signed certificate for 127.0.0.1 and localhost (examples only!).
   * const cert = `-----BEGIN CERTIFICATE-----
   * MIIBIzCB1qADAgECAgEBMAUGAytlcDAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwIBcN
   * MDAwMTAxMDAwMDAwWhgPMjEyNTAxMDEwMDAwMDBaMBQxEjAQBgNVBAMMCWxvY2Fs
   * aG9zdDAqMAUGAytlcAMhAHXiRU/s56alPvQU7Fz3w6ZJcwVNtfyadfEkqXvIJkta
   * o0swSTAMBgNVHRMBAf8EAjAAMBoGA1UdEQQTMBGHBH8AAAGCCWxvY2FsaG9zdDAd
   * BgNVHQ4EFgQUQlYdfZFdQkAgDnOUxSRYYvx9LnYwBQYDK2VwA0EAbNPFOYUCOW8Q
   * sR6Ln22raqLKDx9mc16VE6smR8cAiBMfPzIhL3VDbwe+5kJ5bcipvClunXlBQ7HX
   * t8CytvrZDg==
   * -----END CERTIFICATE-----`;
   * const key = `-----BEGIN PRIVATE KEY-----
   * MC4CAQAwBQYDK2VwBCIEIP7o9Z8y86PtxH6/aRPm8tfp5IXIZoXOqou2fY3+914j
   * -----END PRIVATE KEY-----`;
   * const encode = (text: string) => new TextEncoder().encode(text);
   * const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
   *
   * // The server says OK, upgrades, then echoes one line upper-cased.
   * await using server = await startServer(async (reader, writer) => {
   *   writer.write(encode("OK\n"));
   *   await writer.startTls({ cert, key });
   *   writer.write(encode(decode(await reader.readline()).toUpperCase()));
   *   writer.close();
   * }, { hostname: "127.0.0.1", port: 0 });
   * const { port } = server.addrs[0] as Deno.NetAddr;
   *
   * const [reader, writer] = await openConnection({ port });
   * assertEquals(decode(await reader.readline()), "OK\n");
   * await writer.startTls({ caCerts: [cert] });
   * writer.write(encode("secret\n"));
   * assertEquals(decode(await reader.readline()), "SECRET\n");
   * await writer[Symbol.asyncDispose]();
   * ```
   */
  async startTls(options: StartTlsOptions): Promise<void> {
    checkOptions(options, "start TLS on stream writer");
    await this.drain();
    const internals = this.#internals;
    const transport = this.#transport;
    const wasClosing = transport.isClosing();
    let tls: Transport;
    try {
      tls = await startTls(
        transport,
        internals.protocol,
        options.serverSide === undefined
          ? { ...options, serverSide: internals.serverSide }
          : options,
      );
    } catch (error) {
      // The upgrade took the connection and closed it: the old transport
      // will not call connectionLost, so report the end here.
      if (!wasClosing && transport.isClosing()) {
        internals.fail(
          error instanceof Error ? error : new Error(String(error)),
        );
      }
      throw error;
    }
    this.#transport = tls;
    internals.replaceTransport(tls);
  }

  /**
   * Closes the transport and waits until the connection is gone. An error
   * the connection was lost with is not thrown here (reads and `drain()`
   * report it).
   */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    try {
      await this.waitClosed();
    } catch {
      // Reported by reads and drain().
    }
  }
}

// ---------------------------------------------------------------- entry points

/** What the stream functions add to the connection options. */
export interface StreamOptions {
  /** The {@linkcode StreamReader} buffer limit in bytes. @default {65536} */
  limit?: number;
}

/** Options of {@linkcode openConnection}: `ConnectOptions` plus `limit`. */
export interface OpenConnectionOptions extends ConnectOptions, StreamOptions {}

/** Options of {@linkcode startServer}: `ServeOptions` plus `limit`. */
export interface StartServerOptions extends ServeOptions, StreamOptions {}

/**
 * Opens a stream connection (TCP, Unix or TLS) and returns a reader and a
 * writer for it, as asyncio's `open_connection()`.
 *
 * @param options Where to connect (as `createConnection`) and the reader's
 * `limit`.
 * @returns The reader and the writer.
 * @throws {TypeError} If an option has the wrong type.
 * @throws {RangeError} If the port or limit is out of range.
 *
 * @example Talk to a Unix socket server
 * ```ts
 * import { openConnection, startServer } from "@denio/protocols";
 * import { assertEquals } from "@std/assert";
 *
 * const dir = await Deno.makeTempDir();
 * const path = `${dir}/hello.sock`;
 * {
 *   await using _server = await startServer(async (reader, writer) => {
 *     const name = new TextDecoder().decode(await reader.readline()).trim();
 *     writer.write(new TextEncoder().encode(`hello ${name}\n`));
 *     await writer.drain();
 *     writer.close();
 *   }, { transport: "unix", path });
 *
 *   const [reader, writer] = await openConnection({ transport: "unix", path });
 *   writer.write(new TextEncoder().encode("deno\n"));
 *   assertEquals(new TextDecoder().decode(await reader.readline()), "hello deno\n");
 *   assertEquals(await reader.read(), new Uint8Array());
 *   await writer[Symbol.asyncDispose]();
 * }
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function openConnection(
  options: OpenConnectionOptions,
): Promise<[StreamReader, StreamWriter]> {
  checkOptions(options, "open connection");
  const { limit, ...connect } = options;
  const reader = new StreamReader({
    limit: checkLimit(limit, "open connection"),
  });
  const [transport, protocol] = await createConnection(
    () => new StreamReaderProtocol(reader),
    connect,
  );
  return [reader, new StreamWriter(transport, protocol)];
}

/**
 * Starts a stream server (TCP, Unix or TLS) that calls `handler` with a
 * reader and a writer for each client, as asyncio's `start_server()`. The
 * handler may be async; a throw or rejection goes to the exception handler
 * and closes that client's transport. The connection is not closed when the
 * handler returns (as asyncio): close the writer.
 *
 * @param handler Called for each client.
 * @param options Where to listen (as `createServer`) and the readers'
 * `limit`.
 * @returns The server.
 * @throws {TypeError} If `handler` is not a function or an option has the
 * wrong type.
 * @throws {RangeError} If the port or limit is out of range.
 *
 * @example An upper-casing server
 * ```ts
 * import { openConnection, startServer } from "@denio/protocols";
 * import { assertEquals } from "@std/assert";
 *
 * await using server = await startServer(async (reader, writer) => {
 *   const text = new TextDecoder().decode(await reader.read());
 *   writer.write(new TextEncoder().encode(text.toUpperCase()));
 *   writer.close();
 * }, { hostname: "127.0.0.1", port: 0 });
 * const { port } = server.addrs[0] as Deno.NetAddr;
 *
 * const [reader, writer] = await openConnection({ port });
 * writer.write(new TextEncoder().encode("shout"));
 * writer.writeEof();
 * assertEquals(new TextDecoder().decode(await reader.read()), "SHOUT");
 * await writer[Symbol.asyncDispose]();
 * ```
 */
export async function startServer(
  handler: ClientConnectedCallback,
  options: StartServerOptions,
): Promise<Server> {
  if (typeof handler !== "function") {
    throw new TypeError(
      `Cannot start server as handler is not a function: current value is ${
        describe(handler)
      }`,
    );
  }
  checkOptions(options, "start server");
  const { limit: rawLimit, ...serve } = options;
  const limit = checkLimit(rawLimit, "start server");
  return await createServer(
    () =>
      new StreamReaderProtocol(new StreamReader({ limit }), {
        clientConnected: handler,
      }),
    serve,
  );
}

// Copyright 2026 the denio authors. MIT license.
/**
 * {@linkcode LineProtocol}: delimiter-framed messages (lines), Twisted's
 * `LineReceiver` for denio, with a hard limit on the line length.
 *
 * @module
 */

import type { BufferedProtocol, WriteTransport } from "../mod.ts";
import {
  checkHandler,
  checkLimit,
  checkWriteTransport,
  type Decoder,
  describeValue,
  findDelimiter,
  FramingError,
  type Scan,
  toBytes,
  writeChunks,
} from "./_framing.ts";
import { FramedProtocol } from "./framed_protocol.ts";

export { FramingError, type FramingErrorOptions } from "./_framing.ts";

/**
 * What a {@linkcode LineProtocol} calls. Every callback is optional and gets
 * the line protocol as its last argument (to send with, or reach the
 * transport through).
 */
export interface LineHandler {
  /** The connection is made. */
  connectionMade?(lines: LineProtocol): void;
  /**
   * A whole line arrived, without its delimiter. `line` is a view into the
   * receive buffer that is never overwritten: it is the handler's to keep
   * (copy a small piece with `slice()` to keep it long without pinning the
   * whole buffer).
   */
  lineReceived?(line: Uint8Array, lines: LineProtocol): void;
  /** The `n` bytes asked for with {@linkcode LineProtocol.expectBytes} arrived. */
  bytesReceived?(data: Uint8Array, lines: LineProtocol): void;
  /**
   * The peer shut down its write side, between two lines. Return `true` to
   * keep our write side open. (EOF in the middle of a line is a
   * {@linkcode FramingError} instead.)
   */
  eofReceived?(lines: LineProtocol): boolean | void;
  /**
   * The connection is gone: `null` for a clean close, a
   * {@linkcode FramingError} when the peer broke the framing, or the
   * transport's error. Called exactly once.
   */
  connectionLost?(error: Error | null, lines: LineProtocol): void;
  /** The transport's write buffer went over its high watermark. */
  pauseWriting?(lines: LineProtocol): void;
  /** The transport's write buffer drained to its low watermark. */
  resumeWriting?(lines: LineProtocol): void;
}

/** Options of the {@linkcode LineProtocol} constructor. */
export interface LineProtocolOptions {
  /** The bytes that end a line; a string is UTF-8 encoded. @default {"\n"} */
  delimiter?: Uint8Array | string;
  /**
   * The longest line accepted, in bytes without the delimiter. A longer line
   * closes the transport and `connectionLost` gets a
   * {@linkcode FramingError}; at most about this many bytes are buffered.
   * @default {65536}
   */
  maxLineLength?: number;
  /**
   * Where the send methods write, when it is not the transport that reads:
   * e.g. the stdout pipe of a server that reads stdin (`connectWritePipe`),
   * or a child's stdin (`getPipeTransport(0)`) while its stdout is fed
   * to {@linkcode LineProtocol.feed}.
   * @default {the transport given to connectionMade}
   */
  writeTransport?: WriteTransport;
}

const ACTION = "create line protocol";

class LineDecoder implements Decoder {
  readonly delimiter: Uint8Array;
  readonly max: number;
  /** Bytes asked for with expectBytes(), or -1 in line mode. */
  raw = -1;
  /** Whether the last message found was raw bytes. */
  lastRaw = false;
  #scanFrom = 0;

  constructor(delimiter: Uint8Array, max: number) {
    this.delimiter = delimiter;
    this.max = max;
  }

  decode(pending: Uint8Array, scan: Scan): boolean {
    const raw = this.raw;
    if (raw >= 0) {
      if (pending.length < raw) {
        scan.need = raw;
        return false;
      }
      scan.start = 0;
      scan.end = scan.next = raw;
      this.raw = -1;
      this.lastRaw = true;
      return true;
    }
    const found = findDelimiter(pending, this.delimiter, this.#scanFrom);
    if (found < 0) {
      // The line is at least as long as where the delimiter may still start.
      this.#scanFrom = -found - 1;
      if (this.#scanFrom > this.max) throw this.#tooLong();
      scan.need = 0;
      return false;
    }
    if (found > this.max) throw this.#tooLong();
    this.#scanFrom = 0;
    scan.start = 0;
    scan.end = found;
    scan.next = found + this.delimiter.length;
    this.lastRaw = false;
    return true;
  }

  incomplete(pending: Uint8Array): FramingError {
    const what = this.raw >= 0
      ? `bytes as the connection ended before all ${this.raw} arrived`
      : "line as the connection ended in the middle of it";
    return new FramingError(
      `Cannot receive ${what}: current value is ${pending.length} bytes`,
      { partial: pending },
    );
  }

  #tooLong(): FramingError {
    return new FramingError(
      `Cannot receive line as it is longer than maxLineLength (${this.max} bytes): current value is at least ${
        this.max + 1
      } bytes`,
    );
  }
}

/**
 * A protocol that splits the byte stream into lines ending with a delimiter
 * (`"\n"` by default, any bytes allowed) and hands each to
 * `handler.lineReceived`, without the delimiter; {@linkcode sendLine} writes
 * one. Twisted's `LineReceiver` is the model, including a raw mode
 * ({@linkcode expectBytes}) for length-prefixed payloads inside a line
 * protocol (Redis, memcached).
 *
 * It is a {@linkcode BufferedProtocol}: the transport reads straight into
 * its receive buffer, and each line is a view of that buffer (no copy). A
 * line longer than `maxLineLength` is never buffered: the transport is
 * closed and `connectionLost` gets a {@linkcode FramingError}. The same
 * happens when the connection ends in the middle of a line (the error's
 * `partial` holds it). `eofReceived` is only called between lines.
 *
 * Once the transport is closing (for instance a handler called `close()`),
 * no further line is delivered, as Twisted does.
 *
 * Pausing and resuming delivery, {@linkcode FramedProtocol.feed} and the
 * transport callbacks come from its base class, {@linkcode FramedProtocol}.
 *
 * @example A line echo server and a client
 * ```ts
 * import { createConnection, createServer, LineProtocol } from "@denio/protocols";
 * import { assertEquals } from "@std/assert";
 *
 * await using server = await createServer(() =>
 *   new LineProtocol({
 *     lineReceived(line, lines) {
 *       lines.sendLine(new TextDecoder().decode(line).toUpperCase());
 *     },
 *   }), { hostname: "127.0.0.1", port: 0 });
 * const { port } = server.addrs[0] as Deno.NetAddr;
 *
 * const got: string[] = [];
 * const lost = Promise.withResolvers<Error | null>();
 * await createConnection(() =>
 *   new LineProtocol({
 *     connectionMade(lines) {
 *       lines.sendLine("hello");
 *       lines.sendLine("world");
 *     },
 *     lineReceived(line, lines) {
 *       got.push(new TextDecoder().decode(line));
 *       if (got.length === 2) lines.transport!.close();
 *     },
 *     connectionLost: lost.resolve,
 *   }), { port });
 * assertEquals(await lost.promise, null);
 * assertEquals(got, ["HELLO", "WORLD"]);
 * ```
 */
export class LineProtocol extends FramedProtocol implements BufferedProtocol {
  #decoder: LineDecoder;
  #writeTransport: WriteTransport | null;

  /**
   * Makes a line protocol that calls `handler`.
   *
   * @param handler The callbacks, e.g. `{ lineReceived(line, lines) {…} }`.
   * @param options The delimiter and the maximum line length.
   * @throws {TypeError} If `handler` is not an object or an option has the wrong type.
   * @throws {RangeError} If the delimiter is empty or `maxLineLength` is not a positive integer.
   */
  constructor(handler: LineHandler = {}, options: LineProtocolOptions = {}) {
    checkHandler(handler, ACTION);
    const delimiter = options.delimiter === undefined
      ? new Uint8Array([0x0a])
      : toBytes(options.delimiter, ACTION).slice();
    if (delimiter.length === 0) {
      throw new RangeError(
        `Cannot ${ACTION} as delimiter is empty: current value is 0 bytes`,
      );
    }
    const max = options.maxLineLength === undefined
      ? 65536
      : checkLimit(options.maxLineLength, "maxLineLength", ACTION);
    const decoder = new LineDecoder(delimiter, max);
    const writeTransport = checkWriteTransport(options.writeTransport, ACTION);
    super(handler, decoder, (message) => {
      return decoder.lastRaw
        ? handler.bytesReceived?.(message, this)
        : handler.lineReceived?.(message, this);
    });
    this.#decoder = decoder;
    this.#writeTransport = writeTransport;
  }

  /** The delimiter (a copy). */
  get delimiter(): Uint8Array {
    return this.#decoder.delimiter.slice();
  }

  /** The maximum line length in bytes. */
  get maxLineLength(): number {
    return this.#decoder.max;
  }

  /**
   * Writes `line` followed by the delimiter (a string is UTF-8 encoded).
   * `line` should not contain the delimiter: the peer would see two lines.
   * After the connection is lost the line is dropped, as the transport drops
   * writes.
   *
   * @param line The line, without delimiter.
   * @throws {TypeError} If `line` is not a Uint8Array or string.
   * @throws {Error} If the protocol is not connected yet, or `writeEof()` was called.
   */
  sendLine(line: Uint8Array | string): void {
    const bytes = toBytes(line, "send line");
    writeChunks(
      this.#writeTransport ?? this.transport,
      [bytes, this.#decoder.delimiter],
      "send line",
    );
  }

  /**
   * Switches to raw mode for one message: the next `n` bytes, delimiters
   * included, go to `handler.bytesReceived` as one view, then line mode
   * resumes (Twisted's `setRawMode` with a byte count). Call it from
   * `lineReceived` for a payload whose length the line announced. `n` is
   * not checked against `maxLineLength`: check it against your own limit
   * first, since up to `n` bytes are buffered.
   *
   * @param n How many bytes make the next message (0 delivers an empty one).
   * @throws {TypeError} If `n` is not a number.
   * @throws {RangeError} If `n` is not a non-negative safe integer.
   */
  expectBytes(n: number): void {
    if (typeof n !== "number") {
      throw new TypeError(
        `Cannot expect bytes as n is not a number: current value is ${
          describeValue(n)
        }`,
      );
    }
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new RangeError(
        `Cannot expect bytes as n is not a non-negative integer: current value is ${n}`,
      );
    }
    this.#decoder.raw = n;
  }
}

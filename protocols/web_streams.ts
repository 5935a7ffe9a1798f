// Copyright 2026 the denio authors. MIT license.
/**
 * Web Streams over stream transports: a `ReadableStream<Uint8Array>` (a byte
 * stream, BYOB readers welcome) and a `WritableStream<Uint8Array>` for a
 * connection, with backpressure both ways. Use
 * {@linkcode WebStreamProtocol} as the protocol of `createConnection` or
 * `createServer`, or {@linkcode toWebStreams} on a transport you already
 * have.
 *
 * @example Pipe a connection through TextDecoderStream
 * ```ts
 * import { createConnection, createServer, WebStreamProtocol } from "@denio/protocols";
 * import { assertEquals } from "@std/assert";
 *
 * await using server = await createServer(() => ({
 *   connectionMade(transport) {
 *     transport.write(new TextEncoder().encode("h\u00e9llo"));
 *     transport.close();
 *   },
 * }), { hostname: "127.0.0.1", port: 0 });
 * const { port } = server.addrs[0] as Deno.NetAddr;
 *
 * const [, { readable }] = await createConnection(
 *   () => new WebStreamProtocol(),
 *   { port },
 * );
 * let text = "";
 * for await (const part of readable.pipeThrough(new TextDecoderStream())) {
 *   text += part;
 * }
 * assertEquals(text, "h\u00e9llo");
 * ```
 *
 * @module
 */

import type { BufferedProtocol, Transport } from "../mod.ts";
import { describe } from "./_describe.ts";

/** Options of {@linkcode WebStreamProtocol} and {@linkcode toWebStreams}. */
export interface WebStreamOptions {
  /**
   * Bytes the readable side queues ahead of its reader. Once the queue holds
   * this much, reading from the transport pauses until the reader catches
   * up. 0 reads only when a read is pending.
   *
   * @default {65536}
   */
  readableHighWaterMark?: number;
}

/**
 * A connection as a pair of web streams; fits `ReadableStream.pipeThrough()`.
 * The readable's chunks are typed `Uint8Array<ArrayBuffer>` (never shared
 * memory), so it pipes into `DecompressionStream` and friends, whose
 * writable side takes a `BufferSource`.
 */
export interface WebStreamPair {
  /** The bytes received; closes at EOF, errors when the connection fails. */
  readonly readable: ReadableStream<Uint8Array<ArrayBuffer>>;
  /** The bytes to send; `close()` sends EOF, `abort()` aborts the transport. */
  readonly writable: WritableStream<Uint8Array>;
}

const DEFAULT_HIGH_WATER_MARK = 64 * 1024;
const INITIAL_READ_SIZE = 16 * 1024;
const MAX_READ_SIZE = 256 * 1024;

function checkSize(
  value: unknown,
  name: string,
  min: number,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot create web streams as ${name} is not a number: current value is ${
        describe(value)
      }`,
    );
  }
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(
      `Cannot create web streams as ${name} is not an integer of ${min} or more: current value is ${value}`,
    );
  }
  return value;
}

function connectionLostError(error: Error | null): Error {
  return error ?? new Deno.errors.ConnectionReset("Connection lost");
}

/** A byte view over the unfilled part of a BYOB request. */
function requestView(request: ReadableStreamBYOBRequest): Uint8Array | null {
  const view = request.view;
  if (view === null || view.byteLength === 0) return null;
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

type Side = "open" | "done";

let deliverCopy: (protocol: WebStreamProtocol, data: Uint8Array) => void;

/**
 * A {@linkcode BufferedProtocol} that exposes its connection as web streams:
 * `readable` (a byte stream) and `writable`. Both exist from construction,
 * so a protocol factory can start piping before the connection is made.
 *
 * Reading: the transport reads straight into a BYOB reader's view, or into
 * a fresh buffer that is handed to the stream as it is (its size adapts
 * from 16 KiB to 256 KiB as reads fill it; a small read is copied out so
 * the buffer is reused). Reading pauses on the transport while
 * `readableHighWaterMark` bytes are queued and no read is pending. EOF
 * closes the readable; `cancel()` stops reading (the transport is closed
 * once the writable is done too).
 *
 * Writing: each chunk is copied into the transport's buffer (so the caller
 * may reuse it once `write()` resolves, as the Streams standard lets it).
 * While the transport's buffer is over its high watermark (`pauseWriting`),
 * the pending `write()` does not resolve until `resumeWriting`. `close()`
 * calls `writeEof()` (or `close()` when the transport cannot half-close, or
 * once the readable is done); `abort()` calls `abort()` and errors the
 * readable with the reason.
 *
 * `connectionLost(error)` errors both streams with `error`; a clean
 * `connectionLost(null)` closes the readable and errors a writable that is
 * still open with `Deno.errors.ConnectionReset`. After EOF the write side
 * stays open (`eofReceived` returns true) until the writable is closed.
 *
 * @example An echo server and a client, all with web streams
 * ```ts
 * import { createConnection, createServer, WebStreamProtocol } from "@denio/protocols";
 * import { assertEquals } from "@std/assert";
 *
 * await using server = await createServer(() => {
 *   const protocol = new WebStreamProtocol();
 *   protocol.readable.pipeTo(protocol.writable).catch(() => {});
 *   return protocol;
 * }, { hostname: "127.0.0.1", port: 0 });
 * const { port } = server.addrs[0] as Deno.NetAddr;
 *
 * const [, client] = await createConnection(() => new WebStreamProtocol(), { port });
 * const writer = client.writable.getWriter();
 * await writer.write(new TextEncoder().encode("ping"));
 * await writer.close(); // sends EOF; the server echoes, then closes
 * assertEquals(await new Response(client.readable).text(), "ping");
 * ```
 */
export class WebStreamProtocol implements BufferedProtocol, WebStreamPair {
  /** The bytes received; closes at EOF, errors when the connection fails. */
  readonly readable: ReadableStream<Uint8Array<ArrayBuffer>>;
  /** The bytes to send; `close()` sends EOF, `abort()` aborts the transport. */
  readonly writable: WritableStream<Uint8Array>;

  #transport: Transport | null = null;
  #connected = Promise.withResolvers<void>();
  #reads!: ReadableByteStreamController;
  #writes!: WritableStreamDefaultController;
  #readSide: Side = "open";
  #writeSide: Side = "open";
  #readSize = INITIAL_READ_SIZE;
  // What the last getBuffer() handed out: a pending read's request, or a
  // buffer of our own for reading ahead.
  #lent: ReadableStreamBYOBRequest | Uint8Array | null = null;
  #spare: Uint8Array | null = null;
  #writePaused = false;
  #drain: PromiseWithResolvers<void> | null = null;
  #lost = false;
  #lostError: Error | null = null;

  static {
    deliverCopy = (protocol, data) => protocol.#deliverCopy(data);
  }

  /**
   * Makes the protocol and its two streams.
   *
   * @param options Buffer sizes.
   * @throws {TypeError} If an option is not a number.
   * @throws {RangeError} If an option is out of range.
   */
  constructor(options: WebStreamOptions = {}) {
    if (options === null || typeof options !== "object") {
      throw new TypeError(
        `Cannot create web streams as options is not an object: current value is ${
          describe(options)
        }`,
      );
    }
    const highWaterMark = checkSize(
      options.readableHighWaterMark,
      "readableHighWaterMark",
      0,
      DEFAULT_HIGH_WATER_MARK,
    );
    const connected = this.#connected.promise;
    this.readable = new ReadableStream({
      type: "bytes",
      start: (controller) => {
        this.#reads = controller;
        return connected;
      },
      pull: () => this.#pull(),
      cancel: () => this.#cancel(),
    }, { highWaterMark });
    this.writable = new WritableStream<Uint8Array>({
      start: (controller) => {
        this.#writes = controller;
        return connected;
      },
      write: (chunk) => this.#write(chunk),
      close: () => this.#close(),
      abort: (reason) => this.#abort(reason),
    });
  }

  /** The transport, once the connection is made; `null` before. */
  get transport(): Transport | null {
    return this.#transport;
  }

  /**
   * Attaches the streams to `transport`.
   *
   * @param transport The connection's transport.
   */
  connectionMade(transport: Transport): void {
    this.#transport = transport;
    if (this.#readSide === "done" || !this.#wantsData()) {
      transport.pauseReading();
    }
    this.#connected.resolve();
  }

  /**
   * Returns the buffer the next read lands in: the pending read's own buffer
   * when there is one, else a buffer for reading ahead.
   *
   * @param sizeHint The size the transport would read.
   * @returns The buffer.
   */
  getBuffer(sizeHint: number): Uint8Array {
    if (this.#readSide === "open") {
      const request = this.#reads.byobRequest;
      const view = request === null ? null : requestView(request);
      if (view !== null) {
        this.#lent = request;
        return view;
      }
    }
    let own = this.#spare;
    this.#spare = null;
    const size = Math.max(sizeHint, this.#readSize);
    if (own === null || own.length < size) own = new Uint8Array(size);
    this.#lent = own;
    return own;
  }

  /**
   * Hands the bytes just read to the readable.
   *
   * @param nbytes How many bytes were read into the last buffer.
   */
  bufferUpdated(nbytes: number): void {
    const lent = this.#lent;
    this.#lent = null;
    if (lent === null || this.#readSide !== "open") return;
    if (lent instanceof Uint8Array) {
      if (nbytes === lent.length && this.#readSize < MAX_READ_SIZE) {
        this.#readSize *= 2;
      }
      if (nbytes * 2 <= lent.length) {
        // Mostly empty: copy out and keep the buffer for the next read.
        this.#reads.enqueue(lent.slice(0, nbytes));
        this.#spare = lent;
      } else {
        // Enqueuing transfers the buffer to the stream: no copy.
        this.#reads.enqueue(lent.subarray(0, nbytes));
      }
    } else {
      lent.respond(nbytes);
    }
    this.#afterDelivery();
  }

  /**
   * Closes the readable.
   *
   * @returns `true` (keep the write side open) while the writable is open.
   */
  eofReceived(): boolean {
    this.#lent = null;
    if (this.#readSide === "open") {
      this.#readSide = "done";
      this.#reads.close();
      this.#reads.byobRequest?.respond(0);
    }
    return this.#writeSide === "open";
  }

  /**
   * Ends both streams: errors them with `error`, or on a clean close closes
   * the readable and errors a still-open writable.
   *
   * @param error The error, or `null` for a clean close.
   */
  connectionLost(error: Error | null): void {
    this.#lost = true;
    this.#lostError = error;
    this.#lent = null;
    if (this.#readSide === "open") {
      this.#readSide = "done";
      if (error !== null) {
        this.#reads.error(error);
      } else {
        this.#reads.close();
        this.#reads.byobRequest?.respond(0);
      }
    }
    if (this.#writeSide === "open") {
      this.#writeSide = "done";
      this.#writes.error(connectionLostError(error));
    }
    this.#drain?.reject(connectionLostError(error));
    this.#drain = null;
  }

  /** Holds the pending `write()` until `resumeWriting()`. */
  pauseWriting(): void {
    this.#writePaused = true;
  }

  /** Lets the pending `write()` resolve. */
  resumeWriting(): void {
    this.#writePaused = false;
    this.#drain?.resolve();
    this.#drain = null;
  }

  // ---------------------------------------------------------------- internals

  /** Whether a read is pending or the queue is below its high-water mark. */
  #wantsData(): boolean {
    const desired = this.#reads.desiredSize;
    return (desired !== null && desired > 0) ||
      this.#reads.byobRequest !== null;
  }

  #afterDelivery(): void {
    if (!this.#wantsData()) this.#transport?.pauseReading();
  }

  /** Delivery for a transport that hands over its own bytes (dataReceived). */
  #deliverCopy(data: Uint8Array): void {
    if (this.#readSide !== "open") return;
    const request = this.#reads.byobRequest;
    const view = request === null ? null : requestView(request);
    if (view !== null) {
      const n = Math.min(view.length, data.length);
      view.set(data.subarray(0, n));
      request!.respond(n);
      if (n < data.length) this.#reads.enqueue(data.slice(n));
    } else {
      this.#reads.enqueue(data.slice());
    }
    this.#afterDelivery();
  }

  #pull(): void {
    if (this.#readSide === "open") this.#transport?.resumeReading();
  }

  #cancel(): void {
    this.#readSide = "done";
    this.#lent = null;
    const transport = this.#transport;
    if (transport === null) return;
    if (this.#writeSide === "done") transport.close();
    else transport.pauseReading();
  }

  #write(chunk: Uint8Array): Promise<void> | void {
    if (!(chunk instanceof Uint8Array)) {
      throw new TypeError(
        `Cannot write to stream as chunk is not a Uint8Array: current value is ${
          describe(chunk)
        }`,
      );
    }
    const transport = this.#transport!;
    if (this.#lost) throw connectionLostError(this.#lostError);
    if (transport.isClosing()) {
      throw new Error("Cannot write to stream as the transport is closing");
    }
    if (chunk.length === 0) return;
    transport.write(chunk.slice());
    if (this.#writePaused) {
      this.#drain = Promise.withResolvers<void>();
      return this.#drain.promise;
    }
  }

  #close(): void {
    this.#writeSide = "done";
    const transport = this.#transport!;
    if (this.#readSide === "done" || !transport.canWriteEof()) {
      transport.close();
    } else {
      transport.writeEof();
    }
  }

  #abort(reason: unknown): void {
    this.#writeSide = "done";
    this.#drain = null;
    if (this.#readSide === "open") {
      this.#readSide = "done";
      this.#lent = null;
      this.#reads.error(
        reason instanceof Error ? reason : new Error(
          "Cannot read from stream as the writable side was aborted",
          { cause: reason },
        ),
      );
    }
    this.#transport?.abort();
  }
}

/** The {@linkcode WebStreamProtocol} that {@linkcode toWebStreams} installs. */
class AdoptingWebStreamProtocol extends WebStreamProtocol {
  // With dataReceived it is a plain Protocol to the transport: a read that
  // was already in flight for the previous protocol lands in the
  // transport's own buffer, and is copied from there.
  dataReceived(data: Uint8Array): void {
    deliverCopy(this, data);
  }
}

/**
 * Turns a stream transport you already have into web streams: installs a
 * {@linkcode WebStreamProtocol} with `setProtocol()` and attaches it at once.
 * Bytes the transport reads from now on go to `readable` (copied once from
 * the transport's buffer; for zero-copy reads, pass a `WebStreamProtocol` to
 * `createConnection`/`createServer` instead).
 *
 * The previous protocol gets no more callbacks. Hand over a transport whose
 * protocol is a plain `Protocol` (not a `BufferedProtocol`), as one from
 * `createConnection(() => ({}), …)`.
 *
 * @param transport An open stream transport.
 * @param options Buffer sizes.
 * @returns The readable and writable of the connection.
 * @throws {TypeError} If `transport` is not a stream transport or an option
 * has the wrong type.
 * @throws {RangeError} If an option is out of range.
 * @throws {Error} If the transport is already closing.
 *
 * @example Read the greeting of a server with a BYOB reader
 * ```ts
 * import { createConnection, createServer, toWebStreams } from "@denio/protocols";
 * import { assertEquals } from "@std/assert";
 *
 * await using server = await createServer(() => ({
 *   connectionMade(transport) {
 *     transport.write(new TextEncoder().encode("hi"));
 *     transport.close();
 *   },
 * }), { hostname: "127.0.0.1", port: 0 });
 * const { port } = server.addrs[0] as Deno.NetAddr;
 *
 * const [transport] = await createConnection(() => ({}), { port });
 * const { readable, writable } = toWebStreams(transport);
 * const reader = readable.getReader({ mode: "byob" });
 * let buffer = new Uint8Array(16);
 * let received = 0;
 * for (;;) {
 *   // Each read transfers the buffer: continue with the one it returns.
 *   const { value, done } = await reader.read(buffer.subarray(received));
 *   buffer = new Uint8Array(value!.buffer);
 *   if (done) break;
 *   received += value.length;
 * }
 * assertEquals(new TextDecoder().decode(buffer.subarray(0, received)), "hi");
 * await writable.close();
 * ```
 */
export function toWebStreams(
  transport: Transport,
  options: WebStreamOptions = {},
): WebStreamPair {
  if (
    transport === null || typeof transport !== "object" ||
    typeof transport.setProtocol !== "function" ||
    typeof transport.write !== "function" ||
    typeof transport.pauseReading !== "function"
  ) {
    throw new TypeError(
      `Cannot make web streams as transport is not a stream transport: current value is ${
        describe(transport)
      }`,
    );
  }
  const protocol = new AdoptingWebStreamProtocol(options);
  if (transport.isClosing()) {
    throw new Error("Cannot make web streams as the transport is closing");
  }
  transport.setProtocol(protocol);
  protocol.connectionMade(transport);
  return { readable: protocol.readable, writable: protocol.writable };
}

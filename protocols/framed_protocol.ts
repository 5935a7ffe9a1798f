// Copyright 2026 the denio authors. MIT license.
/**
 * {@linkcode FramedProtocol}: what every framing protocol
 * ({@linkcode LineProtocol}, {@linkcode LengthPrefixedProtocol},
 * {@linkcode ContentLengthProtocol}) shares: the receive buffer the transport
 * reads into, the delivery of whole messages, pause/resume, `feed` and the
 * transport callbacks.
 *
 * @module
 */

// Slab rule: bytes below `#end` are never written again. The transport reads
// at `#end`; when the space left is too small a new slab is allocated and only
// the incomplete message (the pending bytes) is copied over. So every view
// handed to the user stays valid for as long as the user keeps it.

import type { BufferedProtocol, Transport } from "../mod.ts";
import { callExceptionHandler } from "../transports/exception_handler.ts";
import { reportBuffered } from "../transports/stream_transport.ts";
import {
  checkBytes,
  type Decoder,
  FramingError,
  type FramingHandler,
  type Scan,
} from "./_framing.ts";

type State = "active" | "failed" | "lost";

/** The smallest slab worth allocating. */
const SLAB_SIZE = 64 * 1024;
/** The most allocated ahead of arrived bytes for a message of known size. */
const EAGER_LIMIT = 1024 * 1024;
/** The smallest read worth asking for. */
const MIN_READ = 1024;
const EMPTY = new Uint8Array(0);

/**
 * The base of the framing protocols {@linkcode LineProtocol},
 * {@linkcode LengthPrefixedProtocol} and {@linkcode ContentLengthProtocol}:
 * the part that does not depend on the wire format. Each of them splits the
 * byte stream into messages (lines, frames, bodies) and hands each to its
 * handler; this class holds the receive buffer, pauses and resumes delivery,
 * parses bytes given to {@linkcode FramedProtocol.feed}, and implements the
 * {@linkcode BufferedProtocol} callbacks the transport calls.
 *
 * It is a {@linkcode BufferedProtocol}: the transport reads straight into
 * its receive buffer, and each message is a view of that buffer that is
 * never overwritten (no copy). When the peer breaks the framing (a message
 * over the limit, a malformed header, EOF in the middle of a message) the
 * transport is closed, nothing more is buffered and the handler's
 * `connectionLost` gets a {@linkcode FramingError}. A handler callback that
 * throws, or returns a promise that rejects, is fatal for the transport: the
 * exception handler is told, the transport is aborted and `connectionLost`
 * gets the error. Once the transport is closing, no further message is
 * delivered.
 *
 * Use it as a type, for code that works with any framing protocol; make
 * instances with the subclasses (its constructor is internal).
 *
 * @example Hold messages while busy, with any framing protocol
 * ```ts
 * import {
 *   FramedProtocol,
 *   LengthPrefixedProtocol,
 *   LineProtocol,
 * } from "@denio/protocols";
 * import { assert, assertEquals } from "@std/assert";
 *
 * // Parses bytes that came some other way (e.g. from a subprocess pipe)
 * // while delivery is paused, and reports what is held.
 * function feedPaused(framer: FramedProtocol, data: Uint8Array): number {
 *   framer.pauseReading();
 *   framer.feed(data);
 *   return framer.pendingSize;
 * }
 *
 * const got: string[] = [];
 * const lines = new LineProtocol({
 *   lineReceived: (line) => got.push(new TextDecoder().decode(line)),
 * });
 * assert(lines instanceof FramedProtocol);
 * assertEquals(feedPaused(lines, new TextEncoder().encode("one\ntwo\n")), 8);
 * assertEquals(got, []);
 * lines.resumeReading(); // Delivers the held lines from a queued microtask.
 * await Promise.resolve();
 * assertEquals(got, ["one", "two"]);
 *
 * const frames = new LengthPrefixedProtocol({}, { headerSize: 1 });
 * assertEquals(feedPaused(frames, new Uint8Array([3, 1, 2])), 3);
 * ```
 */
export abstract class FramedProtocol implements BufferedProtocol {
  #handler: FramingHandler<FramedProtocol>;
  #decoder: Decoder;
  #deliver: (message: Uint8Array) => unknown;
  #scan: Scan = { start: 0, end: 0, next: 0, need: 0 };
  #transport: Transport | null = null;
  #state: State = "active";
  #error: Error | null = null;
  #slab: Uint8Array = EMPTY;
  #start = 0;
  #end = 0;
  #paused = false;
  #eofHeld = false;
  #processing = false;

  /**
   * Makes the receive side of a framing protocol (for the subclasses).
   *
   * @param handler The lifecycle callbacks, called with this protocol.
   * @param decoder Finds the message boundaries.
   * @param deliver Hands one message to the handler.
   * @ignore
   */
  constructor(
    handler: FramingHandler<FramedProtocol>,
    decoder: Decoder,
    deliver: (message: Uint8Array) => unknown,
  ) {
    this.#handler = handler;
    this.#decoder = decoder;
    this.#deliver = deliver;
  }

  /** The transport, once `connectionMade` was called; `null` before. */
  get transport(): Transport | null {
    return this.#transport;
  }

  /**
   * Bytes received and not yet delivered: an incomplete message, or messages
   * held while paused.
   */
  get pendingSize(): number {
    return this.#end - this.#start;
  }

  /**
   * Stops delivering messages, including those already received, and pauses
   * the transport's reading, until {@linkcode FramedProtocol.resumeReading}.
   * Use these rather than the transport's own, which cannot hold messages
   * already in the buffer.
   */
  pauseReading(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#transport?.pauseReading();
  }

  /** Delivers the held messages from a queued microtask, then resumes the transport. */
  resumeReading(): void {
    if (!this.#paused) return;
    this.#paused = false;
    // Messages held while paused are delivered from a queued microtask, as
    // every protocol callback is; a throw there is fatal for the transport.
    queueMicrotask(() => {
      if (this.#paused || this.#state !== "active") return;
      try {
        this.#process();
        if (this.#paused || this.#state !== "active") return;
        if (this.#eofHeld) {
          this.#eofHeld = false;
          if (!this.#eof()) this.#transport?.close();
          return;
        }
      } catch (error) {
        this.#callbackFailed(error);
        return;
      }
      this.#transport?.resumeReading();
    });
  }

  /**
   * Parses `data` as if the transport had read it (one copy into the receive
   * buffer, as asyncio's `_feed_data_to_buffered_proto`). For bytes that come
   * some other way, e.g. a subprocess protocol's `pipeDataReceived`. Without
   * a transport, a {@linkcode FramingError} is thrown to the caller instead of
   * closing the transport; after it (or after `connectionLost`) input is ignored.
   *
   * @param data The bytes.
   * @throws {TypeError} If `data` is not a Uint8Array.
   * @throws {FramingError} If the bytes break the framing and there is no transport.
   */
  feed(data: Uint8Array): void {
    checkBytes(data, "feed data");
    let offset = 0;
    while (offset < data.length && this.#state === "active") {
      const target = this.#getBuffer(data.length - offset);
      const n = Math.min(target.length, data.length - offset);
      target.set(data.subarray(offset, offset + n));
      offset += n;
      this.#bufferUpdated(n);
    }
  }

  /**
   * Transport callback: stores the transport and calls `handler.connectionMade`.
   *
   * @param transport The transport.
   */
  connectionMade(transport: Transport): void {
    this.#transport = transport;
    if (this.#paused) transport.pauseReading();
    this.#handler.connectionMade?.(this);
  }

  /**
   * Transport callback: the buffer the next read lands in.
   *
   * @param sizeHint The size the transport would read.
   * @returns A non-empty view at the end of the receive buffer.
   */
  getBuffer(sizeHint: number): Uint8Array {
    return this.#getBuffer(sizeHint);
  }

  /**
   * Transport callback: `nbytes` arrived; complete messages are delivered.
   *
   * @param nbytes The count read into the last buffer.
   */
  bufferUpdated(nbytes: number): void {
    this.#bufferUpdated(nbytes);
  }

  /**
   * Transport callback: EOF. Between messages it calls
   * `handler.eofReceived`; in the middle of one it closes with a
   * {@linkcode FramingError}.
   *
   * @returns What `handler.eofReceived` returned.
   */
  eofReceived(): boolean | void {
    if (this.#state !== "active") return;
    if (this.#paused) {
      // Only reachable through feed mode: a transport holds EOF while paused.
      this.#eofHeld = true;
      return true;
    }
    return this.#eof();
  }

  /**
   * Transport callback: calls `handler.connectionLost` with the
   * {@linkcode FramingError} that closed the connection, if one did, else
   * with `error`.
   *
   * @param error The transport's error, or `null`.
   */
  connectionLost(error: Error | null): void {
    if (this.#state === "lost") return;
    const reported = this.#error ?? error;
    this.#state = "lost";
    this.#dropBuffer();
    this.#handler.connectionLost?.(reported, this);
  }

  /** Transport callback: forwards to `handler.pauseWriting`. */
  pauseWriting(): void {
    this.#handler.pauseWriting?.(this);
  }

  /** Transport callback: forwards to `handler.resumeWriting`. */
  resumeWriting(): void {
    this.#handler.resumeWriting?.(this);
  }

  #getBuffer(sizeHint: number): Uint8Array {
    if (this.#state !== "active") return new Uint8Array(MIN_READ);
    const hint = Math.max(sizeHint, MIN_READ);
    const slab = this.#slab;
    const free = slab.length - this.#end;
    const pending = this.#end - this.#start;
    const need = this.#scan.need;
    const missing = need > pending ? need - pending : 0;
    // A tail smaller than the hint is only worth it when it holds the rest
    // of a message too big to copy cheaply.
    if (free >= hint || (missing > 0 && free >= missing && pending >= hint)) {
      return slab.subarray(this.#end);
    }
    // A new slab: room for the rest of the message when its size is known,
    // but never more than double what has arrived (or EAGER_LIMIT) at once,
    // so a header announcing a huge message costs nothing until its bytes
    // come; with the size unknown, double. Either way a long message that
    // arrives in small pieces is copied O(n) times in all.
    const eager = Math.min(missing, Math.max(pending, EAGER_LIMIT));
    let size = pending + Math.max(hint, eager);
    if (need === 0) size = Math.max(size, 2 * pending + hint);
    const next = new Uint8Array(Math.max(size, SLAB_SIZE));
    next.set(slab.subarray(this.#start, this.#end));
    this.#slab = next;
    this.#start = 0;
    this.#end = pending;
    return next.subarray(pending);
  }

  #bufferUpdated(nbytes: number): void {
    if (this.#state !== "active") return;
    this.#end += nbytes;
    this.#process();
  }

  #eof(): boolean | void {
    if (this.#end > this.#start) {
      this.#fail(
        this.#decoder.incomplete(
          this.#slab.subarray(this.#start, this.#end),
        ),
      );
      return;
    }
    return this.#handler.eofReceived?.(this);
  }

  #process(): void {
    if (this.#processing) return; // A nested feed(): the outer loop goes on.
    this.#processing = true;
    try {
      const scan = this.#scan;
      while (
        this.#state === "active" && !this.#paused &&
        !(this.#transport?.isClosing() ?? false)
      ) {
        const pending = this.#slab.subarray(this.#start, this.#end);
        let complete: boolean;
        try {
          complete = this.#decoder.decode(pending, scan);
        } catch (error) {
          if (!(error instanceof FramingError)) throw error;
          this.#fail(error);
          return;
        }
        if (!complete) return;
        const message = pending.subarray(scan.start, scan.end);
        this.#start += scan.next;
        scan.need = 0;
        const result = this.#deliver(message);
        if (result instanceof Promise) {
          // An async handler: its rejection is fatal like a throw.
          result.catch((error) => this.#callbackFailed(error));
        }
      }
    } finally {
      this.#processing = false;
      this.#report();
    }
  }

  /** Tells the transport how many received bytes are held (its budget). */
  #report(): void {
    const transport = this.#transport as
      | { [reportBuffered]?: (bytes: number) => void }
      | null;
    transport?.[reportBuffered]?.(this.#end - this.#start);
  }

  /** The peer broke the framing: stop buffering, close, report `error`. */
  #fail(error: FramingError): void {
    if (this.#state !== "active") return;
    this.#state = "failed";
    this.#error = error;
    this.#dropBuffer();
    const transport = this.#transport;
    if (transport === null) throw error;
    transport.close();
  }

  #callbackFailed(error: unknown): void {
    const transport = this.#transport;
    if (transport === null) {
      callExceptionHandler({
        message: "Fatal error: protocol handler call failed",
        error,
      });
      return;
    }
    callExceptionHandler({
      message: "Fatal error: protocol handler call failed",
      error,
      transport,
      protocol: this,
    });
    this.#error ??= error instanceof Error
      ? error
      : new Error(`A non-Error value was thrown: ${String(error)}`, {
        cause: error,
      });
    transport.abort();
  }

  #dropBuffer(): void {
    this.#slab = EMPTY;
    this.#start = 0;
    this.#end = 0;
    this.#report();
  }
}

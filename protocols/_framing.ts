// Copyright 2026 the denio authors. MIT license.
// The receive side every framing protocol shares: one growing receive slab
// that the transport reads straight into (BufferedProtocol), a decoder that
// finds message boundaries in the pending bytes, delivery of each message as
// a view of the slab (zero-copy), the hard memory bound, EOF in the middle of
// a message, pause/resume and the lifecycle forwarding to the user's handler.
//
// Slab rule: bytes below `#end` are never written again. The transport reads
// at `#end`; when the space left is too small a new slab is allocated and only
// the incomplete message (the pending bytes) is copied over. So every view
// handed to the user stays valid for as long as the user keeps it.

import type { Transport, WriteTransport } from "../mod.ts";
import { callExceptionHandler } from "../transports/exception_handler.ts";

/** Options of the {@linkcode FramingError} constructor. */
export interface FramingErrorOptions {
  /**
   * The bytes of the incomplete message when the connection ended in the
   * middle of one.
   * @default {an empty Uint8Array}
   */
  partial?: Uint8Array;
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * The error a framing protocol ({@linkcode LineProtocol},
 * {@linkcode LengthPrefixedProtocol}, {@linkcode ContentLengthProtocol})
 * passes to its handler's `connectionLost` when the peer breaks the framing:
 * a message longer than the configured limit, a malformed header, or the
 * connection ending in the middle of a message (then `partial` holds the
 * bytes received of that message, like asyncio's `IncompleteReadError`).
 *
 * The protocol closes the transport itself (buffered writes are flushed
 * first) and stops buffering at once, so a peer cannot make it hold more
 * than the limit.
 *
 * @example Tell a framing failure from a lost connection
 * ```ts
 * import { FramingError } from "@denio/protocols";
 * import { assert } from "@std/assert";
 *
 * function describeLoss(error: Error | null): string {
 *   if (error === null) return "closed";
 *   if (error instanceof FramingError) return `bad input: ${error.message}`;
 *   return `lost: ${error.message}`;
 * }
 * const error = new FramingError("Cannot receive line as it is too long");
 * assert(describeLoss(error).startsWith("bad input"));
 * assert(error.name === "FramingError" && error.partial.length === 0);
 * ```
 */
export class FramingError extends Error {
  /** Always `"FramingError"`. */
  override name = "FramingError";
  /** The bytes of the incomplete message at EOF; empty for other failures. */
  readonly partial: Uint8Array;

  /**
   * Makes a framing error.
   *
   * @param message What went wrong, in the "Cannot X as Y: current value is Z" form.
   * @param options The partial message and the cause.
   */
  constructor(message: string, options: FramingErrorOptions = {}) {
    super(
      message,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.partial = options.partial ?? new Uint8Array(0);
  }
}

/** Where a decoder found the next message, offsets into the pending bytes. */
export interface Scan {
  /** First byte of the message (after any header). */
  start: number;
  /** End of the message (before any trailer). */
  end: number;
  /** Bytes the message takes with its header and trailer. */
  next: number;
  /** When incomplete: the pending bytes the message needs in total, 0 if unknown. */
  need: number;
}

/** Finds message boundaries. Implemented once per wire format. */
export interface Decoder {
  /**
   * Looks for a complete message at the start of `pending`. Returns true and
   * fills `scan` when one is there; returns false (setting `scan.need`) when
   * more bytes are needed.
   *
   * @throws {FramingError} If the bytes break the format or a limit.
   */
  decode(pending: Uint8Array, scan: Scan): boolean;
  /** The error for a connection that ended with `pending` incomplete. */
  incomplete(pending: Uint8Array): FramingError;
}

/** The lifecycle callbacks every framing handler may have. */
export interface FramingHandler<F> {
  connectionMade?(framer: F): void;
  eofReceived?(framer: F): boolean | void;
  connectionLost?(error: Error | null, framer: F): void;
  pauseWriting?(framer: F): void;
  resumeWriting?(framer: F): void;
}

type CoreState = "active" | "failed" | "lost";

/** The smallest slab worth allocating. */
const SLAB_SIZE = 64 * 1024;
/** The most allocated ahead of arrived bytes for a message of known size. */
const EAGER_LIMIT = 1024 * 1024;
/** The smallest read worth asking for. */
const MIN_READ = 1024;
const EMPTY = new Uint8Array(0);

/** Throws a TypeError unless `value` is a positive safe integer. */
export function checkLimit(
  value: unknown,
  name: string,
  action: string,
): number {
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot ${action} as ${name} is not a number: current value is ${
        describeValue(value)
      }`,
    );
  }
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(
      `Cannot ${action} as ${name} is not a positive integer: current value is ${value}`,
    );
  }
  return value;
}

/** A short description of a value for error messages. */
export function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "function") return "a function";
  if (typeof value === "object") {
    const name = (value as { constructor?: { name?: string } }).constructor
      ?.name;
    return name && name !== "Object" ? `a ${name}` : "an object";
  }
  return String(value);
}

const encoder = new TextEncoder();

/** Checks the `writeTransport` option: undefined, or a transport that writes. */
export function checkWriteTransport(
  value: unknown,
  action: string,
): WriteTransport | null {
  if (value === undefined) return null;
  if (
    value === null || typeof value !== "object" ||
    typeof (value as WriteTransport).writelines !== "function"
  ) {
    throw new TypeError(
      `Cannot ${action} as writeTransport is not a write transport: current value is ${
        describeValue(value)
      }`,
    );
  }
  return value as WriteTransport;
}

/** Throws a TypeError unless `data` is a Uint8Array. */
export function checkBytes(data: unknown, action: string): Uint8Array {
  if (data instanceof Uint8Array) return data;
  throw new TypeError(
    `Cannot ${action} as data is not a Uint8Array: current value is ${
      describeValue(data)
    }`,
  );
}

/** `data` as bytes: strings are UTF-8 encoded; anything else is a TypeError. */
export function toBytes(data: unknown, action: string): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (typeof data === "string") return encoder.encode(data);
  throw new TypeError(
    `Cannot ${action} as data is not a Uint8Array or string: current value is ${
      describeValue(data)
    }`,
  );
}

/**
 * The receive buffer, the decode loop and the lifecycle of one framing
 * protocol. The public framer owns one and forwards its BufferedProtocol
 * callbacks here.
 */
export class FramingCore<F extends object> {
  #owner: F;
  #handler: FramingHandler<F>;
  #decoder: Decoder;
  #deliver: (message: Uint8Array) => unknown;
  #scan: Scan = { start: 0, end: 0, next: 0, need: 0 };
  #transport: Transport | null = null;
  #writeTransport: WriteTransport | null;
  #state: CoreState = "active";
  #error: Error | null = null;
  #slab: Uint8Array = EMPTY;
  #start = 0;
  #end = 0;
  #paused = false;
  #eofHeld = false;
  #processing = false;

  constructor(
    owner: F,
    handler: FramingHandler<F>,
    decoder: Decoder,
    deliver: (message: Uint8Array) => unknown,
    writeTransport: WriteTransport | null = null,
  ) {
    this.#writeTransport = writeTransport;
    this.#owner = owner;
    this.#handler = handler;
    this.#decoder = decoder;
    this.#deliver = deliver;
  }

  get transport(): Transport | null {
    return this.#transport;
  }

  /** Bytes received and not yet delivered (an incomplete message, or held while paused). */
  get pendingSize(): number {
    return this.#end - this.#start;
  }

  connectionMade(transport: Transport): void {
    this.#transport = transport;
    if (this.#paused) transport.pauseReading();
    this.#handler.connectionMade?.(this.#owner);
  }

  getBuffer(sizeHint: number): Uint8Array {
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

  bufferUpdated(nbytes: number): void {
    if (this.#state !== "active") return;
    this.#end += nbytes;
    this.#process();
  }

  feed(data: Uint8Array): void {
    let offset = 0;
    while (offset < data.length && this.#state === "active") {
      const target = this.getBuffer(data.length - offset);
      const n = Math.min(target.length, data.length - offset);
      target.set(data.subarray(offset, offset + n));
      offset += n;
      this.bufferUpdated(n);
    }
  }

  eofReceived(): boolean | void {
    if (this.#state !== "active") return;
    if (this.#paused) {
      // Only reachable through feed mode: a transport holds EOF while paused.
      this.#eofHeld = true;
      return true;
    }
    return this.#eof();
  }

  connectionLost(error: Error | null): void {
    if (this.#state === "lost") return;
    const reported = this.#error ?? error;
    this.#state = "lost";
    this.#dropBuffer();
    this.#handler.connectionLost?.(reported, this.#owner);
  }

  pauseWriting(): void {
    this.#handler.pauseWriting?.(this.#owner);
  }

  resumeWriting(): void {
    this.#handler.resumeWriting?.(this.#owner);
  }

  pauseReading(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#transport?.pauseReading();
  }

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

  isPaused(): boolean {
    return this.#paused;
  }

  /** Writes `chunks` to the write transport, or else the transport. */
  send(chunks: Uint8Array[], action: string): void {
    const transport = this.#writeTransport ?? this.#transport;
    if (transport === null) {
      throw new Error(
        `Cannot ${action} as the protocol is not connected: current value is no transport`,
      );
    }
    transport.writelines(chunks);
  }

  #eof(): boolean | void {
    if (this.#end > this.#start) {
      this.#fail(
        this.#decoder.incomplete(
          this.#slab.slice(this.#start, this.#end),
        ),
      );
      return;
    }
    return this.#handler.eofReceived?.(this.#owner);
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
    }
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
      protocol: this.#owner,
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
  }
}

/** The first index at or after `from` where `delimiter` starts in `data`,
 * or the negative of the earliest index where a prefix of it ends `data`
 * (minus one), so that `-(result + 1)` is where to scan from next time. */
export function findDelimiter(
  data: Uint8Array,
  delimiter: Uint8Array,
  from: number,
): number {
  const first = delimiter[0]!;
  const length = delimiter.length;
  let i = from;
  for (;;) {
    i = data.indexOf(first, i);
    if (i < 0) return -(data.length + 1);
    let j = 1;
    const limit = Math.min(length, data.length - i);
    while (j < limit && data[i + j] === delimiter[j]) j++;
    if (j === length) return i;
    if (j === data.length - i) return -(i + 1); // A prefix ends the data.
    i++;
  }
}

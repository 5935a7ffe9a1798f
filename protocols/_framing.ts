// Copyright 2026 the denio authors. MIT license.
// What the framing protocols share besides their base class
// (framed_protocol.ts): the error they report, the decoder interface each
// wire format implements, the handler shape, and the argument checks.

import type { WriteTransport } from "../mod.ts";

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
  /**
   * The bytes of the incomplete message at EOF; empty for other failures.
   * A framing protocol hands over a view of its receive buffer, not a copy
   * (copying a large pending body for every peer that leaves mid-message
   * stalled the event loop), so the buffer lives as long as the error is kept.
   */
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

/** Throws a TypeError unless `handler` is an object. */
export function checkHandler(handler: unknown, action: string): void {
  if (handler === null || typeof handler !== "object") {
    throw new TypeError(
      `Cannot ${action} as handler is not an object: current value is ${
        describeValue(handler)
      }`,
    );
  }
}

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

/**
 * Writes `chunks` to `transport` (the write transport, or else the transport
 * the protocol was connected to).
 *
 * @throws {Error} If there is no transport yet.
 */
export function writeChunks(
  transport: WriteTransport | null,
  chunks: Uint8Array[],
  action: string,
): void {
  if (transport === null) {
    throw new Error(
      `Cannot ${action} as the protocol is not connected: current value is no transport`,
    );
  }
  transport.writelines(chunks);
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

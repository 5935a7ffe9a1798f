// Copyright 2026 the denio authors. MIT license.
/**
 * {@linkcode LengthPrefixedProtocol}: frames with a big-endian length header
 * (1, 2 or 4 bytes), Twisted's `Int8StringReceiver` / `Int16StringReceiver`
 * / `Int32StringReceiver` for denio, with a hard limit on the frame size.
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
  FramingError,
  type Scan,
  toBytes,
  writeChunks,
} from "./_framing.ts";
import { FramedProtocol } from "./framed_protocol.ts";

export { FramingError, type FramingErrorOptions } from "./_framing.ts";

/**
 * What a {@linkcode LengthPrefixedProtocol} calls. Every callback is
 * optional and gets the protocol as its last argument.
 */
export interface LengthPrefixedHandler {
  /** The connection is made. */
  connectionMade?(framer: LengthPrefixedProtocol): void;
  /**
   * A whole frame arrived, without its header. `frame` is a view into the
   * receive buffer that is never overwritten: it is the handler's to keep.
   */
  frameReceived?(frame: Uint8Array, framer: LengthPrefixedProtocol): void;
  /**
   * The peer shut down its write side, between two frames. Return `true` to
   * keep our write side open. (EOF inside a frame is a
   * {@linkcode FramingError} instead.)
   */
  eofReceived?(framer: LengthPrefixedProtocol): boolean | void;
  /**
   * The connection is gone: `null` for a clean close, a
   * {@linkcode FramingError} when the peer broke the framing, or the
   * transport's error. Called exactly once.
   */
  connectionLost?(error: Error | null, framer: LengthPrefixedProtocol): void;
  /** The transport's write buffer went over its high watermark. */
  pauseWriting?(framer: LengthPrefixedProtocol): void;
  /** The transport's write buffer drained to its low watermark. */
  resumeWriting?(framer: LengthPrefixedProtocol): void;
}

/** Options of the {@linkcode LengthPrefixedProtocol} constructor. */
export interface LengthPrefixedProtocolOptions {
  /** Bytes of the unsigned big-endian length header: 1, 2 or 4. @default {4} */
  headerSize?: 1 | 2 | 4;
  /**
   * The largest frame accepted (and sent), header excluded. A larger length
   * header closes the transport at once (nothing of that frame is buffered)
   * and `connectionLost` gets a {@linkcode FramingError}.
   * @default {1048576 for a 4-byte header; 65535 and 255 for 2 and 1 bytes}
   */
  maxFrameSize?: number;
  /**
   * Where the send methods write, when it is not the transport that reads:
   * e.g. the stdout pipe of a server that reads stdin (`connectWritePipe`),
   * or a child's stdin (`getPipeTransport(0)`) while its stdout is fed
   * to {@linkcode LengthPrefixedProtocol.feed}.
   * @default {the transport given to connectionMade}
   */
  writeTransport?: WriteTransport;
}

const ACTION = "create length-prefixed protocol";

class LengthDecoder implements Decoder {
  readonly headerSize: number;
  readonly max: number;

  constructor(headerSize: number, max: number) {
    this.headerSize = headerSize;
    this.max = max;
  }

  decode(pending: Uint8Array, scan: Scan): boolean {
    const h = this.headerSize;
    if (pending.length < h) {
      scan.need = h;
      return false;
    }
    let length = 0;
    for (let i = 0; i < h; i++) length = length * 256 + pending[i]!;
    if (length > this.max) {
      throw new FramingError(
        `Cannot receive frame as its length is over maxFrameSize (${this.max} bytes): current value is ${length} bytes`,
      );
    }
    const total = h + length;
    if (pending.length < total) {
      scan.need = total;
      return false;
    }
    scan.start = h;
    scan.end = scan.next = total;
    return true;
  }

  incomplete(pending: Uint8Array): FramingError {
    return new FramingError(
      `Cannot receive frame as the connection ended in the middle of it: current value is ${pending.length} bytes`,
      { partial: pending },
    );
  }
}

/**
 * A protocol for frames that each start with their length as an unsigned
 * big-endian integer of 1, 2 or 4 bytes (`headerSize`). Each frame goes to
 * `handler.frameReceived` without its header; {@linkcode sendFrame} writes
 * one. Twisted's `Int32StringReceiver` is the model.
 *
 * It is a {@linkcode BufferedProtocol}: the transport reads straight into
 * its receive buffer, sized for the whole frame once the header is in, and
 * each frame is a view of that buffer (no copy). A length over
 * `maxFrameSize` closes the transport before any of the frame is buffered,
 * and `connectionLost` gets a {@linkcode FramingError}; so does a connection
 * that ends inside a frame (the error's `partial` holds what arrived).
 *
 * Pausing and resuming delivery, {@linkcode FramedProtocol.feed} and the
 * transport callbacks come from its base class, {@linkcode FramedProtocol}.
 *
 * @example Frames over a connection
 * ```ts
 * import {
 *   createConnection,
 *   createServer,
 *   LengthPrefixedProtocol,
 * } from "@denio/protocols";
 * import { assertEquals } from "@std/assert";
 *
 * // The server answers each frame with its length, as a 2-byte-header frame.
 * await using server = await createServer(() =>
 *   new LengthPrefixedProtocol({
 *     frameReceived(frame, framer) {
 *       framer.sendFrame(`${frame.length}`);
 *     },
 *   }, { headerSize: 2 }), { hostname: "127.0.0.1", port: 0 });
 * const { port } = server.addrs[0] as Deno.NetAddr;
 *
 * const replies = Promise.withResolvers<string>();
 * const [transport] = await createConnection(() =>
 *   new LengthPrefixedProtocol({
 *     frameReceived: (frame) => replies.resolve(new TextDecoder().decode(frame)),
 *   }, { headerSize: 2 }), { port });
 * (transport.getProtocol() as LengthPrefixedProtocol).sendFrame(new Uint8Array(300));
 * assertEquals(await replies.promise, "300");
 * transport.close();
 * ```
 */
export class LengthPrefixedProtocol extends FramedProtocol
  implements BufferedProtocol {
  #decoder: LengthDecoder;
  #header: Uint8Array;
  #writeTransport: WriteTransport | null;

  /**
   * Makes a length-prefixed protocol that calls `handler`.
   *
   * @param handler The callbacks, e.g. `{ frameReceived(frame, framer) {…} }`.
   * @param options The header size and the maximum frame size.
   * @throws {TypeError} If `handler` is not an object or an option has the wrong type.
   * @throws {RangeError} If `headerSize` is not 1, 2 or 4, or `maxFrameSize`
   * is not a positive integer the header can hold.
   */
  constructor(
    handler: LengthPrefixedHandler = {},
    options: LengthPrefixedProtocolOptions = {},
  ) {
    checkHandler(handler, ACTION);
    const headerSize = options.headerSize ?? 4;
    if (typeof headerSize !== "number") {
      throw new TypeError(
        `Cannot ${ACTION} as headerSize is not a number: current value is ${
          describeValue(headerSize)
        }`,
      );
    }
    if (headerSize !== 1 && headerSize !== 2 && headerSize !== 4) {
      throw new RangeError(
        `Cannot ${ACTION} as headerSize is not 1, 2 or 4: current value is ${headerSize}`,
      );
    }
    const largest = 2 ** (8 * headerSize) - 1;
    const max = options.maxFrameSize === undefined
      ? Math.min(largest, 1024 * 1024)
      : checkLimit(options.maxFrameSize, "maxFrameSize", ACTION);
    if (max > largest) {
      throw new RangeError(
        `Cannot ${ACTION} as maxFrameSize is over what a ${headerSize}-byte header holds (${largest}): current value is ${max}`,
      );
    }
    const decoder = new LengthDecoder(headerSize, max);
    const writeTransport = checkWriteTransport(options.writeTransport, ACTION);
    super(handler, decoder, (frame) => handler.frameReceived?.(frame, this));
    this.#decoder = decoder;
    this.#header = new Uint8Array(headerSize);
    this.#writeTransport = writeTransport;
  }

  /** The size of the length header in bytes: 1, 2 or 4. */
  get headerSize(): 1 | 2 | 4 {
    return this.#decoder.headerSize as 1 | 2 | 4;
  }

  /** The largest frame accepted and sent, in bytes. */
  get maxFrameSize(): number {
    return this.#decoder.max;
  }

  /**
   * Writes the length header and `frame` (a string is UTF-8 encoded); the
   * payload is handed to the transport as it is, not copied. After the
   * connection is lost the frame is dropped, as the transport drops writes.
   *
   * @param frame The payload.
   * @throws {TypeError} If `frame` is not a Uint8Array or string.
   * @throws {RangeError} If `frame` is longer than `maxFrameSize`.
   * @throws {Error} If the protocol is not connected yet, or `writeEof()` was called.
   */
  sendFrame(frame: Uint8Array | string): void {
    const bytes = toBytes(frame, "send frame");
    const max = this.#decoder.max;
    if (bytes.length > max) {
      throw new RangeError(
        `Cannot send frame as it is longer than maxFrameSize (${max} bytes): current value is ${bytes.length} bytes`,
      );
    }
    const header = this.#header.slice();
    let length = bytes.length;
    for (let i = header.length - 1; i >= 0; i--) {
      header[i] = length & 0xff;
      length = Math.floor(length / 256);
    }
    writeChunks(
      this.#writeTransport ?? this.transport,
      bytes.length === 0 ? [header] : [header, bytes],
      "send frame",
    );
  }
}

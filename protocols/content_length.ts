// Copyright 2026 the denio authors. MIT license.
/**
 * {@linkcode ContentLengthProtocol}: messages framed by a `Content-Length`
 * header block, the wire format of the Language Server Protocol and of
 * JSON-RPC over stdio, with hard limits on header and body size.
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
 * What a {@linkcode ContentLengthProtocol} calls. Every callback is optional
 * and gets the protocol as an argument.
 */
export interface ContentLengthHandler {
  /** The connection is made. */
  connectionMade?(framer: ContentLengthProtocol): void;
  /**
   * A whole message arrived. `body` is a view into the receive buffer that
   * is never overwritten: it is the handler's to keep. `headers` holds every
   * header of the message, `Content-Length` included.
   */
  messageReceived?(
    body: Uint8Array,
    framer: ContentLengthProtocol,
    headers: Headers,
  ): void;
  /**
   * The peer shut down its write side, between two messages. Return `true`
   * to keep our write side open. (EOF inside a message is a
   * {@linkcode FramingError} instead.)
   */
  eofReceived?(framer: ContentLengthProtocol): boolean | void;
  /**
   * The connection is gone: `null` for a clean close, a
   * {@linkcode FramingError} when the peer broke the framing, or the
   * transport's error. Called exactly once.
   */
  connectionLost?(error: Error | null, framer: ContentLengthProtocol): void;
  /** The transport's write buffer went over its high watermark. */
  pauseWriting?(framer: ContentLengthProtocol): void;
  /** The transport's write buffer drained to its low watermark. */
  resumeWriting?(framer: ContentLengthProtocol): void;
}

/** Options of the {@linkcode ContentLengthProtocol} constructor. */
export interface ContentLengthProtocolOptions {
  /**
   * The largest body accepted, in bytes. A larger `Content-Length` closes
   * the transport before any of the body is buffered, and `connectionLost`
   * gets a {@linkcode FramingError}.
   * @default {16777216}
   */
  maxBodySize?: number;
  /**
   * The largest header block accepted, in bytes, the blank line included.
   * @default {8192}
   */
  maxHeaderSize?: number;
  /**
   * Where the send methods write, when it is not the transport that reads:
   * e.g. the stdout pipe of a server that reads stdin (`connectWritePipe`),
   * or a child's stdin (`getPipeTransport(0)`) while its stdout is fed
   * to {@linkcode ContentLengthProtocol.feed}.
   * @default {the transport given to connectionMade}
   */
  writeTransport?: WriteTransport;
}

const ACTION = "create Content-Length protocol";
const TERMINATOR = new Uint8Array([13, 10, 13, 10]);
const encoder = new TextEncoder();

/** Quotes a header value for an error message, cut to a readable length. */
function quote(text: string): string {
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 60)}…` : text);
}

class ContentLengthDecoder implements Decoder {
  readonly maxBody: number;
  readonly maxHeader: number;
  /** The parsed headers of the message in progress, or null. */
  headers: Headers | null = null;
  #bodyStart = -1;
  #bodyLength = 0;
  #scanFrom = 0;

  constructor(maxBody: number, maxHeader: number) {
    this.maxBody = maxBody;
    this.maxHeader = maxHeader;
  }

  decode(pending: Uint8Array, scan: Scan): boolean {
    if (this.#bodyStart < 0) {
      const found = findDelimiter(pending, TERMINATOR, this.#scanFrom);
      const blockEnd = found < 0 ? -found - 1 + 4 : found + 4;
      if (blockEnd > this.maxHeader) {
        throw new FramingError(
          `Cannot receive message as its header is longer than maxHeaderSize (${this.maxHeader} bytes): current value is at least ${
            this.maxHeader + 1
          } bytes`,
        );
      }
      if (found < 0) {
        this.#scanFrom = -found - 1;
        scan.need = 0;
        return false;
      }
      this.#parseHeader(pending.subarray(0, found));
      this.#bodyStart = blockEnd;
    }
    const total = this.#bodyStart + this.#bodyLength;
    if (pending.length < total) {
      scan.need = total;
      return false;
    }
    scan.start = this.#bodyStart;
    scan.end = scan.next = total;
    this.#bodyStart = -1;
    this.#scanFrom = 0;
    return true;
  }

  incomplete(pending: Uint8Array): FramingError {
    this.headers = null;
    return new FramingError(
      `Cannot receive message as the connection ended in the middle of it: current value is ${pending.length} bytes`,
      { partial: pending },
    );
  }

  #parseHeader(block: Uint8Array): void {
    // Header bytes are ASCII; decode as Latin-1 so any byte maps to one char.
    let text = "";
    for (let i = 0; i < block.length; i += 4096) {
      text += String.fromCharCode(...block.subarray(i, i + 4096));
    }
    const pairs: [string, string][] = [];
    let length = "";
    for (const line of text.split("\r\n")) {
      const colon = line.indexOf(":");
      const name = colon < 0 ? "" : line.slice(0, colon);
      if (colon <= 0 || /[\s]/.test(name)) {
        throw new FramingError(
          `Cannot receive message as a header line is not "Name: value": current value is ${
            quote(line)
          }`,
        );
      }
      const value = line.slice(colon + 1).trim();
      if (name.toLowerCase() === "content-length") {
        if (!/^[0-9]+$/.test(value)) {
          throw new FramingError(
            `Cannot receive message as Content-Length is not a decimal integer: current value is ${
              quote(value)
            }`,
          );
        }
        if (length !== "" && Number(length) !== Number(value)) {
          throw new FramingError(
            `Cannot receive message as Content-Length appears twice with different values: current value is ${
              quote(length)
            } and ${quote(value)}`,
          );
        }
        length = value;
      }
      pairs.push([name, value]);
    }
    if (length === "") {
      throw new FramingError(
        `Cannot receive message as it has no Content-Length header: current value is ${
          quote(text)
        }`,
      );
    }
    const size = Number(length);
    if (size > this.maxBody) {
      throw new FramingError(
        `Cannot receive message as its Content-Length is over maxBodySize (${this.maxBody} bytes): current value is ${length}`,
      );
    }
    try {
      this.headers = new Headers(pairs);
    } catch (error) {
      throw new FramingError(
        `Cannot receive message as a header is not valid: current value is ${
          quote(text)
        }`,
        { cause: error },
      );
    }
    this.#bodyLength = size;
  }
}

/** Throws a TypeError unless `text` is a header name or value without CR/LF. */
function checkHeaderText(text: unknown, what: string): string {
  if (typeof text !== "string") {
    throw new TypeError(
      `Cannot send message as a header ${what} is not a string: current value is ${
        describeValue(text)
      }`,
    );
  }
  if (/[\r\n]/.test(text) || (what === "name" && !/^[^\s:]+$/.test(text))) {
    throw new TypeError(
      `Cannot send message as a header ${what} is not valid: current value is ${
        quote(text)
      }`,
    );
  }
  return text;
}

/**
 * A protocol for messages framed by a header block with a `Content-Length`,
 * the Language Server Protocol's base protocol: `Content-Length: N\r\n`,
 * other headers (`Content-Type`, …) allowed, a blank line (`\r\n`), then
 * exactly N bytes of body. Each body goes to `handler.messageReceived` with
 * the parsed headers; {@linkcode sendMessage} writes one.
 *
 * Header names are matched case-insensitively. A header line without a colon,
 * a missing or non-decimal `Content-Length`, two different `Content-Length`
 * values, a header block over `maxHeaderSize` or a body over `maxBodySize`
 * close the transport, and `connectionLost` gets a {@linkcode FramingError};
 * nothing more is buffered. So does a connection that ends inside a message.
 *
 * It is a {@linkcode BufferedProtocol}: once the header is in, the receive
 * buffer is sized for the whole body, the transport reads straight into it,
 * and the body is a view of that buffer (no copy).
 *
 * Pausing and resuming delivery, {@linkcode FramedProtocol.feed} and the
 * transport callbacks come from its base class, {@linkcode FramedProtocol}.
 *
 * @example JSON messages between a server and a client
 * ```ts
 * import {
 *   ContentLengthProtocol,
 *   createConnection,
 *   createServer,
 * } from "@denio/protocols";
 * import { assertEquals } from "@std/assert";
 *
 * const decoder = new TextDecoder();
 * await using server = await createServer(() =>
 *   new ContentLengthProtocol({
 *     messageReceived(body, framer) {
 *       const { a, b } = JSON.parse(decoder.decode(body));
 *       framer.sendMessage(JSON.stringify({ sum: a + b }));
 *     },
 *   }), { hostname: "127.0.0.1", port: 0 });
 * const { port } = server.addrs[0] as Deno.NetAddr;
 *
 * const reply = Promise.withResolvers<unknown>();
 * const [transport, framer] = await createConnection(() =>
 *   new ContentLengthProtocol({
 *     messageReceived: (body) => reply.resolve(JSON.parse(decoder.decode(body))),
 *   }), { port });
 * framer.sendMessage(JSON.stringify({ a: 2, b: 3 }));
 * assertEquals(await reply.promise, { sum: 5 });
 * transport.close();
 * ```
 */
export class ContentLengthProtocol extends FramedProtocol
  implements BufferedProtocol {
  #decoder: ContentLengthDecoder;
  #writeTransport: WriteTransport | null;

  /**
   * Makes a Content-Length protocol that calls `handler`.
   *
   * @param handler The callbacks, e.g. `{ messageReceived(body, framer) {…} }`.
   * @param options The body and header size limits.
   * @throws {TypeError} If `handler` is not an object or an option has the wrong type.
   * @throws {RangeError} If a limit is not a positive integer.
   */
  constructor(
    handler: ContentLengthHandler = {},
    options: ContentLengthProtocolOptions = {},
  ) {
    checkHandler(handler, ACTION);
    const maxBody = options.maxBodySize === undefined
      ? 16 * 1024 * 1024
      : checkLimit(options.maxBodySize, "maxBodySize", ACTION);
    const maxHeader = options.maxHeaderSize === undefined
      ? 8192
      : checkLimit(options.maxHeaderSize, "maxHeaderSize", ACTION);
    const decoder = new ContentLengthDecoder(maxBody, maxHeader);
    const writeTransport = checkWriteTransport(options.writeTransport, ACTION);
    super(handler, decoder, (body) => {
      const headers = decoder.headers!;
      decoder.headers = null;
      return handler.messageReceived?.(body, this, headers);
    });
    this.#decoder = decoder;
    this.#writeTransport = writeTransport;
  }

  /** The largest body accepted, in bytes. */
  get maxBodySize(): number {
    return this.#decoder.maxBody;
  }

  /** The largest header block accepted, in bytes. */
  get maxHeaderSize(): number {
    return this.#decoder.maxHeader;
  }

  /**
   * Writes `Content-Length: N`, the extra `headers`, a blank line and `body`
   * (a string is UTF-8 encoded; the body is handed to the transport as it
   * is, not copied). After the connection is lost the message is dropped, as
   * the transport drops writes.
   *
   * @param body The body.
   * @param headers Extra headers, e.g. `{ "Content-Type": "application/json" }`.
   * @throws {TypeError} If `body` is not a Uint8Array or string, or a header
   * is not a string, holds CR or LF, or is a `Content-Length`.
   * @throws {Error} If the protocol is not connected yet, or `writeEof()` was called.
   */
  sendMessage(
    body: Uint8Array | string,
    headers?: Record<string, string>,
  ): void {
    const bytes = toBytes(body, "send message");
    let head = `Content-Length: ${bytes.length}\r\n`;
    if (headers !== undefined) {
      if (headers === null || typeof headers !== "object") {
        throw new TypeError(
          `Cannot send message as headers is not an object: current value is ${
            describeValue(headers)
          }`,
        );
      }
      for (const [name, value] of Object.entries(headers)) {
        checkHeaderText(name, "name");
        checkHeaderText(value, "value");
        if (name.toLowerCase() === "content-length") {
          throw new TypeError(
            `Cannot send message as headers sets Content-Length: current value is ${
              quote(value)
            }`,
          );
        }
        head += `${name}: ${value}\r\n`;
      }
    }
    head += "\r\n";
    const chunks: Uint8Array[] = [encoder.encode(head)];
    if (bytes.length > 0) chunks.push(bytes);
    writeChunks(
      this.#writeTransport ?? this.transport,
      chunks,
      "send message",
    );
  }
}

// Copyright 2026 the denio authors. MIT license.
/**
 * {@linkcode connectReadPipe} and {@linkcode connectWritePipe}: transports
 * over one direction of a pipe (`Deno.stdin`, `Deno.stdout`, a `Deno.FsFile`,
 * a child's stdout or stdin, any web stream of bytes), asyncio's
 * `loop.connect_read_pipe()` and `loop.connect_write_pipe()`.
 *
 * @module
 */

import type {
  BaseProtocol,
  BufferedProtocol,
  Protocol,
  ReadTransport,
  WriteTransport,
} from "../mod.ts";
import { makeProtocol } from "./_net.ts";
import {
  assertReadPipe,
  assertWritePipe,
  openReadPipe,
  openWritePipe,
} from "./_pipe_io.ts";
import { assertFactory } from "./_validate.ts";

/**
 * What {@linkcode connectReadPipe} reads: a `ReadableStream` of bytes, or an
 * object with one as `readable` (`Deno.stdin`, a `Deno.FsFile`). An object
 * with its own `read(buffer)` method is read through that method (no copy);
 * a byte stream through a BYOB reader; any other stream through a default
 * reader.
 */
export type ReadPipe =
  | ReadableStream<Uint8Array>
  | {
    /** The bytes to read. */
    readonly readable: ReadableStream<Uint8Array>;
    /** Reads into `buffer`; preferred over `readable` when present. */
    read?(buffer: Uint8Array): Promise<number | null>;
    /** Called when the transport closes. */
    close?(): void;
  };

/**
 * What {@linkcode connectWritePipe} writes to: a `WritableStream` of bytes,
 * or an object with one as `writable` (`Deno.stdout`, a `Deno.FsFile`, a
 * child's stdin). An object with its own `write(data)` method is written
 * through that method.
 */
export type WritePipe =
  | WritableStream<Uint8Array>
  | {
    /** Where the bytes go. */
    readonly writable: WritableStream<Uint8Array>;
    /** Writes from `data`; preferred over `writable` when present. */
    write?(data: Uint8Array): Promise<number>;
    /** Called when the transport closes. */
    close?(): void;
  };

/**
 * Reads `pipe` into a protocol made by `protocolFactory`, as asyncio's
 * `loop.connect_read_pipe()`. Resolves once `connectionMade` has run.
 *
 * The callbacks come in the stream order `connectionMade [dataReceived*]
 * [eofReceived] connectionLost`. A read pipe closes after EOF whatever
 * `eofReceived` returns (it has no write side): `connectionLost(null)`
 * follows. Closing the transport closes the pipe, as asyncio does: an
 * object's `close()` is called, a stream is cancelled (unless it already
 * ended) and its reader lock released. `getExtraInfo("pipe")` is `pipe`
 * itself.
 *
 * @typeParam P The protocol type.
 * @param protocolFactory Returns the {@linkcode Protocol} or
 * {@linkcode BufferedProtocol} that receives the data.
 * @param pipe What to read.
 * @returns The read transport and the protocol.
 * @throws {TypeError} If `protocolFactory` is not a function or did not
 * return an object, or `pipe` is not readable or its stream is locked.
 *
 * @example Read a stream until its end
 * ```ts
 * import { connectReadPipe } from "@denio/protocols";
 * import { assertEquals } from "@std/assert";
 *
 * const stream = ReadableStream.from([new TextEncoder().encode("hello")]);
 * const chunks: string[] = [];
 * const lost = Promise.withResolvers<Error | null>();
 * const [transport] = await connectReadPipe(() => ({
 *   dataReceived(data: Uint8Array) {
 *     chunks.push(new TextDecoder().decode(data));
 *   },
 *   connectionLost: lost.resolve,
 * }), stream);
 * assertEquals(transport.getExtraInfo("pipe"), stream);
 * assertEquals(await lost.promise, null);
 * assertEquals(chunks.join(""), "hello");
 * ```
 */
export async function connectReadPipe<P extends Protocol | BufferedProtocol>(
  protocolFactory: () => P,
  pipe: ReadPipe,
): Promise<[ReadTransport, P]> {
  const action = "connect read pipe";
  assertFactory(protocolFactory, action);
  assertReadPipe(pipe, action);
  const protocol = makeProtocol(protocolFactory, action);
  const made = Promise.withResolvers<void>();
  const transport = openReadPipe(pipe, protocol, { onMade: made.resolve });
  await made.promise;
  return [transport, protocol];
}

/**
 * Writes to `pipe` for a protocol made by `protocolFactory`, as asyncio's
 * `loop.connect_write_pipe()`. Resolves once `connectionMade` has run.
 *
 * The transport has asyncio's write-buffer flow control (`pauseWriting`
 * over the high watermark, `resumeWriting` at the low one). `close()`
 * flushes, then closes the pipe so its reader sees the end; `writeEof()`
 * does the same (`canWriteEof()` is true) and, as in asyncio, ends the
 * transport with `connectionLost(null)`. When the reader goes away (the
 * stream errors, a write fails with EPIPE) `connectionLost(error)` follows;
 * a stream's error that is not a `Deno.errors.BrokenPipe` or the like
 * arrives as a `BrokenPipe` with the original as its `cause`. Writes after
 * that are dropped, as asyncio does. `getExtraInfo("pipe")` is `pipe`
 * itself.
 *
 * @typeParam P The protocol type.
 * @param protocolFactory Returns the protocol (it receives `connectionMade`,
 * `pauseWriting`, `resumeWriting` and `connectionLost`).
 * @param pipe Where to write.
 * @returns The write transport and the protocol.
 * @throws {TypeError} If `protocolFactory` is not a function or did not
 * return an object, or `pipe` is not writable or its stream is locked.
 *
 * @example Write to a stream and close it
 * ```ts
 * import { connectWritePipe } from "@denio/protocols";
 * import { assertEquals } from "@std/assert";
 *
 * const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
 * const text = new Response(readable).text();
 * const [transport] = await connectWritePipe(() => ({}), writable);
 * transport.write(new TextEncoder().encode("hello"));
 * transport.close();
 * assertEquals(await text, "hello");
 * ```
 */
export async function connectWritePipe<P extends BaseProtocol>(
  protocolFactory: () => P,
  pipe: WritePipe,
): Promise<[WriteTransport, P]> {
  const action = "connect write pipe";
  assertFactory(protocolFactory, action);
  assertWritePipe(pipe, action);
  const protocol = makeProtocol(protocolFactory, action);
  const made = Promise.withResolvers<void>();
  const transport = openWritePipe(pipe, protocol, { onMade: made.resolve });
  await made.promise;
  return [transport, protocol];
}

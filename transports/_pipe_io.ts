// Copyright 2026 the denio authors. MIT license.
// The StreamIo adapters behind connectReadPipe, connectWritePipe and the
// pipes of a subprocess. A read pipe has only `read` (and `close`), a write
// pipe only `write`, `closeWrite` and `close`; the one StreamTransport core
// does everything else.
//
// Which way a pipe is read or written, best first:
// - a direct `read(buffer)` / `write(data)` method (Deno.stdin, Deno.stdout,
//   Deno.FsFile): the kernel reads straight into the transport's buffer;
// - a BYOB reader when the stream is a byte stream (a child's stdout): for a
//   Protocol a buffer per read, handed over with no copy; for a
//   BufferedProtocol one copy from a reused one, never more than asked for;
// - a default reader otherwise, keeping what did not fit for the next read.
//
// Closing the transport closes the pipe, as asyncio's pipe transports do
// (unix_events.py `_UnixReadPipeTransport` / `_UnixWritePipeTransport` call
// `self._pipe.close()`): an object is `close()`d, a readable stream cancelled
// unless it already ended, a writable stream closed (aborted if a write is
// still in flight). The reader or writer lock is released in the same step,
// so `stream.locked` is false once `connectionLost` runs.

import type { BaseProtocol } from "../mod.ts";
import { isPeerGone } from "./_call_soon.ts";
import { describe } from "./_validate.ts";
import type { ReadPipe, WritePipe } from "./pipes.ts";
import { type StreamIo, StreamTransport } from "./stream_transport.ts";

/** Lifecycle hooks of a pipe transport (see StreamTransportOptions). */
export interface PipeHooks {
  /** Called once, right after `connectionMade` returned. */
  onMade?: () => void;
  /** Called once, after `connectionLost` returned (or threw). */
  onLost?: () => void;
}

type DirectReader = {
  read(buffer: Uint8Array): Promise<number | null>;
  close?(): void;
};
type DirectWriter = {
  write(data: Uint8Array): Promise<number>;
  close?(): void;
};

/** Throws unless `pipe` is something connectReadPipe can read. */
export function assertReadPipe(pipe: unknown, action: string): void {
  if (pipe instanceof ReadableStream) {
    assertUnlocked(pipe, action);
    return;
  }
  if (pipe !== null && typeof pipe === "object") {
    const candidate = pipe as { read?: unknown; readable?: unknown };
    if (typeof candidate.read === "function") return;
    if (candidate.readable instanceof ReadableStream) {
      assertUnlocked(candidate.readable, action);
      return;
    }
  }
  throw new TypeError(
    `Cannot ${action} as pipe is not a ReadableStream or an object with a readable stream: current value is ${
      describe(pipe)
    }`,
  );
}

/** Throws unless `pipe` is something connectWritePipe can write. */
export function assertWritePipe(pipe: unknown, action: string): void {
  if (pipe instanceof WritableStream) {
    assertUnlocked(pipe, action);
    return;
  }
  if (pipe !== null && typeof pipe === "object") {
    const candidate = pipe as { write?: unknown; writable?: unknown };
    if (typeof candidate.write === "function") return;
    if (candidate.writable instanceof WritableStream) {
      assertUnlocked(candidate.writable, action);
      return;
    }
  }
  throw new TypeError(
    `Cannot ${action} as pipe is not a WritableStream or an object with a writable stream: current value is ${
      describe(pipe)
    }`,
  );
}

function assertUnlocked(
  stream: ReadableStream | WritableStream,
  action: string,
): void {
  if (stream.locked) {
    throw new TypeError(
      `Cannot ${action} as the stream is locked: current value is ${
        describe(stream)
      }`,
    );
  }
}

/**
 * A read-only StreamTransport over `pipe` (already checked with
 * assertReadPipe). `getExtraInfo("pipe")` is `pipe` itself.
 */
export function openReadPipe(
  pipe: ReadPipe,
  protocol: BaseProtocol,
  hooks: PipeHooks = {},
): StreamTransport {
  return new StreamTransport(readPipeIo(pipe), protocol, {
    extra: { pipe },
    ...hooks,
  });
}

/**
 * A write-only StreamTransport over `pipe` (already checked with
 * assertWritePipe). `writeEof()` closes the pipe and, as asyncio's
 * `_UnixWritePipeTransport.write_eof()`, the transport with it.
 */
export function openWritePipe(
  pipe: WritePipe,
  protocol: BaseProtocol,
  hooks: PipeHooks = {},
): StreamTransport {
  const { io, peerClosed } = writePipeIo(pipe, function onEof() {
    // Called from inside the core's writeEof/flush once the buffer is empty:
    // close() then closes the pipe through io.close().
    transport.close();
  });
  const transport: StreamTransport = new StreamTransport(io, protocol, {
    extra: { pipe },
    ...(peerClosed !== undefined ? { peerClosed } : {}),
    ...hooks,
  });
  return transport;
}

// ------------------------------------------------------------------ reading

function readPipeIo(pipe: ReadPipe): StreamIo {
  if (
    !(pipe instanceof ReadableStream) &&
    typeof (pipe as Partial<DirectReader>).read === "function"
  ) {
    return directReadIo(pipe as DirectReader);
  }
  const stream = pipe instanceof ReadableStream ? pipe : pipe.readable;
  let byob: ReadableStreamBYOBReader | undefined;
  try {
    byob = stream.getReader({ mode: "byob" });
  } catch {
    // Not a byte stream: read chunks with a default reader.
  }
  return byob !== undefined
    ? byobReadIo(byob)
    : defaultReadIo(stream.getReader());
}

function directReadIo(pipe: DirectReader): StreamIo {
  return {
    read(buffer: Uint8Array): Promise<number | null> {
      return pipe.read(buffer);
    },
    close(): void {
      pipe.close?.();
    },
  };
}

function byobReadIo(reader: ReadableStreamBYOBReader): StreamIo {
  // The stream transfers the buffer it reads into, so it cannot be the core's
  // slab. For a Protocol (readOwned) each read gets a buffer of its own and a
  // well-filled one is handed over as it is: the kernel read straight into
  // the bytes the protocol keeps. For a BufferedProtocol (read), or a read
  // that filled under a quarter of its buffer, the bytes are copied out and
  // the buffer is read into again.
  let spare: ArrayBuffer | null = null;
  let ended = false;
  async function into(size: number): Promise<Uint8Array | null> {
    let buffer = spare;
    spare = null;
    if (buffer === null || buffer.byteLength < size) {
      buffer = new ArrayBuffer(size);
    }
    const { value, done } = await reader.read(new Uint8Array(buffer, 0, size));
    if (done) {
      ended = true;
      if (value !== undefined) spare = value.buffer as ArrayBuffer;
      return null;
    }
    return value;
  }
  return {
    async read(buffer: Uint8Array): Promise<number | null> {
      const value = await into(buffer.length);
      if (value === null) return null;
      buffer.set(value);
      spare = value.buffer as ArrayBuffer;
      return value.length;
    },
    async readOwned(size: number): Promise<Uint8Array | null> {
      const value = await into(size);
      if (value === null) return null;
      if (value.length * 4 >= value.buffer.byteLength) return value;
      spare = value.buffer as ArrayBuffer;
      return value.slice();
    },
    close(): void {
      releaseReader(reader, ended);
    },
  };
}

function defaultReadIo(
  reader: ReadableStreamDefaultReader<Uint8Array>,
): StreamIo {
  let leftover: Uint8Array | null = null;
  let ended = false;
  return {
    async read(buffer: Uint8Array): Promise<number | null> {
      let chunk = leftover;
      leftover = null;
      if (chunk === null) {
        const { value, done } = await reader.read();
        if (done) {
          ended = true;
          return null;
        }
        if (!(value instanceof Uint8Array)) {
          throw new TypeError(
            `Cannot read from pipe as a chunk is not a Uint8Array: current value is ${
              describe(value)
            }`,
          );
        }
        chunk = value;
      }
      if (chunk.length > buffer.length) {
        buffer.set(chunk.subarray(0, buffer.length));
        leftover = chunk.subarray(buffer.length);
        return buffer.length;
      }
      buffer.set(chunk);
      return chunk.length;
    },
    close(): void {
      leftover = null;
      releaseReader(reader, ended);
    },
  };
}

/** Cancels the stream unless it ended, then releases the lock. */
function releaseReader(
  reader: ReadableStreamBYOBReader | ReadableStreamDefaultReader<Uint8Array>,
  ended: boolean,
): void {
  if (!ended) reader.cancel().catch(ignore);
  reader.releaseLock();
}

// ------------------------------------------------------------------ writing

function writePipeIo(
  pipe: WritePipe,
  onEof: () => void,
): { io: StreamIo; peerClosed?: Promise<unknown> } {
  const eof = {
    closeWrite(): Promise<void> {
      onEof();
      return Promise.resolve();
    },
  };
  if (
    !(pipe instanceof WritableStream) &&
    typeof (pipe as Partial<DirectWriter>).write === "function"
  ) {
    const direct = pipe as DirectWriter;
    return {
      io: {
        write(data: Uint8Array): Promise<number> {
          return direct.write(data);
        },
        closeWrite: eof.closeWrite,
        close(): void {
          direct.close?.();
        },
      },
    };
  }
  const stream = pipe instanceof WritableStream ? pipe : pipe.writable;
  const writer = stream.getWriter();
  let inFlight = false;
  let released = false;
  return {
    io: {
      async write(data: Uint8Array): Promise<number> {
        inFlight = true;
        try {
          await writer.write(data);
        } catch (error) {
          throw readerGone(error);
        } finally {
          inFlight = false;
        }
        return data.length;
      },
      closeWrite: eof.closeWrite,
      close(error?: Error | null): void {
        if (released) return;
        released = true;
        // With nothing in flight and no error every accepted byte was
        // written: close gracefully so the reader sees the end. Otherwise
        // (data dropped by a fatal error, or a write cut short) abort.
        (inFlight || error ? writer.abort(error ?? undefined) : writer.close())
          .catch(ignore);
        writer.releaseLock();
      },
    },
    // The stream erroring (its reader cancelled, a child's stdin broken)
    // ends the transport with connectionLost(error).
    peerClosed: writer.closed.catch(function onErrored(error: unknown) {
      throw readerGone(error);
    }),
  };
}

/**
 * A writable stream that errors means the other end went away (the write
 * failure and the `closed` rejection race, so both must give the same
 * answer): anything but a peer-gone error becomes a BrokenPipe with the
 * reason as its cause, and the core reports it to connectionLost only.
 */
function readerGone(error: unknown): Error {
  if (isPeerGone(error)) return error as Error;
  return new Deno.errors.BrokenPipe(
    "Cannot write to pipe as its stream errored",
    { cause: error },
  );
}

function ignore(): void {}

// Copyright 2026 the denio authors. MIT license.
/**
 * A test kit: in-memory connections, so a protocol can be unit-tested without
 * sockets. Twisted's `StringTransport` and `MemoryReactor` are the models.
 *
 * The transports here are the library's real stream transport driven by an
 * in-memory adapter, so callback order (queued microtasks), flow control
 * (`getWriteBufferSize`, `pauseWriting`/`resumeWriting` at the watermarks),
 * EOF and half-close, and `connectionLost` exactly once are exactly those of
 * a TCP connection. Each direction has a bounded "socket buffer"
 * (`capacity`, 64 KiB by default): the writing transport hands bytes to it
 * as to the OS, and the reading side drains it as it reads. A side that
 * stops reading fills it, and then the writer's own buffer grows until
 * `pauseWriting` fires, as with a real socket.
 *
 * - {@linkcode MemoryPeer} puts one protocol on a transport whose other end
 *   the test drives: `send()` bytes, `sendEof()`, `reset()`, and inspect
 *   `written()`, `writes()` and `eof`.
 * - {@linkcode createTransportPair} connects two protocols to each other.
 * - {@linkcode settle} waits until every queued callback and in-memory
 *   transfer has run.
 *
 * Differences from TCP: there is no RST, so a side that closes with unread
 * data only drops that data (the writer's later writes fail with
 * `BrokenPipe`); each write arrives in its own read (split only when larger
 * than the reader's buffer), so chunk boundaries are deterministic.
 *
 * @example Unit-test a line protocol
 * ```ts
 * import { LineProtocol } from "@denio/protocols";
 * import { MemoryPeer, settle } from "@denio/protocols/testing";
 * import { assertEquals } from "@std/assert";
 *
 * const peer = new MemoryPeer(new LineProtocol({
 *   lineReceived: (line, lines) => lines.sendLine(line.toReversed()),
 * }));
 * peer.send("abc\nxy");
 * peer.send("z\n");
 * await settle();
 * assertEquals(peer.writtenText(), "cba\nzyx\n");
 * peer.sendEof();
 * await peer.lost;
 * assertEquals(peer.eof, true);
 * ```
 *
 * @module
 */

import type { BufferedProtocol, Protocol, Transport } from "../mod.ts";
import {
  type StreamIo,
  StreamTransport,
} from "../transports/stream_transport.ts";
import { MemoryChannel } from "./_memory_pipe.ts";

/** Options of {@linkcode MemoryPeer}. */
export interface MemoryPeerOptions {
  /**
   * Bytes each direction's in-memory socket buffer holds before the writing
   * transport has to wait.
   * @default {65536}
   */
  capacity?: number;
  /**
   * What the transport's `getExtraInfo` answers, over the defaults
   * `sockname` 127.0.0.1:10001 and `peername` 127.0.0.1:10002 (TCP).
   * @default {{}}
   */
  extra?: Record<string, unknown>;
  /** Whether the transport supports `writeEof()` (a half-close). @default {true} */
  canWriteEof?: boolean;
}

/** Options of {@linkcode createTransportPair}. */
export interface TransportPairOptions {
  /**
   * Bytes each direction's in-memory socket buffer holds before the writing
   * transport has to wait.
   * @default {65536}
   */
  capacity?: number;
  /** Extra info of the first transport, over its default `sockname`/`peername`. @default {{}} */
  extraA?: Record<string, unknown>;
  /** Extra info of the second transport, over its default `sockname`/`peername`. @default {{}} */
  extraB?: Record<string, unknown>;
}

const DEFAULT_CAPACITY = 64 * 1024;
const ADDR_A: Deno.NetAddr = {
  transport: "tcp",
  hostname: "127.0.0.1",
  port: 10001,
};
const ADDR_B: Deno.NetAddr = {
  transport: "tcp",
  hostname: "127.0.0.1",
  port: 10002,
};
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "object") return "an object";
  return String(value);
}

function checkProtocol(protocol: unknown, action: string, name: string): void {
  if (protocol === null || typeof protocol !== "object") {
    throw new TypeError(
      `Cannot ${action} as ${name} is not an object: current value is ${
        describe(protocol)
      }`,
    );
  }
}

function checkCapacity(capacity: unknown, action: string): number {
  if (capacity === undefined) return DEFAULT_CAPACITY;
  if (typeof capacity !== "number") {
    throw new TypeError(
      `Cannot ${action} as capacity is not a number: current value is ${
        describe(capacity)
      }`,
    );
  }
  if (!(capacity >= 1) || !Number.isInteger(capacity)) {
    throw new RangeError(
      `Cannot ${action} as capacity is not a positive integer: current value is ${capacity}`,
    );
  }
  return capacity;
}

function toBytes(data: unknown, action: string): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (typeof data === "string") return encoder.encode(data);
  throw new TypeError(
    `Cannot ${action} as data is not a Uint8Array or string: current value is ${
      describe(data)
    }`,
  );
}

/** The adapter of one end: reads `incoming`, writes `outgoing`. */
function memoryIo(
  incoming: MemoryChannel,
  outgoing: MemoryChannel,
  onClose: () => void,
): StreamIo {
  return {
    read: (buffer) => incoming.read(buffer),
    write: (data) => outgoing.write(data),
    closeWrite: () => {
      outgoing.end();
      return Promise.resolve();
    },
    close: () => {
      incoming.closeReader();
      outgoing.end();
      onClose();
    },
  };
}

/**
 * Waits until every queued protocol callback and in-memory transfer has run:
 * the in-memory transports settle from microtasks only, so one macrotask turn
 * (a zero-delay timer) is enough. Work that waits on real I/O or timers is
 * not waited for.
 *
 * @returns A promise that resolves once the microtask queue has drained.
 *
 * @example
 * ```ts
 * import { MemoryPeer, settle } from "@denio/protocols/testing";
 * import { assertEquals } from "@std/assert";
 *
 * const peer = new MemoryPeer({
 *   connectionMade: (transport) => transport.write(new TextEncoder().encode("hi")),
 * });
 * assertEquals(peer.writtenText(), ""); // connectionMade is still queued
 * await settle();
 * assertEquals(peer.writtenText(), "hi");
 * ```
 */
export function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * The far end of an in-memory connection, driven by a test (Twisted's
 * `StringTransport`, turned around): the protocol under test gets a real
 * {@linkcode Transport}, `connectionMade` is queued at once, and the test
 * plays the peer.
 *
 * The peer reads everything the transport writes (unless
 * {@linkcode pauseReading} is called), so `written()` holds it once the
 * transport's flush has run: `await settle()` first.
 *
 * @example Test flow control against a peer that stops reading
 * ```ts
 * import { MemoryPeer, settle } from "@denio/protocols/testing";
 * import { assertEquals } from "@std/assert";
 *
 * const events: string[] = [];
 * const peer = new MemoryPeer({
 *   pauseWriting: () => events.push("pause"),
 *   resumeWriting: () => events.push("resume"),
 * }, { capacity: 1024 });
 * const transport = peer.transport;
 * await settle();
 * peer.pauseReading();
 * transport.write(new Uint8Array(100_000)); // over the 64 KiB high watermark
 * await settle();
 * assertEquals(events, ["pause"]);
 * peer.resumeReading();
 * await settle();
 * assertEquals(events, ["pause", "resume"]);
 * assertEquals(peer.written().length, 100_000);
 * transport.close();
 * await peer.lost;
 * ```
 */
export class MemoryPeer {
  #transport: StreamTransport;
  #incoming: MemoryChannel; // peer → protocol
  #outgoing: MemoryChannel; // protocol → peer
  #writes: Uint8Array[] = [];
  #eof = false;
  #closed = false;
  #readPaused = false;
  #wake: (() => void) | null = null;
  #lost: Promise<void>;

  /**
   * Connects `protocol` to a new in-memory transport; its `connectionMade`
   * is queued at once.
   *
   * @param protocol The protocol under test.
   * @param options The buffer capacity, extra info and half-close support.
   * @throws {TypeError} If `protocol` is not an object or an option has the wrong type.
   * @throws {RangeError} If `capacity` is not a positive integer.
   */
  constructor(
    protocol: Protocol | BufferedProtocol,
    options: MemoryPeerOptions = {},
  ) {
    const action = "create memory peer";
    checkProtocol(protocol, action, "protocol");
    const capacity = checkCapacity(options.capacity, action);
    this.#incoming = new MemoryChannel(capacity);
    this.#outgoing = new MemoryChannel(capacity);
    const lost = Promise.withResolvers<void>();
    this.#lost = lost.promise;
    this.#transport = new StreamTransport(
      memoryIo(this.#incoming, this.#outgoing, () => this.#closed = true),
      protocol,
      {
        extra: { sockname: ADDR_A, peername: ADDR_B, ...options.extra },
        onLost: () => lost.resolve(),
        canWriteEof: options.canWriteEof ?? true,
      },
    );
    this.#readLoop();
  }

  /** The transport the protocol was given. */
  get transport(): Transport {
    return this.#transport;
  }

  /** Resolves after the protocol's `connectionLost` has returned. */
  get lost(): Promise<void> {
    return this.#lost;
  }

  /**
   * True once the peer read EOF: the transport shut down its write side
   * (`writeEof()`) or closed.
   */
  get eof(): boolean {
    return this.#eof;
  }

  /** True once the transport released the connection (closed, aborted or lost). */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sends `data` to the protocol (a string is UTF-8 encoded); it arrives in
   * one read of its own (split only when larger than the transport's read
   * buffer). Ignored after `sendEof()`, `close()` or `reset()`, or once the
   * transport has closed.
   *
   * @param data The bytes.
   * @throws {TypeError} If `data` is not a Uint8Array or string.
   */
  send(data: Uint8Array | string): void {
    this.#incoming.push(toBytes(data, "send to memory transport"));
  }

  /** Shuts down the peer's write side: the protocol gets `eofReceived` after the data sent. */
  sendEof(): void {
    this.#incoming.end();
  }

  /**
   * Closes the peer: EOF after the data sent, and the peer stops reading, so
   * the transport's later writes fail with `BrokenPipe`.
   */
  close(): void {
    this.#incoming.end();
    this.#outgoing.closeReader();
  }

  /**
   * Resets the connection: the transport's reads and writes fail with
   * `error`, and `connectionLost(error)` follows (a peer-gone error such as
   * the default is not reported to the exception handler, as on a socket).
   *
   * @param error The error. @default {a Deno.errors.ConnectionReset}
   */
  reset(error?: Error): void {
    const failure = error ??
      new Deno.errors.ConnectionReset("Connection reset by peer");
    this.#incoming.reset(failure);
    this.#outgoing.reset(failure);
  }

  /**
   * Stops reading what the transport writes (a slow consumer): the socket
   * buffer fills to `capacity`, then the transport's own buffer grows.
   */
  pauseReading(): void {
    this.#readPaused = true;
    this.#outgoing.cancelTake();
  }

  /** Reads again what the transport writes. */
  resumeReading(): void {
    this.#readPaused = false;
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  /**
   * All the bytes the peer has read from the transport since the last
   * `clear()`, as one array.
   *
   * @returns A new Uint8Array.
   */
  written(): Uint8Array {
    let size = 0;
    for (const chunk of this.#writes) size += chunk.length;
    const all = new Uint8Array(size);
    let offset = 0;
    for (const chunk of this.#writes) {
      all.set(chunk, offset);
      offset += chunk.length;
    }
    return all;
  }

  /**
   * {@linkcode written} decoded as UTF-8.
   *
   * @returns The text.
   */
  writtenText(): string {
    return decoder.decode(this.written());
  }

  /**
   * The chunks the peer has read since the last `clear()`, one per write the
   * transport handed to the in-memory socket (so a test can check that
   * writes were coalesced).
   *
   * @returns A new array of the chunks.
   */
  writes(): Uint8Array[] {
    return [...this.#writes];
  }

  /** Forgets the bytes read so far (Twisted's `StringTransport.clear()`). */
  clear(): void {
    this.#writes = [];
  }

  async #readLoop(): Promise<void> {
    for (;;) {
      while (this.#readPaused) {
        await new Promise<void>((resolve) => this.#wake = resolve);
      }
      let chunk: Uint8Array | null | undefined;
      try {
        chunk = await this.#outgoing.take();
      } catch {
        return; // Reset.
      }
      if (chunk === undefined) continue; // Cancelled by pauseReading().
      if (chunk === null) {
        this.#eof = true;
        return;
      }
      this.#writes.push(chunk);
    }
  }
}

/**
 * Connects two protocols to each other in memory and returns their
 * transports (created at once; each protocol's `connectionMade` is queued).
 * What one transport writes, the other reads, through a socket buffer of
 * `capacity` bytes per direction.
 *
 * @param protocolA The first protocol (its transport is first in the result).
 * @param protocolB The second protocol.
 * @param options The buffer capacity and extra info.
 * @returns The two transports, `[transportA, transportB]`.
 * @throws {TypeError} If a protocol is not an object or an option has the wrong type.
 * @throws {RangeError} If `capacity` is not a positive integer.
 *
 * @example A client and a server protocol talking
 * ```ts
 * import { LineProtocol } from "@denio/protocols";
 * import { createTransportPair } from "@denio/protocols/testing";
 * import { assertEquals } from "@std/assert";
 *
 * const server = new LineProtocol({
 *   lineReceived: (line, lines) => lines.sendLine(`got ${line.length} bytes`),
 * });
 * const reply = Promise.withResolvers<string>();
 * const client = new LineProtocol({
 *   connectionMade: (lines) => lines.sendLine("hello"),
 *   lineReceived: (line, lines) => {
 *     reply.resolve(new TextDecoder().decode(line));
 *     lines.transport!.close();
 *   },
 * });
 * createTransportPair(client, server);
 * assertEquals(await reply.promise, "got 5 bytes");
 * ```
 */
export function createTransportPair(
  protocolA: Protocol | BufferedProtocol,
  protocolB: Protocol | BufferedProtocol,
  options: TransportPairOptions = {},
): [Transport, Transport] {
  const action = "create transport pair";
  checkProtocol(protocolA, action, "protocolA");
  checkProtocol(protocolB, action, "protocolB");
  const capacity = checkCapacity(options.capacity, action);
  const aToB = new MemoryChannel(capacity);
  const bToA = new MemoryChannel(capacity);
  const a = new StreamTransport(memoryIo(bToA, aToB, () => {}), protocolA, {
    extra: { sockname: ADDR_A, peername: ADDR_B, ...options.extraA },
    canWriteEof: true,
  });
  const b = new StreamTransport(memoryIo(aToB, bToA, () => {}), protocolB, {
    extra: { sockname: ADDR_B, peername: ADDR_A, ...options.extraB },
    canWriteEof: true,
  });
  return [a, b];
}

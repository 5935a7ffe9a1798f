// Copyright 2026 the denio authors. MIT license.
/**
 * asyncio's transports and protocols, for Deno.
 *
 * A protocol is an object with callbacks (`connectionMade`, `dataReceived`,
 * `eofReceived`, `connectionLost`, …); a transport is what it writes to. Hand
 * a protocol factory to {@linkcode createServer} or
 * {@linkcode createConnection} and the transport calls the protocol, each
 * callback from a queued microtask, in asyncio's order.
 *
 * @example An echo server and a client in one program
 * ```ts
 * import {
 *   createConnection,
 *   createServer,
 *   type Protocol,
 *   type Transport,
 * } from "@denio/protocols";
 * import { assertEquals } from "@std/assert";
 *
 * // The server echoes whatever it receives.
 * class Echo implements Protocol {
 *   #transport?: Transport;
 *   connectionMade(transport: Transport) {
 *     this.#transport = transport;
 *   }
 *   dataReceived(data: Uint8Array) {
 *     this.#transport!.write(data);
 *   }
 * }
 * await using server = await createServer(() => new Echo(), {
 *   hostname: "127.0.0.1",
 *   port: 0,
 * });
 * const { port } = server.addrs[0] as Deno.NetAddr;
 *
 * // The client sends one line, collects the echo, and closes on EOF.
 * const received: string[] = [];
 * const { promise: lost, resolve } = Promise.withResolvers<Error | null>();
 * const [transport] = await createConnection(() => ({
 *   dataReceived(data: Uint8Array) {
 *     received.push(new TextDecoder().decode(data));
 *   },
 *   connectionLost: resolve,
 * }), { hostname: "127.0.0.1", port });
 * transport.write(new TextEncoder().encode("hello\n"));
 * transport.writeEof();
 * assertEquals(await lost, null);
 * assertEquals(received.join(""), "hello\n");
 * ```
 *
 * @module
 */

export {
  callExceptionHandler,
  type ExceptionContext,
  type ExceptionHandler,
  setExceptionHandler,
} from "./transports/exception_handler.ts";
export {
  type ConnectOptions,
  createConnection,
  type TlsConnectOptions,
} from "./transports/connection.ts";
export {
  createServer,
  type ServeOptions,
  Server,
  type TlsServeOptions,
} from "./transports/server.ts";
export { startTls, type StartTlsOptions } from "./transports/tls.ts";
export type { ProxyHeader, ProxyTlv } from "./transports/_proxy_protocol.ts";
export {
  connectReadPipe,
  connectWritePipe,
  type ReadPipe,
  type WritePipe,
} from "./transports/pipes.ts";
export {
  subprocessExec,
  type SubprocessOptions,
  subprocessShell,
  type SubprocessStdio,
} from "./transports/subprocess.ts";
export {
  createDatagramEndpoint,
  type DatagramAddress,
  type DatagramOptions,
} from "./transports/datagram.ts";
export type { WriteBufferLimits } from "./transports/_flow_control.ts";
export {
  type ClientConnectedCallback,
  IncompleteReadError,
  LimitOverrunError,
  openConnection,
  type OpenConnectionOptions,
  startServer,
  type StartServerOptions,
  type StreamOptions,
  StreamReader,
  type StreamReaderOptions,
  StreamReaderProtocol,
  type StreamReaderProtocolOptions,
  StreamWriter,
} from "./protocols/streams.ts";
export {
  toWebStreams,
  type WebStreamOptions,
  type WebStreamPair,
  WebStreamProtocol,
} from "./protocols/web_streams.ts";
export { FramedProtocol } from "./protocols/framed_protocol.ts";
export {
  FramingError,
  type FramingErrorOptions,
  type LineHandler,
  LineProtocol,
  type LineProtocolOptions,
} from "./protocols/lines.ts";
export {
  type LengthPrefixedHandler,
  LengthPrefixedProtocol,
  type LengthPrefixedProtocolOptions,
} from "./protocols/length_prefixed.ts";
export {
  type ContentLengthHandler,
  ContentLengthProtocol,
  type ContentLengthProtocolOptions,
} from "./protocols/content_length.ts";

// ------------------------------------------------------------------ protocols

/**
 * The callbacks every protocol may have. All are optional.
 *
 * `connectionMade` is called once, first; `connectionLost` once, last (also
 * after an error, with that error). `pauseWriting` and `resumeWriting` are
 * called synchronously from inside the transport's `write()` (pause) and when
 * its buffer drains (resume); every other callback runs from a queued
 * microtask, never inside the caller's own call. A callback that throws is
 * fatal for its transport: the exception handler is told, the transport is
 * aborted and `connectionLost(error)` follows.
 */
export interface BaseProtocol {
  /** The connection is made; `transport` is the protocol's to use. */
  connectionMade?(transport: BaseTransport): void;
  /** The connection is lost or closed: `null` for a clean close. Called exactly once. */
  connectionLost?(error: Error | null): void;
  /** The transport's write buffer went over its high watermark. */
  pauseWriting?(): void;
  /** The transport's write buffer drained to its low watermark. */
  resumeWriting?(): void;
  /**
   * The transport's idle timeout expired (no byte read or written for that
   * long; see `setIdleTimeout` and the `idleTimeout` option). Return `true`
   * to stay open and start the timer again; otherwise the transport is
   * aborted and `connectionLost` gets a `Deno.errors.TimedOut`. Called from a
   * queued microtask; it must answer synchronously.
   *
   * @example Ping a quiet peer once before giving up
   * ```ts
   * import type { Protocol, Transport } from "@denio/protocols";
   *
   * class Pinger implements Protocol {
   *   #transport?: Transport;
   *   #pinged = false;
   *   connectionMade(transport: Transport) {
   *     this.#transport = transport;
   *     transport.setIdleTimeout(15_000);
   *   }
   *   dataReceived() {
   *     this.#pinged = false;
   *   }
   *   timeoutReached(): boolean {
   *     if (this.#pinged) return false; // abort: TimedOut
   *     this.#pinged = true;
   *     this.#transport!.write(new TextEncoder().encode("PING\r\n"));
   *     return true; // wait one more period
   *   }
   * }
   * ```
   */
  timeoutReached?(): boolean | void;
}

/**
 * A streaming protocol (TCP, Unix, TLS, pipes). Callback order:
 * `connectionMade [dataReceived*] [eofReceived?] connectionLost`.
 */
export interface Protocol extends BaseProtocol {
  /** The connection is made. */
  connectionMade?(transport: Transport): void;
  /** Bytes arrived. `data` is the protocol's to keep (it may be a view into a larger buffer). */
  dataReceived?(data: Uint8Array): void;
  /**
   * The peer shut down its write side. Return `true` to keep our write side
   * open (half-close); otherwise the transport closes itself.
   */
  eofReceived?(): boolean | void;
}

/**
 * A streaming protocol that supplies its own receive buffers, so the kernel
 * reads straight into them. Told apart from {@linkcode Protocol} by having
 * `getBuffer` and no `dataReceived`. Callback order:
 * `connectionMade [getBuffer [bufferUpdated]?]* [eofReceived?] connectionLost`.
 *
 * Reusing a buffer passed to `write()`: the transport keeps a reference to
 * the bytes until the OS has taken them (asyncio copies what it cannot send
 * at once; denio saves the copy). Bytes leave in order, so after `write()`
 * was given `T` bytes in all, the first `T - transport.getWriteBufferSize()`
 * of them are released and their memory may be reused. Note which total each
 * buffer's bytes end at; it is free once that many are released. (Waiting
 * for `getWriteBufferSize() === 0` is not enough: an echo's next read comes
 * while its last write is still in flight.) A buffer larger than the
 * messages the peer sends lets each arrive in one read that does not fill
 * it: a read that fills its buffer is followed by another, which mostly
 * finds nothing yet (one system call more per message).
 *
 * @example An echo that reads into four slots and writes them back without a copy
 * ```ts
 * import type { BufferedProtocol, Transport } from "@denio/protocols";
 * import { MemoryPeer } from "@denio/protocols/testing";
 * import { assertEquals } from "@std/assert";
 *
 * class SlotEcho implements BufferedProtocol {
 *   #transport!: Transport;
 *   #slots = [0, 1, 2, 3].map(() => new Uint8Array(64 * 1024));
 *   #ends = [0, 0, 0, 0]; // the written total at which each slot is free
 *   #current = 0;
 *   #written = 0;
 *   fresh = 0;
 *   connectionMade(transport: Transport) {
 *     this.#transport = transport;
 *   }
 *   getBuffer(_sizeHint: number): Uint8Array {
 *     const released = this.#written - this.#transport.getWriteBufferSize();
 *     // The slot read last if its bytes have left (warm in cache), else the next.
 *     if (released < this.#ends[this.#current]!) {
 *       this.#current = (this.#current + 1) % 4;
 *       if (released < this.#ends[this.#current]!) {
 *         this.#slots[this.#current] = new Uint8Array(64 * 1024); // still held
 *         this.fresh++;
 *       }
 *     }
 *     return this.#slots[this.#current]!;
 *   }
 *   bufferUpdated(nbytes: number) {
 *     this.#written += nbytes;
 *     this.#ends[this.#current] = this.#written;
 *     this.#transport.write(this.#slots[this.#current]!.subarray(0, nbytes));
 *   }
 * }
 *
 * const echo = new SlotEcho();
 * const peer = new MemoryPeer(echo);
 * for (let i = 0; i < 10; i++) peer.send(`message ${i};`);
 * peer.sendEof();
 * await peer.lost;
 * assertEquals(echo.fresh, 0); // every slot was free again when needed
 * const expected = [...Array(10).keys()].map((i) => `message ${i};`);
 * assertEquals(peer.writtenText(), expected.join(""));
 * ```
 */
export interface BufferedProtocol extends BaseProtocol {
  /** The connection is made. */
  connectionMade?(transport: Transport): void;
  /**
   * Returns the buffer the next read lands in. `sizeHint` is the size the
   * transport would read now; an empty buffer is a fatal error.
   */
  getBuffer(sizeHint: number): Uint8Array;
  /** `nbytes` bytes were written at the start of the last buffer returned. */
  bufferUpdated(nbytes: number): void;
  /** As {@linkcode Protocol.eofReceived}. */
  eofReceived?(): boolean | void;
}

/** A datagram protocol (UDP, Unix datagrams). */
export interface DatagramProtocol extends BaseProtocol {
  /** The endpoint is ready. */
  connectionMade?(transport: DatagramTransport): void;
  /** A datagram arrived from `addr`. */
  datagramReceived?(data: Uint8Array, addr: Deno.Addr): void;
  /** A send or receive failed; the endpoint stays open. */
  errorReceived?(error: Error): void;
}

/** A protocol that talks to a child process over its pipes. */
export interface SubprocessProtocol extends BaseProtocol {
  /** The child is started. */
  connectionMade?(transport: SubprocessTransport): void;
  /** The child wrote `data` to stdout (1) or stderr (2). */
  pipeDataReceived?(fd: 1 | 2, data: Uint8Array): void;
  /** One of the child's pipes closed. */
  pipeConnectionLost?(fd: 0 | 1 | 2, error: Error | null): void;
  /** The child exited; `connectionLost` follows once every pipe is closed too. */
  processExited?(): void;
}

// ----------------------------------------------------------------- transports

/** What every transport has. */
export interface BaseTransport {
  /** Transport information by name (`peername`, `sockname`, `socket`, …), or `defaultValue`. */
  getExtraInfo(name: string, defaultValue?: unknown): unknown;
  /** True once the transport is closing or closed. */
  isClosing(): boolean;
  /** Flushes buffered writes, then `connectionLost(null)`. Idempotent. */
  close(): void;
  /** Replaces the protocol. */
  setProtocol(protocol: BaseProtocol): void;
  /** The current protocol. */
  getProtocol(): BaseProtocol;
}

/** The read side of a transport. */
export interface ReadTransport extends BaseTransport {
  /** True unless reading is paused or the transport is closing. */
  isReading(): boolean;
  /** No `dataReceived` (nor `eofReceived`) until `resumeReading()`. Idempotent. */
  pauseReading(): void;
  /** Resumes delivery. Idempotent. */
  resumeReading(): void;
  /**
   * After `ms` milliseconds without a byte read or written, calls the
   * protocol's `timeoutReached()`; `null` or `0` turns it off.
   */
  setIdleTimeout(ms: number | null): void;
}

/** The write side of a transport, with asyncio's write-buffer flow control. */
export interface WriteTransport extends BaseTransport {
  /**
   * Buffers `data` and sends it soon. A non-Uint8Array is a TypeError. The
   * transport keeps a reference to `data` until the OS has it: bytes leave
   * in order, so after `T` bytes were written in all, the first
   * `T - getWriteBufferSize()` are released (see {@linkcode BufferedProtocol}).
   */
  write(data: Uint8Array): void;
  /** Writes each chunk in order. */
  writelines(chunks: Iterable<Uint8Array>): void;
  /** Shuts down the write side after flushing. */
  writeEof(): void;
  /** Whether `writeEof()` is supported. */
  canWriteEof(): boolean;
  /** Closes at once, dropping buffered data; `connectionLost(null)` follows. */
  abort(): void;
  /** Bytes accepted by `write()` and not yet written by the OS. */
  getWriteBufferSize(): number;
  /** The watermarks in bytes. */
  getWriteBufferLimits(): { low: number; high: number };
  /** Sets the watermarks (high alone gives low = high / 4). */
  setWriteBufferLimits(limits?: { high?: number; low?: number }): void;
  /**
   * After `ms` milliseconds without a byte read or written, calls the
   * protocol's `timeoutReached()`; `null` or `0` turns it off.
   */
  setIdleTimeout(ms: number | null): void;
}

/** A bidirectional stream transport. */
export interface Transport extends ReadTransport, WriteTransport {}

/** A datagram transport. */
export interface DatagramTransport extends BaseTransport {
  /** Sends one datagram to `addr` (or to the remote address it was created with). */
  sendto(data: Uint8Array, addr?: Deno.Addr): void;
  /** Closes at once, dropping queued datagrams. */
  abort(): void;
  /** Bytes queued and not yet sent. */
  getWriteBufferSize(): number;
  /** The watermarks in bytes (asyncio keeps them on datagram transports too). */
  getWriteBufferLimits(): { low: number; high: number };
  /** Sets the watermarks (high alone gives low = high / 4). */
  setWriteBufferLimits(limits?: { high?: number; low?: number }): void;
  /** Joins a multicast group, on the interface with that IPv4 address if given (UDP only). */
  joinMulticastGroup(group: string, interfaceAddress?: string): Promise<void>;
  /** Leaves a group joined with the same arguments (UDP only). */
  leaveMulticastGroup(group: string, interfaceAddress?: string): Promise<void>;
  /** Sets whether sent multicast datagrams loop back to this host (UDP only). */
  setMulticastLoopback(flag: boolean): Promise<void>;
  /** Sets the TTL of sent multicast datagrams, 0 to 255 (UDP only). */
  setMulticastTTL(ttl: number): Promise<void>;
}

/** A child process and its pipes. */
export interface SubprocessTransport extends BaseTransport {
  /** The child's process id. */
  getPid(): number;
  /** The exit code, minus the signal number if a signal ended it, or `null` while it runs. */
  getReturncode(): number | null;
  /** The transport of stdin (0), stdout (1) or stderr (2), or `null` if not piped. */
  getPipeTransport(fd: 0 | 1 | 2): WriteTransport | ReadTransport | null;
  /** Sends `signal` to the child. */
  sendSignal(signal: Deno.Signal): void;
  /** Sends SIGTERM. */
  terminate(): void;
  /** Sends SIGKILL. */
  kill(): void;
}

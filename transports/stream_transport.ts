// Copyright 2026 the denio authors. MIT license.
/**
 * The one stream-transport core. TCP, Unix, TLS and pipes differ only in the
 * {@linkcode StreamIo} adapter they hand it; the state machine, the read loop,
 * the write buffer and flow control live here once.
 *
 * The state machine is asyncio's (selector_events.py
 * `_SelectorSocketTransport`): `connectionMade`, then `dataReceived*` (or
 * `getBuffer`/`bufferUpdated` pairs), then at most one `eofReceived`, then
 * exactly one `connectionLost`.
 *
 * @module
 */

import type {
  BaseProtocol,
  BufferedProtocol,
  Protocol,
  Transport,
} from "../mod.ts";
import {
  callbackFailed,
  callSoon,
  type FailureHost,
  invokeCallback,
  invokeConnectionLost,
  isPeerGone,
  toError,
} from "./_call_soon.ts";
import {
  DEFAULT_HIGH_WATER,
  FlowControl,
  type WriteBufferLimits,
} from "./_flow_control.ts";
import {
  assertBytes,
  checkIdleTimeout,
  checkProtocol,
  describe,
} from "./_validate.ts";
import { connExtra } from "./_net.ts";
import { callExceptionHandler } from "./exception_handler.ts";

/**
 * The small I/O adapter the core drives. `Deno.Conn` and `Deno.TlsConn` fit
 * it as they are; pipes wrap a stream in one.
 */
export interface StreamIo {
  /** Reads into `buffer`; resolves to the count, or `null` at EOF. Absent on a write-only pipe. */
  read?(buffer: Uint8Array): Promise<number | null>;
  /** Writes from `data`; resolves to the count written (may be partial). Absent on a read-only pipe. */
  write?(data: Uint8Array): Promise<number>;
  /** Shuts down the write side. Absent where there is no half-close. */
  closeWrite?(): Promise<void>;
  /**
   * Releases the resource; pending reads and writes then fail. `error` is
   * why (`null` for a clean close or an abort). A returned promise delays
   * `connectionLost` until it settles (a TLS tunnel draining).
   */
  close(error?: Error | null): void | Promise<void>;
  /**
   * The size of the first read, where the adapter knows better (later reads
   * adapt to the traffic); at most 64 KiB. By default 16 KiB, or 1 KiB while
   * more than 256 stream transports are open (idle connections then pin
   * little memory).
   */
  readonly readSize?: number;
  /**
   * Reads at most `size` bytes into memory of the adapter's own that the
   * caller may keep: the bytes, or `null` at EOF. Where present the core
   * reads for a Protocol with it, and delivers the bytes as they are (no
   * copy into the core's slab); a BufferedProtocol is still read with `read`.
   */
  readOwned?(size: number): Promise<Uint8Array | null>;
}

/**
 * What a readiness-based adapter (the native reactor's socket) adds to
 * {@linkcode StreamIo}: reads and writes that answer at once, and a callback
 * when the socket becomes ready. The core then reads and writes with no
 * promise per operation, from the reactor's dispatch, as asyncio's selector
 * loop calls a transport's `_read_ready`; a connection with nothing to read
 * holds no buffer and no pending operation.
 */
export interface ReadyIo extends StreamIo {
  /** True while `readNow` may find bytes, EOF or an error. */
  readyToRead(): boolean;
  /** Reads into `buffer` now: the count, `null` at EOF, or -1 (nothing there). */
  readNow(buffer: Uint8Array): number | null;
  /** Writes from `data` now: the count (may be partial), or -1 (buffer full). */
  writeNow(data: Uint8Array): number;
  /** Sets who is told when the socket becomes ready (`null`: nobody). */
  listen(listener: ReadyListener | null): void;
  /**
   * Asks for one `[socketReadable]()` call when the socket is next readable
   * (on the reactor's next turn if it already is); `false` cancels.
   */
  wantRead(on: boolean): void;
  /** As `wantRead`, for writability and `[socketWritable]()`. */
  wantWrite(on: boolean): void;
}

/** The method key a {@linkcode ReadyIo} calls when it is readable. */
export const socketReadable: unique symbol = Symbol("denio.socketReadable");
/** The method key a {@linkcode ReadyIo} calls when it is writable. */
export const socketWritable: unique symbol = Symbol("denio.socketWritable");

/**
 * What a {@linkcode ReadyIo} tells of readiness (a transport: no closure per
 * connection).
 */
export interface ReadyListener {
  /** The socket is readable (bytes, EOF or an error). */
  [socketReadable](): void;
  /** The socket is writable again. */
  [socketWritable](): void;
}

/** True when `io` is a {@linkcode ReadyIo}. */
function isReadyIo(io: StreamIo): io is ReadyIo {
  return typeof (io as Partial<ReadyIo>).readNow === "function";
}

/**
 * Reads one readiness wake-up may make before the connection yields to the
 * others (it is woken again on the reactor's next turn).
 */
const READS_PER_WAKE = 16;

/** Options of the {@linkcode StreamTransport} constructor. */
export interface StreamTransportOptions {
  /** What `getExtraInfo` answers. */
  extra?: Record<string, unknown>;
  /**
   * `getExtraInfo` answers `peername`, `sockname` and `socket` from the io
   * (a `Deno.Conn` or the native one), made on the first call, instead of
   * `extra`: an idle connection holds no object for them, and one options
   * object can serve every connection of a server.
   */
  connExtra?: boolean;
  /** Called once, right after `connectionMade` returned. */
  onMade?: () => void;
  /**
   * Called once, after `connectionLost` returned (or threw), with the
   * transport these options were given to (one hook can serve many).
   */
  onLost?: (transport: StreamTransport) => void;
  /**
   * Settles when a write-only peer goes away (a pipe's reader closing);
   * a rejection reason is passed to `connectionLost`.
   */
  peerClosed?: Promise<unknown>;
  /** Whether `writeEof()` may shut down the write side. @default {true} when the adapter has closeWrite */
  canWriteEof?: boolean;
  /**
   * The protocol is already connected (a `startTls` upgrade): no second
   * `connectionMade`; reading starts from a queued microtask.
   * @default {false}
   */
  connected?: boolean;
  /**
   * Milliseconds without a byte read or written before the protocol's
   * `timeoutReached()` is asked (see `setIdleTimeout`). `null` or absent: none.
   */
  idleTimeout?: number | null;
  /**
   * The budget that this transport's write buffer and its protocol's
   * reported buffers are charged to (a server's `maxBufferedBytes`).
   */
  budget?: BufferBudget;
}

/**
 * Bytes that several transports together may buffer: their write buffers,
 * and what their protocols report through {@linkcode reportBuffered}. The
 * transport whose charge takes `used` over `limit` is aborted.
 */
export interface BufferBudget {
  /** The most all transports together may hold. */
  readonly limit: number;
  /** What they hold now. */
  used: number;
}

/**
 * The method key through which a protocol tells its transport how many
 * received bytes it holds (a framer's incomplete message), so that they are
 * charged to the transport's {@linkcode BufferBudget} (internal).
 */
export const reportBuffered: unique symbol = Symbol("denio.reportBuffered");

/**
 * What a transport hands over when it is detached for an upgrade
 * (`startTls`): the adapter, and the bytes of the read that was in flight.
 */
export interface DetachedIo {
  /** The adapter, now owned by the caller. */
  io: StreamIo;
  /**
   * Resolves to the bytes of the read that was in flight (or held while
   * paused), `null` if it was EOF, or `undefined` if no read was in flight;
   * rejects with the read's error if that read failed after the detach.
   */
  firstRead: Promise<Uint8Array | null | undefined>;
  /**
   * Runs the detached transport's `onLost` hook (a server forgets the
   * connection): call it once, when the upgraded connection is lost or the
   * upgrade failed. Later calls do nothing.
   */
  onLost: () => void;
  /**
   * From now on `close()` and `abort()` on the detached transport act on
   * `target` (the upgrade in progress, then the upgraded transport), so
   * `Server.closeClients()` reaches upgraded connections.
   */
  forward(target: { close(): void; abort(): void }): void;
  /** The idle timeout the detached transport had, for the upgraded one. */
  idleTimeout: number | null;
  /** The budget the detached transport was charged to, if any. */
  budget: BufferBudget | undefined;
}

/** The method key of {@linkcode StreamTransport}'s detach hook (internal). */
export const detachIo: unique symbol = Symbol("denio.detachIo");

type State =
  | { kind: "starting" }
  | { kind: "open" }
  | { kind: "closing" } // close() called: no more reads, flushing writes
  // Handed over to an upgrade; no connectionLost here; close() and abort()
  // go to `target`.
  | { kind: "detached"; target: { close(): void; abort(): void } | null }
  | { kind: "lost"; error: Error | null } // connectionLost is queued
  | { kind: "closed" };

// The states without data are shared: a transport allocates none of them.
const STARTING: State = { kind: "starting" };
const OPEN: State = { kind: "open" };
const CLOSING: State = { kind: "closing" };
const CLOSED: State = { kind: "closed" };

/**
 * Read sizes adapt to the traffic. A new connection's first read is small
 * once many transports are open (an idle connection then pins little
 * memory: Deno holds the buffer of a pending read), MIN_READ_SIZE otherwise;
 * later reads are at least MIN_READ_SIZE, and a read that fills its buffer
 * doubles the next one up to the cap. Reads never shrink: a stream's reads
 * often return part of what the peer wrote, and shrinking on those (tried:
 * the next read sized to what arrived) took the 64 KiB echo from 1.7x to
 * 2.6x the raw loop's CPU, with more reads and slabs per message.
 *
 * Why not always small: a peer that writes a large request before reading
 * any reply (socat fed by a program that reads its output only afterwards)
 * deadlocks once the return path's buffers are full, and a small first read
 * makes the echo start sooner, so such a peer stalls earlier (measured:
 * 4-5 of 20 socat runs of 1 MiB hung with a 1 KiB or 4 KiB first read, none
 * with 8 KiB or 16 KiB).
 */
const SMALL_FIRST_READ_SIZE = 1024;
/** Open stream transports beyond which first reads are small. */
const SMALL_FIRST_READ_FROM = 256;
let openTransports = 0;
const MIN_READ_SIZE = 16 * 1024;
const MAX_READ_SIZE = 64 * 1024;
/**
 * A Protocol's reads land in a per-transport slab (the views it delivers are
 * the protocol's to keep, so a slab is never reused). What costs is the
 * number of ArrayBuffers (each about a microsecond plus the garbage
 * collection that external memory triggers), more than their size: a busy
 * connection takes slabs of SLAB_SIZE or four reads, whichever is larger
 * (measured at 64 KiB reads, 4 interleaved rounds: one read per slab 1.67x
 * the raw loop's CPU, four reads per slab 1.52x, though four 64 KiB reads
 * are above glibc's mmap threshold). The first slab of a connection is one
 * read, and a connection that took longer than QUIET_MS to fill its last
 * slab gets one of SLAB_READS_QUIET reads, so a quiet connection pins little.
 */
const SLAB_SIZE = 64 * 1024;
const SLAB_READS_QUIET = 4;
const QUIET_MS = 1000;
/**
 * How long a slab should last. One that outlives two scavenges (tens of
 * milliseconds apart on a busy server) is promoted, and the bytes of
 * promoted ArrayBuffers count as old-generation memory: at 1 KiB echoes on
 * 50 connections, 64 KiB slabs filled in about 30 ms brought a mark-compact
 * every 100 ms. A slab that took longer than this to fill is followed by
 * one half its size (never less than a read), one filled in under a quarter
 * of it by one twice its size, up to the busy size (measured in V8
 * profiles at 1 KiB x 50: garbage collection plus slab allocation 1.2-1.6
 * µs per round trip before, 1.0 after, against the raw loop's 0.17 of
 * garbage collection).
 */
const SLAB_LIFETIME_MS = 8;
/**
 * A young connection (fewer than YOUNG_BYTES read so far) reads into a
 * region of one slab shared by every transport instead of a slab of its own:
 * a short-lived connection then allocates no ArrayBuffer at all (one costs
 * more than the rest of an accept). A region is never handed out twice: the
 * bytes delivered are the protocol's, and the rest of it is left unused.
 */
const YOUNG_BYTES = 64 * 1024;
/**
 * Big enough for the pending first reads of a burst of new connections
 * (16 KiB each): at 64 KiB, ten connections churning took a new slab every
 * two connections (13 µs of zeroing each on the server's CPU).
 */
const SHARED_SLAB_SIZE = 256 * 1024;
let sharedSlab: Uint8Array = new Uint8Array(0);
let sharedOffset = 0;
/**
 * Unused ends of regions of shared slabs (a stack of buffer, start, end): a
 * read reserves its whole size but delivers only what arrived, and nothing
 * delivered points past that, so the rest is handed out again (a read may
 * get less than it asked for, never less than TAIL_MIN). Without this, 1 KiB
 * reads into 16 KiB regions took a new shared slab every four reads. Ends of
 * an earlier slab are kept too (reads pending when a slab ran out release
 * their regions later), at most MAX_TAILS of them, so they pin few slabs.
 */
const sharedTails: (ArrayBuffer | number)[] = [];
const MAX_TAILS = 32;
/**
 * The least a read is given from the unused end of a slab instead of a new
 * one (only reads of at most MIN_READ_SIZE: larger reads keep their size).
 */
const TAIL_MIN = 4 * 1024;

function sharedRegion(size: number): Uint8Array {
  const tails = sharedTails;
  if (tails.length !== 0 && size <= MIN_READ_SIZE) {
    const end = tails.pop() as number;
    const start = tails.pop() as number;
    const buffer = tails.pop() as ArrayBuffer;
    const length = Math.min(size, end - start);
    if (end - start - length >= TAIL_MIN) {
      tails.push(buffer, start + length, end);
    }
    return new Uint8Array(buffer, start, length);
  }
  if (sharedSlab.length - sharedOffset < size) {
    sharedSlab = new Uint8Array(Math.max(SHARED_SLAB_SIZE, size));
    sharedOffset = 0;
  }
  const region = new Uint8Array(sharedSlab.buffer, sharedOffset, size);
  sharedOffset += (size + 7) & ~7;
  return region;
}

/** A read into `region` delivered its first `n` bytes: the rest is free again. */
function sharedRelease(region: Uint8Array, n: number): void {
  const start = region.byteOffset + ((n + 7) & ~7);
  const end = region.byteOffset + ((region.length + 7) & ~7);
  const buffer = region.buffer as ArrayBuffer;
  if (buffer === sharedSlab.buffer && end === sharedOffset) {
    sharedOffset = start;
  } else if (end - start >= TAIL_MIN && sharedTails.length < MAX_TAILS * 3) {
    sharedTails.push(buffer, start, end);
  }
}
const MAX_COALESCE = 64 * 1024;
/**
 * On a {@linkcode ReadyIo} adapter (the native backend): bytes written in one
 * tick above which they leave before the next connection's read, not after
 * the reactor's whole batch, so what a read brought in is still in cache when
 * it is sent. Ten connections echoing 64 KiB each had read 640 KiB before the
 * first send, and the kernel's copies (`recv` into the buffers, `send` out of
 * them) cost 18 µs per round trip against the C server's 13-15 µs (perf,
 * `rep_movs_alternative`); flushed early, CPU per round trip went from a
 * median of 42.9 to 39.3 µs (8 alternating rounds, 7 faster; system time
 * 36.2 -> 31.0 µs, a noisy machine). Small writes (50 KiB in
 * a batch of 1 KiB echoes) still leave together after the batch. The Deno-API
 * read loop does not flush early: Deno has done a turn's reads before its
 * JavaScript runs, so there is no cache to save (measured: no gain).
 */
const EARLY_FLUSH_BYTES = 64 * 1024;
const LOST_WRITE_WARNING_THRESHOLD = 5;
/**
 * An idle timeout is checked this many times per period: a connection is
 * reaped between 1 and 1 + 1/IDLE_SLICES periods after its last byte, and
 * traffic costs one boolean store per read or write, never a timer re-arm.
 */
const IDLE_SLICES = 4;

/**
 * A {@linkcode Transport} over a {@linkcode StreamIo} adapter. Instances come
 * from `createConnection`, `createServer`, `startTls` and the pipe functions.
 */
export class StreamTransport implements Transport, FailureHost, ReadyListener {
  #io: StreamIo;
  #protocol: BaseProtocol;
  #buffered = false;
  #state: State = STARTING;
  #extra: Record<string, unknown> | null;
  #options: StreamTransportOptions;

  // The write path's promise handlers, made once per transport.
  // (Made at the first write: an idle transport has none.)
  #onWritten: ((n: number) => void) | null = null;
  #onWriteFailed: ((error: unknown) => void) | null = null;

  // Reading.
  #readPaused = false;
  #wake: (() => void) | null = null;
  #loopRunning = false;
  /** The adapter, when it is a ReadyIo (synchronous reads and writes). */
  #ready: ReadyIo | null = null;
  /** Made at the first resumeReading() of a ReadyIo transport. */
  #onResume: (() => void) | null = null;
  #detaching: PromiseWithResolvers<Uint8Array | null | undefined> | null = null;
  #drained: (() => void) | null = null;
  #slab: Uint8Array = EMPTY;
  #slabOffset = 0;
  #slabSince = 0;
  /** Bytes read so far, up to YOUNG_BYTES. */
  #young = 0;
  /** Counted in `openTransports` (until lost or detached). */
  #counted = false;
  #readSize = MIN_READ_SIZE;

  // Writing. `#writing` is the chunk handed to the adapter (its write is in
  // flight); the queued chunks wait behind it and leave joined when it
  // completes: `#next` first, then `#chunks` (the queue is empty when `#next`
  // is null). Most writes are alone in the queue: a field, where an array's
  // push and shift regrew its storage each time (core bench, 1 KiB: about
  // 40 ns per round trip).
  #next: Uint8Array | null = null;
  #chunks: Uint8Array[] | null = null; // made when a second chunk queues
  #writing: Uint8Array = EMPTY;
  #bufferSize = 0;
  /** A write is in flight, or `#startPending`. */
  #flushing = false;
  /** Chunks wait for the queued flush (the end of the tick) to leave. */
  #startPending = false;
  #eofRequested = false;
  #eofSent = false;
  #canWriteEof: boolean;
  /** Made at the first write or setWriteBufferLimits(): an idle transport has none. */
  #flow: FlowControl | null = null;
  #lostWrites = 0;

  // Idle timeout: reads and writes set #idleActive; a timer that runs
  // IDLE_SLICES times per period counts the quiet checks in a row.
  #idleMs: number | null = null;
  #idleActive = false;
  #idleQuiet = 0;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  #idleCheck: (() => void) | null = null;

  // Buffer budget: what this transport charges to it now.
  #budget: BufferBudget | null = null;
  #charged = 0;
  #protocolHeld = 0;

  /**
   * Wraps `io` and schedules `protocol.connectionMade(this)`.
   *
   * @param io The adapter.
   * @param protocol The protocol that receives the callbacks.
   * @param options Extra info and lifecycle hooks.
   */
  constructor(
    io: StreamIo,
    protocol: BaseProtocol,
    options: StreamTransportOptions = {},
  ) {
    this.#io = io;
    if (isReadyIo(io)) {
      this.#ready = io;
      io.listen(this);
    }
    this.#protocol = protocol;
    this.#buffered = isBufferedProtocol(protocol);
    if (typeof io.readSize === "number" && io.readSize >= 1) {
      this.#readSize = Math.min(Math.floor(io.readSize), MAX_READ_SIZE);
    } else {
      this.#counted = true;
      if (++openTransports > SMALL_FIRST_READ_FROM) {
        this.#readSize = SMALL_FIRST_READ_SIZE;
      }
    }
    this.#extra = options.connExtra === true ? null : options.extra ?? {};
    this.#options = options;
    this.#canWriteEof = options.canWriteEof ??
      (typeof io.closeWrite === "function" && typeof io.write === "function");
    if (options.budget !== undefined) this.#budget = options.budget;
    if (options.idleTimeout !== undefined && options.idleTimeout !== null) {
      this.#idleMs = options.idleTimeout;
    }
    options.peerClosed?.then(
      () => this.#peerGone(null),
      (error) => this.#peerGone(toError(error)),
    );
    if (options.connected) {
      this.#state = OPEN;
      this.#armIdle();
      callSoon(() => {
        if (!this.isClosing()) this.#startReading();
      });
    } else {
      callSoon(() => this.#start());
    }
  }

  /** The ReadyIo adapter is readable (internal; called from the reactor). */
  [socketReadable](): void {
    this.#pump();
  }

  /** The ReadyIo adapter is writable again (internal). */
  [socketWritable](): void {
    if (!this.#isLost() && this.#writing !== EMPTY) {
      this.#writeNow(this.#writing);
    }
  }

  /** A protocol callback threw (internal; see invokeCallback). */
  [callbackFailed](name: string, error: unknown): void {
    this.#callbackFailed(name, error);
  }

  // ---------------------------------------------------------------- base

  /**
   * Returns transport information: `peername`, `sockname`, `socket` and
   * whatever the adapter adds; `defaultValue` for an unknown name.
   */
  getExtraInfo(name: string, defaultValue?: unknown): unknown {
    const extra = this.#extra ?? this.#connExtra();
    return Object.hasOwn(extra, name) ? extra[name] : defaultValue;
  }

  /** The extra info of a connection made from its io, on the first ask. */
  #connExtra(): Record<string, unknown> {
    return this.#extra = connExtra(this.#io as unknown as Deno.Conn);
  }

  /** True once `close()` or `abort()` was called or the connection was lost. */
  isClosing(): boolean {
    return this.#state.kind !== "starting" && this.#state.kind !== "open";
  }

  /**
   * Closes the transport: reading stops at once, buffered writes are flushed,
   * then `connectionLost(null)` is called. Idempotent.
   */
  close(): void {
    if (this.#state.kind === "detached") {
      this.#state.target?.close();
      return;
    }
    if (this.isClosing()) return;
    this.#state = CLOSING;
    this.#wakeReader();
    if (this.#bufferSize === 0 && !this.#flushing) this.#forceClose(null);
  }

  /** Replaces the protocol that receives the callbacks. */
  setProtocol(protocol: BaseProtocol): void {
    this.#protocol = checkProtocol(protocol);
    this.#buffered = isBufferedProtocol(protocol);
  }

  /** Returns the current protocol. */
  getProtocol(): BaseProtocol {
    return this.#protocol;
  }

  // ---------------------------------------------------------------- read

  /** True unless reading is paused or the transport is closing. */
  isReading(): boolean {
    return typeof this.#io.read === "function" && !this.#readPaused &&
      !this.isClosing();
  }

  /**
   * Stops delivering data (and EOF) until `resumeReading()`. Bytes of a read
   * already in flight are held, not delivered. Idempotent.
   */
  pauseReading(): void {
    if (!this.isReading()) return;
    this.#readPaused = true;
  }

  /** Resumes delivery, from a queued microtask. Idempotent. */
  resumeReading(): void {
    if (this.isClosing() || !this.#readPaused) return;
    this.#readPaused = false;
    this.#wakeReader();
    this.#repump();
  }

  // ---------------------------------------------------------------- write

  /**
   * Sends `data`: the writes of one tick leave together, handed to the OS
   * from one queued microtask (asyncio sends at once inside `write()`; the
   * bytes leave in the same tick here, joined, and callbacks see no
   * difference). The transport may keep a reference to `data` until it is
   * written: do not modify it afterwards.
   *
   * After the connection is lost (or after `close()`), data is dropped
   * without an error, as asyncio does; a warning is printed once after
   * repeated writes.
   *
   * @throws {TypeError} If `data` is not a Uint8Array.
   * @throws {Error} If `writeEof()` was called.
   */
  write(data: Uint8Array): void {
    assertBytes(data, "write to transport");
    this.#assertWritable();
    if (this.#eofRequested) {
      throw new Error("Cannot write to transport as writeEof() was called");
    }
    if (this.isClosing()) {
      this.#droppedWrite();
      return;
    }
    if (data.length === 0) return;
    this.#append(data);
    this.#maybePause();
  }

  /**
   * Writes each chunk in order; the chunks are checked before any is taken.
   *
   * @throws {TypeError} If `chunks` is not iterable or holds a non-Uint8Array.
   */
  writelines(chunks: Iterable<Uint8Array>): void {
    if (
      chunks === null || typeof chunks !== "object" ||
      typeof (chunks as Iterable<Uint8Array>)[Symbol.iterator] !== "function"
    ) {
      throw new TypeError(
        `Cannot write lines to transport as chunks is not iterable: current value is ${
          describe(chunks)
        }`,
      );
    }
    const list = Array.from(chunks);
    for (const chunk of list) assertBytes(chunk, "write lines to transport");
    this.#assertWritable();
    if (this.#eofRequested) {
      throw new Error("Cannot write to transport as writeEof() was called");
    }
    if (this.isClosing()) {
      this.#droppedWrite();
      return;
    }
    for (const chunk of list) if (chunk.length > 0) this.#append(chunk);
    this.#maybePause();
  }

  /**
   * Shuts down the write side once buffered data is flushed. Idempotent; a
   * no-op once closing.
   *
   * @throws {Error} If this transport cannot half-close (see `canWriteEof`).
   */
  writeEof(): void {
    if (!this.#canWriteEof) {
      throw new Error(
        "Cannot write EOF to transport as it does not support half-close",
      );
    }
    if (this.isClosing() || this.#eofRequested) return;
    this.#eofRequested = true;
    if (!this.#flushing && this.#bufferSize === 0) this.#sendEof();
  }

  /** True when `writeEof()` is supported. */
  canWriteEof(): boolean {
    return this.#canWriteEof;
  }

  /**
   * Closes at once: buffered data is dropped and `connectionLost(null)`
   * follows from a queued microtask. Idempotent.
   */
  abort(): void {
    if (this.#state.kind === "detached") {
      this.#state.target?.abort();
      return;
    }
    this.#forceClose(null);
  }

  /** Bytes accepted by `write()` and not yet confirmed written by the OS. */
  getWriteBufferSize(): number {
    return this.#bufferSize;
  }

  /** The current watermarks. */
  getWriteBufferLimits(): { low: number; high: number } {
    const flow = this.#flow;
    return flow === null
      ? { low: DEFAULT_HIGH_WATER / 4, high: DEFAULT_HIGH_WATER }
      : { low: flow.low, high: flow.high };
  }

  /**
   * Sets the watermarks: `high` alone gives `low = high / 4`, `low` alone
   * gives `high = 4 * low`, neither restores 64 KiB / 16 KiB. May call
   * `pauseWriting()` at once when the buffer is already over the new high.
   *
   * @throws {TypeError} If a limit is not a number.
   * @throws {RangeError} If a limit is negative or NaN, or high < low.
   */
  setWriteBufferLimits(limits?: WriteBufferLimits): void {
    (this.#flow ??= new FlowControl()).setLimits(limits);
    this.#maybePause();
  }

  // ---------------------------------------------------------------- idle

  /**
   * Sets the idle timeout: once no byte has been read or written for `ms`
   * milliseconds, the protocol's `timeoutReached()` is called (from a queued
   * microtask). If it returns `true` the timer starts again; otherwise the
   * transport is aborted and `connectionLost` gets a `Deno.errors.TimedOut`.
   * A transport that is closing (flushing its buffer to a peer that does not
   * read) is aborted without asking. `null` or `0` turns the timeout off; a
   * new value restarts the count. Node's `socket.setTimeout()`, Twisted's
   * `TimeoutMixin.setTimeout()`.
   *
   * The timeout is checked four times per period, so a quiet connection is
   * reaped between `ms` and `1.25 * ms` after its last byte; traffic costs
   * no timer work.
   *
   * @param ms Milliseconds, or `null` (or `0`) for none.
   * @throws {TypeError} If `ms` is not a number or null.
   * @throws {RangeError} If `ms` is negative, NaN or infinite.
   *
   * @example Close connections that stay silent for 30 seconds
   * ```ts
   * import { createServer, type Transport } from "@denio/protocols";
   *
   * await using server = await createServer(() => ({
   *   connectionMade(transport: Transport) {
   *     transport.setIdleTimeout(30_000);
   *   },
   *   timeoutReached() {
   *     return false; // abort: connectionLost gets a Deno.errors.TimedOut
   *   },
   * }), { hostname: "127.0.0.1", port: 0 });
   * ```
   */
  setIdleTimeout(ms: number | null): void {
    const value = checkIdleTimeout(ms, "set idle timeout", true);
    this.#idleMs = value;
    this.#stopIdle();
    if (this.#state.kind === "open" || this.#state.kind === "closing") {
      this.#armIdle();
    }
  }

  // ---------------------------------------------------------------- internals

  #start(): void {
    if (this.#state.kind === "starting") this.#state = OPEN;
    this.#armIdle();
    invokeCallback(
      this.#protocol,
      "connectionMade",
      this,
      this,
    );
    this.#options.onMade?.();
    if (!this.isClosing()) this.#startReading();
  }

  #startReading(): void {
    if (typeof this.#io.read !== "function") return;
    if (this.#ready !== null) this.#pump();
    else this.#readLoop();
  }

  /**
   * A protocol reports how many received bytes it holds now (internal; see
   * {@linkcode reportBuffered}).
   */
  [reportBuffered](bytes: number): void {
    if (this.#budget === null) return;
    const delta = bytes - this.#protocolHeld;
    this.#protocolHeld = bytes;
    if (delta !== 0) this.#charge(delta);
  }

  #charge(delta: number): void {
    const budget = this.#budget!;
    budget.used += delta;
    this.#charged += delta;
    if (delta > 0 && budget.used > budget.limit) {
      const used = budget.used;
      this.#fatalError(
        new RangeError(
          `Cannot buffer more for this connection as the server's maxBufferedBytes of ${budget.limit} is reached: current value is ${used} bytes buffered by all connections`,
        ),
        "Fatal error: the server's buffer limit was reached; connection aborted",
        true,
      );
    }
  }

  /** Stops charging the budget (a detach); returns it for the next owner. */
  #releaseBudget(): BufferBudget | undefined {
    const budget = this.#budget;
    if (budget === null) return undefined;
    budget.used -= this.#charged;
    this.#charged = 0;
    this.#protocolHeld = 0;
    this.#budget = null;
    return budget;
  }

  #armIdle(): void {
    if (this.#idleMs === null) return;
    this.#idleActive = false;
    this.#idleQuiet = 0;
    this.#scheduleIdleCheck();
  }

  #scheduleIdleCheck(): void {
    // Made at the first use: a transport without an idle timeout pays nothing.
    this.#idleCheck ??= () => this.#checkIdle();
    const id = setTimeout(this.#idleCheck, this.#idleMs! / IDLE_SLICES);
    // Like Node's socket timeouts, the timer alone keeps no process alive.
    Deno.unrefTimer(id);
    this.#idleTimer = id;
  }

  #stopIdle(): void {
    if (this.#idleTimer !== undefined) {
      clearTimeout(this.#idleTimer);
      this.#idleTimer = undefined;
    }
  }

  #checkIdle(): void {
    this.#idleTimer = undefined;
    const kind = this.#state.kind;
    if (this.#idleMs === null || (kind !== "open" && kind !== "closing")) {
      return;
    }
    if (this.#idleActive) {
      this.#idleActive = false;
      this.#idleQuiet = 0;
    } else if (++this.#idleQuiet >= IDLE_SLICES) {
      callSoon(() => this.#timedOut());
      return;
    }
    this.#scheduleIdleCheck();
  }

  #timedOut(): void {
    if (this.#idleMs === null || this.#idleTimer !== undefined) return;
    if (this.#state.kind === "open") {
      const keep = invokeCallback(
        this.#protocol,
        "timeoutReached",
        this,
      );
      // setIdleTimeout() from the callback restarted or stopped the timer.
      if (this.#idleMs === null || this.#idleTimer !== undefined) return;
      const kind = this.#state.kind as State["kind"];
      if (kind === "closing") {
        // A graceful close() from the callback: reaped too if the flush stalls.
        this.#armIdle();
        return;
      }
      if (kind !== "open") return;
      if (keep === true) {
        this.#armIdle();
        return;
      }
    } else if (this.#state.kind !== "closing") {
      return;
    }
    this.#forceClose(
      new Deno.errors.TimedOut(
        `No byte was read or written for ${this.#idleMs} ms (idle timeout)`,
      ),
    );
  }

  #wakeReader(): void {
    const wake = this.#wake;
    if (wake !== null) {
      this.#wake = null;
      wake();
    }
  }

  /** A ReadyIo transport reads again from a queued microtask (resumeReading). */
  #repump(): void {
    if (this.#ready !== null && !this.isClosing()) {
      callSoon(this.#onResume ??= () => this.#pump());
    }
  }

  #waitForResume(): Promise<void> {
    return new Promise((resolve) => this.#wake = resolve);
  }

  /** Where the next read lands for a (non-buffered) Protocol. */
  #nextReadBuffer(): Uint8Array {
    const size = this.#readSize;
    if (this.#young < YOUNG_BYTES) return sharedRegion(size);
    const slab = this.#slab;
    const offset = this.#slabOffset;
    const free = slab.length - offset;
    if (free >= size || (free >= TAIL_MIN && size <= MIN_READ_SIZE)) {
      return new Uint8Array(
        slab.buffer,
        slab.byteOffset + offset,
        free >= size ? size : free,
      );
    }
    return this.#newSlab(size);
  }

  /**
   * A read into `target` (from #nextReadBuffer) delivered nothing (EOF, or
   * nothing there): a region of the shared slab is free again (a slab's is
   * simply not counted as used).
   */
  #releaseReadBuffer(target: Uint8Array): void {
    if (this.#young < YOUNG_BYTES) sharedRelease(target, 0);
  }

  #newSlab(size: number): Uint8Array {
    const now = performance.now();
    const last = this.#slab;
    const lasted = now - this.#slabSince;
    this.#slabSince = now;
    this.#slabOffset = 0;
    let length: number;
    if (last === EMPTY) length = size;
    else if (lasted > QUIET_MS) {
      length = Math.min(size * SLAB_READS_QUIET, SLAB_SIZE);
    } else {
      // Sized to be garbage within about SLAB_LIFETIME_MS (see there).
      const busy = Math.max(size * 4, SLAB_SIZE);
      length = lasted > SLAB_LIFETIME_MS
        ? Math.max(size, last.length >> 1)
        : lasted < SLAB_LIFETIME_MS / 4
        ? Math.min(busy, last.length * 2)
        : Math.min(busy, Math.max(size, last.length));
    }
    const slab = new Uint8Array(length);
    this.#slab = slab;
    return length === size ? slab : new Uint8Array(slab.buffer, 0, size);
  }

  /** A read that filled its buffer (`n` of `size`) doubles the next one. */
  #adaptReadSize(n: number, size: number): void {
    if (n < size) return;
    this.#readSize = Math.min(Math.max(size * 2, MIN_READ_SIZE), MAX_READ_SIZE);
  }

  async #readLoop(): Promise<void> {
    const io = this.#io as
      & Required<Pick<StreamIo, "read">>
      & Pick<StreamIo, "readOwned">;
    const canOwn = io.readOwned !== undefined;
    let sawEof = false;
    this.#loopRunning = true;
    try {
      // A detach that woke a paused loop is handed over even though the
      // state is already "detached".
      while (!this.isClosing() || this.#detaching !== null) {
        if (this.#detaching !== null) {
          this.#handOver(undefined);
          return;
        }
        if (this.#readPaused) {
          await this.#waitForResume();
          continue;
        }
        // The kind the read starts with: setProtocol() may switch it while
        // the read is in flight, and the bytes must still arrive.
        const readBuffered = this.#buffered;
        const owned = canOwn && !readBuffered;
        let target: Uint8Array | null;
        let n: number | null;
        if (owned) {
          target = await io.readOwned!(this.#readSize);
          n = target === null ? null : target.length;
          target ??= EMPTY;
        } else {
          target = this.#readBuffer(readBuffered);
          if (target === null) return;
          n = await io.read(target);
        }
        this.#idleActive = true;
        if (this.#detaching !== null) {
          this.#handOver(n === null ? null : target.slice(0, n));
          return;
        }
        if (this.isClosing()) return;
        if (n === 0) continue;
        // Bytes (or EOF) read while paused are held until resumeReading().
        while (this.#readPaused) {
          await this.#waitForResume();
          if (this.#detaching !== null) {
            this.#handOver(n === null ? null : target.slice(0, n));
            return;
          }
          if (this.isClosing()) return;
        }
        sawEof = n === null;
        if (this.#received(target, n, readBuffered, owned)) return;
      }
    } catch (error) {
      if (this.#detaching !== null) {
        const handOver = this.#detaching;
        this.#detaching = null;
        if (this.#state.kind === "detached") {
          // The adapter is the caller's now: the error is theirs too.
          handOver.reject(error);
          return;
        }
        this.#fatalError(error, "Fatal read error on transport");
        return;
      }
      if (this.isClosing() && this.#state.kind !== "closing") return;
      this.#fatalError(error, "Fatal read error on transport");
    } finally {
      this.#loopRunning = false;
      // A detach requested from a callback the loop was running.
      if (this.#detaching !== null) this.#handOver(sawEof ? null : undefined);
    }
  }

  /**
   * The buffer the next read lands in: the protocol's (getBuffer), or the
   * core's for a Protocol. `null` when getBuffer failed (the transport is
   * then closing).
   */
  #readBuffer(readBuffered: boolean): Uint8Array | null {
    if (!readBuffered) return this.#nextReadBuffer();
    const given = this.#callHot(
      (this.#protocol as BufferedProtocol).getBuffer,
      "getBuffer",
      this.#readSize,
    );
    if (this.isClosing()) return null;
    if (!(given instanceof Uint8Array) || given.length === 0) {
      this.#callbackFailed(
        "getBuffer",
        given instanceof Uint8Array
          ? new RangeError(
            "Cannot read into buffer as getBuffer() returned an empty buffer: current value is 0 bytes",
          )
          : new TypeError(
            `Cannot read into buffer as getBuffer() did not return a Uint8Array: current value is ${
              describe(given)
            }`,
          ),
      );
      return null;
    }
    return given;
  }

  /**
   * What a read into `target` brought: EOF (eofReceived; true, the loop
   * ends) or `n` bytes, delivered. `owned`: `target` is the adapter's
   * (`readOwned`), not a region of the core's slabs.
   */
  #received(
    target: Uint8Array,
    n: number | null,
    readBuffered: boolean,
    owned = false,
  ): boolean {
    if (n === null) {
      if (!readBuffered && !owned) this.#releaseReadBuffer(target);
      this.#onEof();
      return true;
    }
    this.#deliver(target, n, readBuffered, owned);
    return false;
  }

  /**
   * The one place where bytes were read (`n` of them, into `target`, for a
   * protocol of the `readBuffered` kind) and are delivered (writes the
   * callback makes leave from the tick's queued flush). `owned`: `target`
   * came from `readOwned` (no slab accounting).
   */
  #deliver(
    target: Uint8Array,
    n: number,
    readBuffered: boolean,
    owned = false,
  ): void {
    // (A Protocol's read given the end of a slab, less than its size,
    // leaves the size as it is.)
    if (readBuffered || target.length === this.#readSize) {
      this.#adaptReadSize(n, target.length);
    }
    if (readBuffered !== this.#buffered) {
      this.#deliverAcross(target.subarray(0, n), readBuffered);
      return;
    }
    if (readBuffered) {
      this.#callHot(
        (this.#protocol as BufferedProtocol).bufferUpdated,
        "bufferUpdated",
        n,
      );
    } else {
      if (!owned) {
        // (An owned read's memory is not the core's: nothing to account.)
        if (this.#young < YOUNG_BYTES) {
          this.#young += n;
          sharedRelease(target, n);
        } else {
          // Keep views 8-byte aligned so a protocol can build typed arrays.
          this.#slabOffset += (n + 7) & ~7;
        }
      }
      this.#callHot(
        (this.#protocol as Protocol).dataReceived,
        "dataReceived",
        n === target.length
          ? target
          : new Uint8Array(target.buffer, target.byteOffset, n),
      );
    }
  }

  /**
   * The read loop of a {@linkcode ReadyIo} adapter, run when the socket is
   * readable (from the reactor) and at the start: reads until the socket is
   * drained, up to READS_PER_WAKE reads, then waits for the next wake-up.
   * No read is ever in flight, so pausing leaves the bytes in the kernel and
   * a detach hands over nothing.
   */
  #pump(): void {
    const io = this.#ready!;
    this.#loopRunning = true;
    let sawEof = false;
    try {
      for (let reads = 0;; reads++) {
        if (this.#detaching !== null || this.isClosing() || this.#readPaused) {
          return;
        }
        if (!io.readyToRead() || reads === READS_PER_WAKE) {
          io.wantRead(true);
          return;
        }
        const readBuffered = this.#buffered;
        const target = this.#readBuffer(readBuffered);
        if (target === null) return;
        let n: number | null;
        try {
          n = io.readNow(target);
        } catch (error) {
          this.#fatalError(error, "Fatal read error on transport");
          return;
        }
        if (n === -1 || n === 0) {
          if (!readBuffered) this.#releaseReadBuffer(target);
          continue;
        }
        this.#idleActive = true;
        sawEof = n === null;
        if (this.#received(target, n, readBuffered)) return;
        StreamTransport.#flushIfLarge();
        if (n === target.length) {
          // A full read: more may be queued, or (a request answered in one
          // read) nothing yet. Read on from the reactor's next turn, once
          // this turn's writes have left and the other ready connections
          // had their reads, rather than ask now for what is most often
          // EAGAIN (measured at 64 KiB echoes: 8 of 8 A/B rounds faster).
          io.wantRead(true);
          return;
        }
      }
    } finally {
      this.#loopRunning = false;
      // A detach requested from a callback the loop was running.
      if (this.#detaching !== null) this.#handOver(sawEof ? null : undefined);
    }
  }

  /**
   * Calls `fn` (the protocol's callback `name`, looked up by the caller with
   * a plain property load, which stays fast where invokeCallback's lookup by
   * name is shared by every callback) as invokeCallback does.
   */
  #callHot(fn: unknown, name: string, arg: unknown): unknown {
    const protocol = this.#protocol;
    if (typeof fn !== "function") {
      return invokeCallback(protocol, name, this, arg);
    }
    try {
      const result: unknown = fn.call(protocol, arg);
      if (result instanceof Promise) {
        result.catch((error: unknown) => this.#callbackFailed(name, error));
        return undefined;
      }
      return result;
    } catch (error) {
      this.#callbackFailed(name, error);
      return undefined;
    }
  }

  /**
   * Delivers bytes read for a protocol of the other kind (setProtocol() ran
   * while the read was in flight), as asyncio's proactor transport does.
   */
  #deliverAcross(bytes: Uint8Array, readBuffered: boolean): void {
    if (readBuffered) {
      // Read into the old protocol's buffer: the new one gets a copy.
      invokeCallback(
        this.#protocol,
        "dataReceived",
        this,
        bytes.slice(),
      );
      return;
    }
    let offset = 0;
    while (offset < bytes.length && !this.isClosing()) {
      const given = invokeCallback(
        this.#protocol,
        "getBuffer",
        this,
        bytes.length - offset,
      );
      if (this.isClosing()) return;
      if (!(given instanceof Uint8Array) || given.length === 0) {
        this.#callbackFailed(
          "getBuffer",
          new RangeError(
            `Cannot read into buffer as getBuffer() returned no space: current value is ${
              describe(given)
            }`,
          ),
        );
        return;
      }
      const count = Math.min(given.length, bytes.length - offset);
      given.set(bytes.subarray(offset, offset + count));
      offset += count;
      invokeCallback(
        this.#protocol,
        "bufferUpdated",
        this,
        count,
      );
    }
  }

  #handOver(bytes: Uint8Array | null | undefined): void {
    const handOver = this.#detaching;
    this.#detaching = null;
    handOver?.resolve(bytes);
  }

  /**
   * Detaches the adapter for an upgrade: reading stops (the bytes of a read
   * in flight are handed over, never delivered), buffered writes are flushed,
   * and the transport ends without calling `connectionLost`; the caller now
   * owns the adapter and the protocol.
   *
   * @throws {Error} If the transport is closing or has written EOF.
   */
  async [detachIo](): Promise<DetachedIo> {
    if (this.isClosing() || this.#detaching !== null) {
      throw new Error("Cannot upgrade transport as it is closing");
    }
    if (this.#eofRequested) {
      throw new Error("Cannot upgrade transport as writeEof() was called");
    }
    const first = Promise.withResolvers<Uint8Array | null | undefined>();
    if (this.#loopRunning) {
      // The loop hands over at its next step (a read in flight, a paused
      // wait, or the return from a callback such as dataReceived).
      this.#detaching = first;
      this.#wakeReader();
    } else {
      // No read loop running (not started yet, or ended at EOF).
      first.resolve(undefined);
    }
    if (this.#flushing || this.#bufferSize > 0) {
      await new Promise<void>((resolve) => this.#drained = resolve);
    }
    const kind = this.#state.kind;
    if (kind !== "open" && kind !== "starting") {
      throw new Error("Cannot upgrade transport as the connection was lost");
    }
    const state: Extract<State, { kind: "detached" }> = {
      kind: "detached",
      target: null,
    };
    this.#state = state;
    this.#stopIdle();
    this.#uncount();
    this.#ready?.listen(null);
    let onLost = this.#options.onLost;
    return {
      io: this.#io,
      firstRead: first.promise,
      onLost: () => {
        const hook = onLost;
        onLost = undefined;
        hook?.(this);
      },
      forward: (target) => state.target = target,
      idleTimeout: this.#idleMs,
      budget: this.#releaseBudget(),
    };
  }

  #onEof(): void {
    const keepOpen = invokeCallback(
      this.#protocol,
      "eofReceived",
      this,
    );
    if (this.isClosing()) return;
    if (!keepOpen || !this.#canWriteEof) this.close();
  }

  /**
   * Queues `data`. Writes made in one tick leave together, from one queued
   * microtask. Inside dataReceived/bufferUpdated that microtask runs after
   * the other reads that completed with this one were delivered (their
   * continuations are queued already; on the native backend, after the
   * reactor's whole batch), so the sends of a tick leave back to back after
   * all of its callbacks ran: sending from the read loop, between two
   * connections' callbacks, measured 1.35x the raw loop's CPU at 1 KiB x 50
   * connections, this 1.16x (5 interleaved rounds; the README has the bench
   * runs), with the same system calls. The exception: on a ReadyIo adapter,
   * once a batch's writes reach {@linkcode EARLY_FLUSH_BYTES} they leave
   * right after the callback that brought them there.
   */
  #append(data: Uint8Array): void {
    this.#bufferSize += data.length;
    if (this.#next === null) this.#next = data;
    else (this.#chunks ??= []).push(data);
    if (this.#budget !== null) this.#charge(data.length);
    if (this.#flushing) {
      if (this.#startPending) StreamTransport.#tickBytes += data.length;
      return;
    }
    StreamTransport.#tickBytes += data.length;
    this.#flushing = true;
    this.#startPending = true;
    // The first transport of the tick schedules the flush of them all.
    if (StreamTransport.#flushQueue.push(this) === 1) {
      queueMicrotask(StreamTransport.#runFlushes);
    }
  }

  /**
   * Transports with writes of this tick waiting, in the order of their first
   * write: one queued microtask flushes them all (a microtask per transport
   * cost more than its flush at 1 KiB).
   */
  static #flushQueue: StreamTransport[] = [];
  static #spareQueue: StreamTransport[] = [];
  /** Bytes the transports in {@linkcode #flushQueue} have waiting. */
  static #tickBytes = 0;
  /** True while {@linkcode #runFlushes} runs (a callback may read). */
  static #inFlushes = false;

  /**
   * After a delivery: the writes queued so far this tick leave now if they
   * are many bytes (see {@linkcode EARLY_FLUSH_BYTES}). The queued microtask
   * then finds nothing left to start.
   */
  static #flushIfLarge(): void {
    if (
      StreamTransport.#tickBytes >= EARLY_FLUSH_BYTES &&
      !StreamTransport.#inFlushes
    ) {
      StreamTransport.#runFlushes();
    }
  }

  static #runFlushes = (): void => {
    const queue = StreamTransport.#flushQueue;
    StreamTransport.#tickBytes = 0;
    // Writes made while these flush (a resumeWriting callback) queue anew.
    StreamTransport.#flushQueue = StreamTransport.#spareQueue;
    StreamTransport.#inFlushes = true;
    for (let i = 0; i < queue.length; i++) {
      try {
        queue[i]!.#flushPending();
      } catch (error) {
        callExceptionHandler({
          message: "Error flushing a transport's writes",
          error,
          transport: queue[i]!,
        });
      }
    }
    StreamTransport.#inFlushes = false;
    queue.length = 0;
    StreamTransport.#spareQueue = queue;
  };

  /** Starts the write of the chunks queued this tick, if still wanted. */
  #flushPending(): void {
    if (!this.#startPending) return;
    this.#startPending = false;
    if (this.#isLost() || this.#next === null) {
      this.#flushing = false;
      return;
    }
    this.#startWrite(this.#takeChunk());
  }

  /** Hands `chunk` to the adapter; {@linkcode #written} continues. */
  #startWrite(chunk: Uint8Array): void {
    this.#flushing = true;
    if (this.#ready !== null) {
      this.#writeNow(chunk);
      return;
    }
    this.#writing = chunk;
    let pending: Promise<number>;
    try {
      pending = this.#io.write!(chunk);
    } catch (error) {
      // Reported from a promise reaction, as a rejection would be: never
      // inside the caller's write().
      pending = Promise.reject(error);
    }
    pending.then(
      this.#onWritten ??= (n) => this.#written(n),
      this.#onWriteFailed ??= (error) => this.#writeFailed(error),
    );
  }

  /**
   * Writes on a {@linkcode ReadyIo} adapter: chunk after chunk while the
   * socket takes them, then waits for it to be writable again.
   */
  #writeNow(first: Uint8Array): void {
    const io = this.#ready!;
    let chunk: Uint8Array | null = first;
    while (chunk !== null) {
      let n: number;
      try {
        n = io.writeNow(chunk);
      } catch (error) {
        this.#writeFailed(error);
        return;
      }
      this.#writing = chunk;
      if (n === -1) {
        io.wantWrite(true);
        return;
      }
      chunk = this.#wrote(n);
    }
  }

  /** Takes the next chunk to hand to the OS (queued), joining small ones. */
  #takeChunk(): Uint8Array {
    const first = this.#next!;
    const chunks = this.#chunks;
    if (chunks === null || chunks.length === 0) {
      this.#next = null;
      return first;
    }
    if (first.length >= MAX_COALESCE) {
      this.#next = chunks.shift()!;
      return first;
    }
    // `count` chunks of `chunks` join `first`.
    let total = first.length;
    let count = 0;
    while (count < chunks.length) {
      const size = chunks[count]!.length;
      if (total + size > MAX_COALESCE) break;
      total += size;
      count++;
    }
    if (count === 0) {
      this.#next = chunks.shift()!;
      return first;
    }
    const joined = new Uint8Array(total);
    joined.set(first, 0);
    let offset = first.length;
    for (let i = 0; i < count; i++) {
      const chunk = chunks[i]!;
      joined.set(chunk, offset);
      offset += chunk.length;
    }
    if (count === chunks.length) {
      chunks.length = 0;
      this.#next = null;
    } else {
      this.#next = chunks[count]!;
      chunks.splice(0, count + 1);
    }
    return joined;
  }

  /** A write the adapter's promise confirmed: see {@linkcode #wrote}. */
  #written(n: number): void {
    const next = this.#wrote(n);
    if (next !== null) this.#startWrite(next);
  }

  /**
   * The one place where the OS confirmed `n` bytes written: the buffer
   * shrinks; returns what to hand over next (the rest of the chunk, or the
   * next one), or null when the buffer is flushed or the transport lost.
   */
  #wrote(n: number): Uint8Array | null {
    const kind = this.#state.kind;
    if (kind === "lost" || kind === "closed") return null;
    this.#idleActive = true;
    this.#bufferSize -= n;
    if (this.#budget !== null) this.#charge(-n);
    const chunk = this.#writing;
    this.#writing = EMPTY;
    this.#maybeResume();
    if (this.#isLost()) return null;
    if (n < chunk.length) return chunk.subarray(n);
    if (this.#next !== null) return this.#takeChunk();
    this.#flushing = false;
    if (this.#drained !== null) {
      const drained = this.#drained;
      this.#drained = null;
      drained();
    }
    if (this.#eofRequested && !this.#eofSent) this.#sendEof();
    if (this.#state.kind === "closing") this.#forceClose(null);
    return null;
  }

  /** Read through a method so the narrowing of `#state` does not stick. */
  #isLost(): boolean {
    const kind = this.#state.kind;
    return kind === "lost" || kind === "closed";
  }

  #writeFailed(error: unknown): void {
    this.#flushing = false;
    this.#startPending = false;
    this.#writing = EMPTY;
    if (this.#state.kind === "lost" || this.#state.kind === "closed") return;
    this.#fatalError(error, "Fatal write error on transport");
  }

  #sendEof(): void {
    this.#eofSent = true;
    this.#io.closeWrite!().catch((error) => {
      if (this.#state.kind === "lost" || this.#state.kind === "closed") return;
      this.#fatalError(error, "Fatal error on transport while writing EOF");
    });
  }

  #assertWritable(): void {
    if (typeof this.#io.write !== "function") {
      throw new TypeError(
        "Cannot write to transport as it is read-only: current value is a read pipe",
      );
    }
  }

  #maybePause(): void {
    if ((this.#flow ??= new FlowControl()).shouldPause(this.#bufferSize)) {
      invokeCallback(this.#protocol, "pauseWriting", this);
    }
  }

  #maybeResume(): void {
    if (this.#flow?.shouldResume(this.#bufferSize)) {
      invokeCallback(this.#protocol, "resumeWriting", this);
    }
  }

  #droppedWrite(): void {
    this.#lostWrites++;
    if (this.#lostWrites === LOST_WRITE_WARNING_THRESHOLD) {
      console.warn(
        `denio: ${LOST_WRITE_WARNING_THRESHOLD} writes to a closed transport were dropped`,
      );
    }
  }

  #peerGone(error: Error | null): void {
    if (this.#state.kind === "lost" || this.#state.kind === "closed") return;
    this.#forceClose(error ?? new Deno.errors.BrokenPipe("The reader closed"));
  }

  #callbackFailed(name: string, error: unknown): void {
    this.#fatalError(
      error,
      `Fatal error: protocol.${name}() call failed`,
      true,
    );
  }

  #fatalError(error: unknown, message: string, always = false): void {
    if (always || !isPeerGone(error)) {
      callExceptionHandler({
        message,
        error,
        transport: this,
        protocol: this.#protocol,
      });
    }
    this.#forceClose(toError(error));
  }

  /** The single teardown funnel: every path to connectionLost goes here. */
  #forceClose(error: Error | null): void {
    const kind = this.#state.kind;
    if (kind === "lost" || kind === "closed" || kind === "detached") return;
    this.#state = { kind: "lost", error };
    this.#stopIdle();
    this.#next = null;
    if (this.#chunks !== null) this.#chunks.length = 0;
    this.#writing = EMPTY;
    this.#bufferSize = 0;
    if (this.#budget !== null) {
      this.#budget.used -= this.#charged;
      this.#charged = 0;
      this.#budget = null;
    }
    let closing: void | Promise<void> = undefined;
    try {
      closing = this.#io.close(error);
    } catch {
      // Already closed by the peer or the runtime: nothing left to release.
    }
    this.#wakeReader();
    const drained = this.#drained;
    this.#drained = null;
    drained?.();
    const lost = () => this.#callConnectionLost(error);
    if (closing instanceof Promise) closing.then(lost, lost);
    else callSoon(lost);
  }

  #uncount(): void {
    if (this.#counted) {
      this.#counted = false;
      openTransports--;
    }
  }

  #callConnectionLost(error: Error | null): void {
    this.#uncount();
    try {
      invokeConnectionLost(this, this.#protocol, error);
    } finally {
      this.#state = CLOSED;
      this.#slab = EMPTY;
      this.#options.onLost?.(this);
    }
  }
}

const EMPTY = new Uint8Array(0);

/** A BufferedProtocol has getBuffer and no dataReceived. */
export function isBufferedProtocol(
  protocol: BaseProtocol,
): protocol is BufferedProtocol {
  return typeof (protocol as BufferedProtocol).getBuffer === "function" &&
    typeof (protocol as Protocol).dataReceived !== "function";
}

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
  callSoon,
  invokeCallback,
  invokeConnectionLost,
  isPeerGone,
  toError,
} from "./_call_soon.ts";
import { FlowControl, type WriteBufferLimits } from "./_flow_control.ts";
import { assertBytes, checkProtocol, describe } from "./_validate.ts";
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
   * Optional, for readiness-based adapters (the native reactor): resolves
   * once a `read` would not wait (bytes, EOF or an error are there), or
   * returns `undefined` when that is already so. The core then takes its
   * read buffer (for a Protocol) only when bytes are ready, so an idle
   * connection pins none.
   */
  waitReadable?(): Promise<void> | undefined;
  /**
   * Releases the resource; pending reads and writes then fail. `error` is
   * why (`null` for a clean close or an abort). A returned promise delays
   * `connectionLost` until it settles (a TLS tunnel draining).
   */
  close(error?: Error | null): void | Promise<void>;
}

/** Options of the {@linkcode StreamTransport} constructor. */
export interface StreamTransportOptions {
  /** What `getExtraInfo` answers. */
  extra?: Record<string, unknown>;
  /** Called once, right after `connectionMade` returned. */
  onMade?: () => void;
  /** Called once, after `connectionLost` returned (or threw). */
  onLost?: () => void;
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
}

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

const INITIAL_READ_SIZE = 16 * 1024;
const MAX_READ_SIZE = 64 * 1024;
const MAX_COALESCE = 64 * 1024;
const LOST_WRITE_WARNING_THRESHOLD = 5;

/**
 * A {@linkcode Transport} over a {@linkcode StreamIo} adapter. Instances come
 * from `createConnection`, `createServer`, `startTls` and the pipe functions.
 */
export class StreamTransport implements Transport {
  #io: StreamIo;
  #protocol: BaseProtocol;
  #buffered = false;
  #state: State = { kind: "starting" };
  #extra: Record<string, unknown>;
  #options: StreamTransportOptions;
  #onCallbackError: (name: string, error: unknown) => void;
  #startFlush: () => void;

  // Reading.
  #readPaused = false;
  #wake: (() => void) | null = null;
  #readInFlight = false;
  #loopRunning = false;
  #detaching: PromiseWithResolvers<Uint8Array | null | undefined> | null = null;
  #drained: (() => void) | null = null;
  #slab: Uint8Array = new Uint8Array(0);
  #slabOffset = 0;
  #readSize = INITIAL_READ_SIZE;

  // Writing.
  #chunks: Uint8Array[] = [];
  #bufferSize = 0;
  #flushing = false;
  #eofRequested = false;
  #eofSent = false;
  #canWriteEof: boolean;
  #flow = new FlowControl();
  #lostWrites = 0;

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
    this.#protocol = protocol;
    this.#buffered = isBufferedProtocol(protocol);
    this.#extra = options.extra ?? {};
    this.#options = options;
    this.#canWriteEof = options.canWriteEof ??
      (typeof io.closeWrite === "function" && typeof io.write === "function");
    this.#onCallbackError = (name, error) => this.#callbackFailed(name, error);
    this.#startFlush = () => void this.#flush();
    options.peerClosed?.then(
      () => this.#peerGone(null),
      (error) => this.#peerGone(toError(error)),
    );
    if (options.connected) {
      this.#state = { kind: "open" };
      callSoon(() => {
        if (!this.isClosing() && typeof io.read === "function") {
          this.#readLoop();
        }
      });
    } else {
      callSoon(() => this.#start());
    }
  }

  // ---------------------------------------------------------------- base

  /**
   * Returns transport information: `peername`, `sockname`, `socket` and
   * whatever the adapter adds; `defaultValue` for an unknown name.
   */
  getExtraInfo(name: string, defaultValue?: unknown): unknown {
    return Object.hasOwn(this.#extra, name) ? this.#extra[name] : defaultValue;
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
    this.#state = { kind: "closing" };
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
  }

  // ---------------------------------------------------------------- write

  /**
   * Buffers `data` and sends it soon; writes made in the same tick leave
   * together. The transport may keep a reference to `data` until it is
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
    return { low: this.#flow.low, high: this.#flow.high };
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
    this.#flow.setLimits(limits);
    this.#maybePause();
  }

  // ---------------------------------------------------------------- internals

  #start(): void {
    if (this.#state.kind === "starting") this.#state = { kind: "open" };
    invokeCallback(
      this.#protocol,
      "connectionMade",
      this.#onCallbackError,
      this,
    );
    this.#options.onMade?.();
    if (!this.isClosing() && typeof this.#io.read === "function") {
      this.#readLoop();
    }
  }

  #wakeReader(): void {
    const wake = this.#wake;
    if (wake !== null) {
      this.#wake = null;
      wake();
    }
  }

  #waitForResume(): Promise<void> {
    return new Promise((resolve) => this.#wake = resolve);
  }

  /** Where the next read lands for a (non-buffered) Protocol. */
  #nextReadBuffer(): Uint8Array {
    if (this.#slab.length - this.#slabOffset < this.#readSize) {
      this.#slab = new Uint8Array(this.#readSize * 4);
      this.#slabOffset = 0;
    }
    return this.#slab.subarray(
      this.#slabOffset,
      this.#slabOffset + this.#readSize,
    );
  }

  async #readLoop(): Promise<void> {
    const io = this.#io as Required<Pick<StreamIo, "read">>;
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
        // A BufferedProtocol's getBuffer() is still called up front, as
        // on every adapter: only the core's own read buffer waits.
        const ready = this.#buffered ? undefined : this.#io.waitReadable?.();
        if (ready !== undefined) {
          await ready;
          continue;
        }
        let target: Uint8Array;
        // The kind the read starts with: setProtocol() may switch it while
        // the read is in flight, and the bytes must still arrive.
        const readBuffered = this.#buffered;
        if (readBuffered) {
          const given = invokeCallback(
            this.#protocol,
            "getBuffer",
            this.#onCallbackError,
            this.#readSize,
          );
          if (this.isClosing()) return;
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
            return;
          }
          target = given;
        } else {
          target = this.#nextReadBuffer();
        }
        this.#readInFlight = true;
        let n: number | null;
        try {
          n = await io.read(target);
        } finally {
          this.#readInFlight = false;
        }
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
        if (n === null) {
          sawEof = true;
          this.#onEof();
          return;
        }
        if (n === target.length && this.#readSize < MAX_READ_SIZE) {
          this.#readSize *= 2;
        }
        if (readBuffered !== this.#buffered) {
          this.#deliverAcross(target.subarray(0, n), readBuffered);
        } else if (readBuffered) {
          invokeCallback(
            this.#protocol,
            "bufferUpdated",
            this.#onCallbackError,
            n,
          );
        } else {
          // Keep views 8-byte aligned so a protocol can build typed arrays.
          this.#slabOffset += (n + 7) & ~7;
          invokeCallback(
            this.#protocol,
            "dataReceived",
            this.#onCallbackError,
            n === target.length ? target : target.subarray(0, n),
          );
        }
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
   * Delivers bytes read for a protocol of the other kind (setProtocol() ran
   * while the read was in flight), as asyncio's proactor transport does.
   */
  #deliverAcross(bytes: Uint8Array, readBuffered: boolean): void {
    if (readBuffered) {
      // Read into the old protocol's buffer: the new one gets a copy.
      invokeCallback(
        this.#protocol,
        "dataReceived",
        this.#onCallbackError,
        bytes.slice(),
      );
      return;
    }
    let offset = 0;
    while (offset < bytes.length && !this.isClosing()) {
      const given = invokeCallback(
        this.#protocol,
        "getBuffer",
        this.#onCallbackError,
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
        this.#onCallbackError,
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
    let onLost = this.#options.onLost;
    return {
      io: this.#io,
      firstRead: first.promise,
      onLost: () => {
        const hook = onLost;
        onLost = undefined;
        hook?.();
      },
      forward: (target) => state.target = target,
    };
  }

  #onEof(): void {
    const keepOpen = invokeCallback(
      this.#protocol,
      "eofReceived",
      this.#onCallbackError,
    );
    if (this.isClosing()) return;
    if (!keepOpen || !this.#canWriteEof) this.close();
  }

  #append(data: Uint8Array): void {
    this.#chunks.push(data);
    this.#bufferSize += data.length;
    if (!this.#flushing) {
      this.#flushing = true;
      // Deferred to a microtask so writes made in the same tick coalesce.
      queueMicrotask(this.#startFlush);
    }
  }

  /** Takes the next chunk to hand to the OS, joining small ones. */
  #takeChunk(): Uint8Array {
    const chunks = this.#chunks;
    const first = chunks[0]!;
    if (chunks.length === 1 || first.length >= MAX_COALESCE) {
      chunks.shift();
      return first;
    }
    let total = 0;
    let count = 0;
    while (count < chunks.length) {
      const size = chunks[count]!.length;
      if (count > 0 && total + size > MAX_COALESCE) break;
      total += size;
      count++;
    }
    if (count === 1) {
      chunks.shift();
      return first;
    }
    const joined = new Uint8Array(total);
    let offset = 0;
    for (const chunk of chunks.splice(0, count)) {
      joined.set(chunk, offset);
      offset += chunk.length;
    }
    return joined;
  }

  async #flush(): Promise<void> {
    const io = this.#io;
    try {
      if (typeof io.write !== "function") {
        throw new Error("Cannot write to transport as it is read-only");
      }
      while (this.#chunks.length > 0) {
        let chunk = this.#takeChunk();
        while (chunk.length > 0) {
          const n = await io.write(chunk);
          if (this.#state.kind === "lost" || this.#state.kind === "closed") {
            return;
          }
          this.#bufferSize -= n;
          chunk = n === chunk.length ? EMPTY : chunk.subarray(n);
          this.#maybeResume();
        }
      }
      this.#flushing = false;
      if (this.#state.kind === "lost" || this.#state.kind === "closed") return;
      if (this.#drained !== null) {
        const drained = this.#drained;
        this.#drained = null;
        drained();
      }
      if (this.#eofRequested && !this.#eofSent) this.#sendEof();
      if (this.#state.kind === "closing") this.#forceClose(null);
    } catch (error) {
      this.#flushing = false;
      if (this.#state.kind === "lost" || this.#state.kind === "closed") return;
      this.#fatalError(error, "Fatal write error on transport");
    }
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
    if (this.#flow.shouldPause(this.#bufferSize)) {
      invokeCallback(this.#protocol, "pauseWriting", this.#onCallbackError);
    }
  }

  #maybeResume(): void {
    if (this.#flow.shouldResume(this.#bufferSize)) {
      invokeCallback(this.#protocol, "resumeWriting", this.#onCallbackError);
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
    this.#chunks.length = 0;
    this.#bufferSize = 0;
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

  #callConnectionLost(error: Error | null): void {
    try {
      invokeConnectionLost(this, this.#protocol, error);
    } finally {
      this.#state = { kind: "closed" };
      this.#slab = EMPTY;
      this.#options.onLost?.();
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

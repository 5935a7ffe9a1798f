// Copyright 2026 the denio authors. MIT license.
// Helpers of the pipe and subprocess tests: recording protocols, bounded
// waits, a captured exception handler.

import {
  type ExceptionContext,
  type Protocol,
  type ReadTransport,
  setExceptionHandler,
  type SubprocessProtocol,
  type SubprocessTransport,
} from "../mod.ts";
import { within as withinMs } from "./_timing.ts";

/** How long a test waits for one expected event before failing. */
export const WAIT_MS = 20_000;

/** Rejects if `promise` does not settle within `ms`; the timer is always cleared. */
export function within<T>(
  promise: Promise<T>,
  what: string,
  ms: number = WAIT_MS,
): Promise<T> {
  return withinMs(promise, what, ms);
}

/** Lets queued microtasks and a few rounds of I/O callbacks run. */
export async function ticks(count = 5): Promise<void> {
  for (let i = 0; i < count; i++) {
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

/** Joins chunks into one array. */
export function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/** A deterministic byte pattern of `size` bytes (xorshift from `seed`). */
export function pattern(size: number, seed = 1): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A byte stream answering BYOB reads from `data` (see {@linkcode byteSource}). */
export interface ByteSource {
  stream: ReadableStream<Uint8Array>;
  /** Pulls so far. */
  pulls(): number;
}

/**
 * A byte `ReadableStream` that answers each BYOB request from `data`, then
 * closes: pull number `pull` (from 0) answers at most `size(pull, offset)`
 * bytes, never more than the request's view; `before(pull)` is awaited
 * first.
 */
export function byteSource(
  data: Uint8Array,
  size: (pull: number, offset: number) => number,
  before?: (pull: number) => Promise<void> | void,
): ByteSource {
  let offset = 0;
  let pulls = 0;
  const stream = new ReadableStream({
    type: "bytes",
    async pull(controller) {
      const request = controller.byobRequest!;
      const pull = pulls++;
      await before?.(pull);
      if (offset >= data.length) {
        controller.close();
        request.respond(0);
        return;
      }
      const view = new Uint8Array(
        request.view!.buffer,
        request.view!.byteOffset,
        request.view!.byteLength,
      );
      const n = Math.min(view.length, size(pull, offset), data.length - offset);
      view.set(data.subarray(offset, offset + n));
      offset += n;
      request.respond(n);
    },
  });
  return { stream, pulls: () => pulls };
}

/** Replaces the exception handler with one that records; restore with `using`. */
export function captureExceptions(): ExceptionContext[] & Disposable {
  const seen = [] as unknown as ExceptionContext[] & Disposable;
  setExceptionHandler((context) => seen.push(context));
  seen[Symbol.dispose] = () => setExceptionHandler(null);
  return seen;
}

/**
 * A stream protocol that records each callback (consecutive data collapses
 * into one "dataReceived" entry) and keeps the bytes.
 */
export class StreamRecorder implements Protocol {
  events: string[] = [];
  chunks: Uint8Array[] = [];
  transport: ReadTransport | undefined;
  lostError: Error | null | undefined;
  readonly lost: PromiseWithResolvers<Error | null> = Promise.withResolvers<
    Error | null
  >();

  connectionMade(transport: ReadTransport): void {
    this.transport = transport;
    this.events.push("connectionMade");
  }
  dataReceived(data: Uint8Array): void {
    if (this.events.at(-1) !== "dataReceived") this.events.push("dataReceived");
    this.chunks.push(data.slice());
  }
  eofReceived(): void {
    this.events.push("eofReceived");
  }
  pauseWriting(): void {
    this.events.push("pauseWriting");
  }
  resumeWriting(): void {
    this.events.push("resumeWriting");
  }
  connectionLost(error: Error | null): void {
    this.events.push(
      error === null ? "connectionLost(null)" : "connectionLost(error)",
    );
    this.lostError = error;
    this.lost.resolve(error);
  }
  text(): string {
    return new TextDecoder().decode(concat(this.chunks));
  }
}

/** A subprocess protocol that records every callback with its fd. */
export class SubprocessRecorder implements SubprocessProtocol {
  events: string[] = [];
  out: Uint8Array[][] = [[], [], []];
  transport: SubprocessTransport | undefined;
  pipeErrors: (Error | null | undefined)[] = [undefined, undefined, undefined];
  lostError: Error | null | undefined;
  returncodeAtExit: number | null | undefined;
  readonly exited: PromiseWithResolvers<void> = Promise.withResolvers<void>();
  readonly lost: PromiseWithResolvers<Error | null> = Promise.withResolvers<
    Error | null
  >();

  connectionMade(transport: SubprocessTransport): void {
    this.transport = transport;
    this.events.push("connectionMade");
  }
  pipeDataReceived(fd: 1 | 2, data: Uint8Array): void {
    const entry = `pipeDataReceived(${fd})`;
    if (this.events.at(-1) !== entry) this.events.push(entry);
    this.out[fd]!.push(data.slice());
  }
  pipeConnectionLost(fd: 0 | 1 | 2, error: Error | null): void {
    this.events.push(
      `pipeConnectionLost(${fd}, ${error === null ? "null" : "error"})`,
    );
    this.pipeErrors[fd] = error;
  }
  processExited(): void {
    this.events.push("processExited");
    this.returncodeAtExit = this.transport?.getReturncode();
    this.exited.resolve();
  }
  pauseWriting(): void {
    this.events.push("pauseWriting");
  }
  resumeWriting(): void {
    this.events.push("resumeWriting");
  }
  connectionLost(error: Error | null): void {
    this.events.push(
      error === null ? "connectionLost(null)" : "connectionLost(error)",
    );
    this.lostError = error;
    this.lost.resolve(error);
  }
  text(fd: 1 | 2): string {
    return new TextDecoder().decode(concat(this.out[fd]!));
  }
  /** The events that mention `fd`, in order. */
  eventsOf(fd: 0 | 1 | 2): string[] {
    return this.events.filter((event) => event.includes(`(${fd}`));
  }
}

// Copyright 2026 the denio authors. MIT license.
// One direction of an in-memory connection, the "kernel socket buffer" of the
// test kit: a bounded queue of chunks between one writer and one reader.
//
// - write() accepts as many bytes as there is room for (a partial write, as a
//   non-blocking socket) and waits while the queue is full.
// - read() returns the bytes of one queued chunk (at most the buffer's size),
//   so each write (or each send() of a test) arrives in its own read.
// - end() is the writer's shutdown: the reader gets the queued data, then EOF.
// - closeReader() is the reader's close: the queue is dropped, a pending read
//   ends with EOF, and later writes fail with BrokenPipe.
// - reset() fails every pending and later read and write with the error.
//
// Everything settles from promise reactions (microtasks), never timers.

interface PendingWrite {
  data: Uint8Array;
  resolve: (n: number) => void;
  reject: (error: Error) => void;
}

interface PendingRead {
  buffer: Uint8Array | null; // null: take() wants the whole chunk
  resolve: (value: number | Uint8Array | null | undefined) => void;
  reject: (error: Error) => void;
}

export class MemoryChannel {
  readonly capacity: number;
  #chunks: Uint8Array[] = [];
  #size = 0;
  #ended = false;
  #readerClosed = false;
  #error: Error | null = null;
  #reader: PendingRead | null = null;
  #writers: PendingWrite[] = [];

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  /** Bytes queued and not yet read. */
  get size(): number {
    return this.#size;
  }

  /** Whether the writer shut down. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Accepts up to the room left; waits while the queue is full. */
  write(data: Uint8Array): Promise<number> {
    const failure = this.#writeFailure();
    if (failure !== null) return Promise.reject(failure);
    if (data.length === 0) return Promise.resolve(0);
    if (this.#writers.length === 0 && this.#size < this.capacity) {
      return Promise.resolve(this.#accept(data));
    }
    return new Promise((resolve, reject) => {
      this.#writers.push({ data, resolve, reject });
    });
  }

  /** Queues `data` whatever the room (a test's send). */
  push(data: Uint8Array): void {
    if (this.#ended || this.#readerClosed || this.#error !== null) return;
    if (data.length === 0) return;
    this.#chunks.push(data.slice());
    this.#size += data.length;
    this.#serveReader();
  }

  /** Reads the bytes of one chunk into `buffer`; `null` at EOF. */
  read(buffer: Uint8Array): Promise<number | null> {
    return this.#read(buffer) as Promise<number | null>;
  }

  /** Takes the next whole chunk; `null` at EOF, `undefined` if cancelled. */
  take(): Promise<Uint8Array | null | undefined> {
    return this.#read(null) as Promise<Uint8Array | null | undefined>;
  }

  /** Ends a pending take() with `undefined`, taking nothing. */
  cancelTake(): void {
    const reader = this.#reader;
    if (reader === null || reader.buffer !== null) return;
    this.#reader = null;
    reader.resolve(undefined);
  }

  /** The writer's shutdown: EOF after the queued data. Idempotent. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    for (const writer of this.#writers.splice(0)) writer.resolve(0);
    this.#serveReader();
  }

  /** The reader's close: drop the queue; later writes fail. Idempotent. */
  closeReader(): void {
    if (this.#readerClosed) return;
    this.#readerClosed = true;
    this.#chunks.length = 0;
    this.#size = 0;
    const reader = this.#reader;
    this.#reader = null;
    reader?.resolve(null);
    const failure = this.#writeFailure()!;
    for (const writer of this.#writers.splice(0)) writer.reject(failure);
  }

  /** A connection reset: every pending and later operation fails. */
  reset(error: Error): void {
    if (this.#error !== null || this.#readerClosed) return;
    this.#error = error;
    this.#chunks.length = 0;
    this.#size = 0;
    const reader = this.#reader;
    this.#reader = null;
    reader?.reject(error);
    for (const writer of this.#writers.splice(0)) writer.reject(error);
  }

  #writeFailure(): Error | null {
    if (this.#error !== null) return this.#error;
    if (this.#readerClosed) {
      return new Deno.errors.BrokenPipe(
        "The peer closed the in-memory connection",
      );
    }
    if (this.#ended) {
      return new Deno.errors.BrokenPipe(
        "The in-memory connection was shut down for writing",
      );
    }
    return null;
  }

  #accept(data: Uint8Array): number {
    const n = Math.min(data.length, this.capacity - this.#size);
    this.#chunks.push(data.slice(0, n));
    this.#size += n;
    this.#serveReader();
    return n;
  }

  #read(
    buffer: Uint8Array | null,
  ): Promise<number | Uint8Array | null | undefined> {
    if (this.#reader !== null) {
      return Promise.reject(
        new Deno.errors.Busy("A read is already pending on this connection"),
      );
    }
    if (this.#error !== null) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      this.#reader = { buffer, resolve, reject };
      this.#serveReader();
    });
  }

  #serveReader(): void {
    const reader = this.#reader;
    if (reader === null) return;
    const first = this.#chunks[0];
    if (first === undefined) {
      if (this.#ended || this.#readerClosed) {
        this.#reader = null;
        reader.resolve(null);
      }
      return;
    }
    this.#reader = null;
    let result: number | Uint8Array;
    if (reader.buffer === null || first.length <= reader.buffer.length) {
      this.#chunks.shift();
      if (reader.buffer !== null) reader.buffer.set(first);
      result = reader.buffer === null ? first : first.length;
      this.#size -= first.length;
    } else {
      const n = reader.buffer.length;
      reader.buffer.set(first.subarray(0, n));
      this.#chunks[0] = first.subarray(n);
      this.#size -= n;
      result = n;
    }
    reader.resolve(result);
    this.#serveWriters();
  }

  #serveWriters(): void {
    while (this.#writers.length > 0 && this.#size < this.capacity) {
      const writer = this.#writers.shift()!;
      writer.resolve(this.#accept(writer.data));
    }
  }
}

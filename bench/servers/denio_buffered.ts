// Copyright 2026 the denio authors. MIT license.
// Echo server: a denio BufferedProtocol, written the documented zero-copy
// way (see BufferedProtocol in mod.ts). The kernel reads straight into one of
// at most four 256 KiB slots and each read is written back as a view of its
// slot, with no copy and no allocation: bytes leave in order, so once the
// transport has released `written - getWriteBufferSize()` bytes, a slot whose
// bytes all lie before that mark is free again. A connection takes its slots
// from a pool the server shares, only when it needs another, and gives them
// back when it is lost: a short connection costs no fresh memory, and the
// working set of a busy one stays at most 1 MiB (one slot, warm in cache,
// while its writes keep up). A slot is larger than the bench's 64 KiB
// messages, as the C server's 256 KiB buffer is: a read that fills its buffer
// is followed by one more that mostly answers EAGAIN (64 KiB slots: 1.5
// recvfrom per round trip on the native backend, 256 KiB: 1.0; strace -c).
// Usage: deno run -A bench/servers/denio_buffered.ts [--native]

import {
  type BufferedProtocol,
  createServer,
  type Transport,
} from "../../mod.ts";
import { announce, backendArg } from "./_args.ts";

const SLOT_SIZE = 256 * 1024;
const SLOTS = 4;
/** Slots given back by lost connections (at most 256: 64 MiB). */
const pool: Uint8Array[] = [];
const POOL_MAX = 256;

class BufferedEcho implements BufferedProtocol {
  #transport: Transport | undefined;
  #slots: Uint8Array[] = [];
  /** For each slot: the byte count written in all once its bytes were. */
  #ends: number[] = [];
  #current = 0;
  /** Bytes passed to write() in all. */
  #written = 0;

  connectionMade(transport: Transport): void {
    this.#transport = transport;
  }

  getBuffer(_sizeHint: number): Uint8Array {
    const slots = this.#slots;
    if (slots.length === 0) return this.#take();
    const released = this.#written - this.#transport!.getWriteBufferSize();
    // The slot read last if its bytes have left (warm in cache: the native
    // backend's writes finish before the next read), else the next one.
    if (released < this.#ends[this.#current]!) {
      const next = (this.#current + 1) % SLOTS;
      if (next >= slots.length) return this.#take();
      this.#current = next;
      if (released < this.#ends[next]!) {
        // Still held by the transport (a slow reader): a fresh slot.
        slots[next] = new Uint8Array(SLOT_SIZE);
      }
    }
    return slots[this.#current]!;
  }

  /** Another slot, from the pool if it has one. */
  #take(): Uint8Array {
    const slot = pool.pop() ?? new Uint8Array(SLOT_SIZE);
    this.#current = this.#slots.length;
    this.#slots.push(slot);
    this.#ends.push(0);
    return slot;
  }

  bufferUpdated(nbytes: number): void {
    const slot = this.#slots[this.#current]!;
    this.#written += nbytes;
    this.#ends[this.#current] = this.#written;
    this.#transport!.write(
      nbytes === slot.length ? slot : slot.subarray(0, nbytes),
    );
  }

  connectionLost(): void {
    // The transport is closed and holds none of these bytes any more.
    for (const slot of this.#slots) {
      if (pool.length < POOL_MAX) pool.push(slot);
    }
    this.#slots = [];
  }
}

const server = await createServer(() => new BufferedEcho(), {
  hostname: "127.0.0.1",
  port: 0,
  backend: backendArg(),
});
announce(server.addrs[0]!);
await server.serveForever();

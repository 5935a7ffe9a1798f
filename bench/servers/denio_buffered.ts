// Copyright 2026 the denio authors. MIT license.
// Echo server: a denio BufferedProtocol, written the documented zero-copy
// way (see BufferedProtocol in mod.ts). The kernel reads straight into one of
// four 64 KiB slots and each read is written back as a view of its slot,
// with no copy and no allocation: bytes leave in order, so once the
// transport has released `written - getWriteBufferSize()` bytes, a slot whose
// bytes all lie before that mark is free again. The working set stays at
// 256 KiB per connection (warm in cache), whatever the traffic.
// Usage: deno run -A bench/servers/denio_buffered.ts [--native]

import {
  type BufferedProtocol,
  createServer,
  type Transport,
} from "../../mod.ts";
import { announce, backendArg } from "./_args.ts";

const SLOT_SIZE = 64 * 1024;
const SLOTS = 4;

class BufferedEcho implements BufferedProtocol {
  #transport: Transport | undefined;
  #slots = Array.from({ length: SLOTS }, () => new Uint8Array(SLOT_SIZE));
  /** For each slot: the byte count written in all once its bytes were. */
  #ends = new Array<number>(SLOTS).fill(0);
  #current = 0;
  /** Bytes passed to write() in all. */
  #written = 0;

  connectionMade(transport: Transport): void {
    this.#transport = transport;
  }

  getBuffer(_sizeHint: number): Uint8Array {
    const released = this.#written - this.#transport!.getWriteBufferSize();
    // The slot read last if its bytes have left (warm in cache: the native
    // backend's writes finish before the next read), else the next one.
    if (released < this.#ends[this.#current]!) {
      this.#current = (this.#current + 1) % SLOTS;
      if (released < this.#ends[this.#current]!) {
        // Still held by the transport (a slow reader): a fresh slot.
        this.#slots[this.#current] = new Uint8Array(SLOT_SIZE);
      }
    }
    return this.#slots[this.#current]!;
  }

  bufferUpdated(nbytes: number): void {
    const slot = this.#slots[this.#current]!;
    this.#written += nbytes;
    this.#ends[this.#current] = this.#written;
    this.#transport!.write(
      nbytes === slot.length ? slot : slot.subarray(0, nbytes),
    );
  }
}

const server = await createServer(() => new BufferedEcho(), {
  hostname: "127.0.0.1",
  port: 0,
  backend: backendArg(),
});
announce(server.addrs[0]!);
await server.serveForever();

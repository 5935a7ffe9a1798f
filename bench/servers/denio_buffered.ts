// Copyright 2026 the denio authors. MIT license.
// Echo server: a denio BufferedProtocol. The kernel reads straight into a
// slab the protocol owns and each read is written back as a view of the slab,
// with no copy and, in the steady state, no allocation: write() keeps the
// views until they are sent, so a full slab is swapped for the previous one
// once everything written from that one has left (getWriteBufferSize() tells,
// as writes leave in order), and replaced by a new slab otherwise.
// Usage: deno run -A bench/servers/denio_buffered.ts [--native]

import {
  type BufferedProtocol,
  createServer,
  type Transport,
} from "../../mod.ts";
import { announce, backendArg } from "./_args.ts";

const SLAB_SIZE = 1024 * 1024;
/** The size of each read, as the raw loop's 64 KiB and denio's 256 KiB cap. */
const READ_SIZE = 256 * 1024;

class BufferedEcho implements BufferedProtocol {
  #transport: Transport | undefined;
  #slab: Uint8Array = new Uint8Array(SLAB_SIZE);
  #offset = 0;
  #spare: Uint8Array | null = null;
  /** Bytes written in all: #written - getWriteBufferSize() have left. */
  #written = 0;
  /** #written when the spare slab was retired. */
  #spareEnd = 0;

  connectionMade(transport: Transport): void {
    this.#transport = transport;
  }

  getBuffer(_sizeHint: number): Uint8Array {
    const pending = this.#transport!.getWriteBufferSize();
    if (pending === 0) this.#offset = 0;
    if (this.#slab.length - this.#offset < READ_SIZE) {
      const spare = this.#spare;
      this.#spare = this.#slab;
      this.#slab = spare !== null && this.#written - pending >= this.#spareEnd
        ? spare
        : new Uint8Array(SLAB_SIZE);
      this.#spareEnd = this.#written;
      this.#offset = 0;
    }
    return this.#slab.subarray(this.#offset, this.#offset + READ_SIZE);
  }

  bufferUpdated(nbytes: number): void {
    const start = this.#offset;
    this.#offset += nbytes;
    this.#written += nbytes;
    this.#transport!.write(this.#slab.subarray(start, this.#offset));
  }
}

const server = await createServer(() => new BufferedEcho(), {
  hostname: "127.0.0.1",
  port: 0,
  backend: backendArg(),
});
announce(server.addrs[0]!);
await server.serveForever();

// Copyright 2026 the denio authors. MIT license.
// ServeOptions.maxBufferedBytes at a small scale: a protocol that ignores
// pauseWriting against a peer that never reads, and framers holding large
// incomplete bodies, are cut off by the server-wide bound while the other
// connections are served; the budget is given back when connections end.

import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertStringIncludes,
} from "@std/assert";
import {
  ContentLengthProtocol,
  createServer,
  FramingError,
  type Protocol,
  type Transport,
} from "../mod.ts";
import { collectExceptions } from "./_stream_helpers.ts";
import { sleep, within } from "./_timing.ts";

const MiB = 1024 * 1024;
const encoder = new TextEncoder();

/** Reads `conn` until EOF or an error; returns the byte count. */
async function drain(conn: Deno.Conn): Promise<number> {
  const buffer = new Uint8Array(256 * 1024);
  let total = 0;
  try {
    for (let i = 0; i < 100_000; i++) {
      const n = await conn.read(buffer);
      if (n === null) break;
      total += n;
    }
  } catch {
    // A reset ends it too.
  }
  return total;
}

Deno.test("ServeOptions.maxBufferedBytes aborts a writer that ignores pauseWriting; a well-behaved connection is served", async () => {
  using exceptions = collectExceptions();
  const losses: (Error | null)[] = [];
  const lost = Promise.withResolvers<void>();
  const server = await createServer((): Protocol => {
    let transport: Transport;
    return {
      connectionMade(t: Transport) {
        transport = t;
      },
      dataReceived(data: Uint8Array) {
        if (new TextDecoder().decode(data).startsWith("flood")) {
          // Ignores pauseWriting: 1 MiB at a time, bounded.
          for (let i = 0; i < 64 && !transport.isClosing(); i++) {
            transport.write(new Uint8Array(MiB));
          }
        } else {
          transport.write(data);
        }
      },
      connectionLost(error: Error | null) {
        losses.push(error);
        if (error !== null) lost.resolve();
      },
    };
  }, { hostname: "127.0.0.1", port: 0, maxBufferedBytes: 8 * MiB });
  const { port } = server.addrs[0] as Deno.NetAddr;
  const hostile = await Deno.connect({ port });
  await hostile.write(encoder.encode("flood"));
  await within(lost.promise, "the flooding connection to be aborted", 15_000);
  assertInstanceOf(losses[0], RangeError);
  assertStringIncludes(losses[0]!.message, "maxBufferedBytes of 8388608");
  assertEquals(exceptions.contexts.length, 1);
  assertStringIncludes(exceptions.contexts[0]!.message, "buffer limit");
  // The budget was given back: a connection may buffer again.
  const good = await Deno.connect({ port });
  await good.write(encoder.encode("hello"));
  const reply = new Uint8Array(5);
  assertEquals(await within(good.read(reply), "the echo", 15_000), 5);
  assertEquals(new TextDecoder().decode(reply), "hello");
  good.close();
  hostile.close();
  server.close();
  await server.waitClosed();
});

Deno.test("ServeOptions.maxBufferedBytes counts what framers hold: the connection that crosses it is cut, the others are served", async () => {
  using exceptions = collectExceptions();
  const lost: (Error | null)[] = [];
  let bodies = 0;
  const allLost = Promise.withResolvers<void>();
  const PEERS = 6;
  const server = await createServer(
    () =>
      new ContentLengthProtocol({
        messageReceived() {
          bodies++;
        },
        connectionLost(error) {
          lost.push(error);
          if (lost.length === PEERS) allLost.resolve();
        },
      }),
    { hostname: "127.0.0.1", port: 0, maxBufferedBytes: 10 * MiB },
  );
  const { port } = server.addrs[0] as Deno.NetAddr;
  // Each peer announces a 16 MB body and sends 3 MiB of it: the fourth
  // takes the total over 10 MiB.
  const peers: Deno.Conn[] = [];
  const chunk = new Uint8Array(256 * 1024);
  for (let i = 0; i < PEERS; i++) {
    const conn = await Deno.connect({ port });
    peers.push(conn);
    await conn.write(encoder.encode("Content-Length: 16000000\r\n\r\n"));
    try {
      for (let sent = 0; sent < 3 * MiB; sent += chunk.length) {
        let offset = 0;
        while (offset < chunk.length) {
          offset += await conn.write(chunk.subarray(offset));
        }
      }
    } catch {
      // A peer cut off by the limit may see a reset while sending.
    }
    await sleep(50);
  }
  const cut = lost.filter((error) => error instanceof RangeError).length;
  assert(cut >= 1, `${cut} connections were cut`);
  assert(cut < PEERS, "the others are served");
  // The rest leave mid-body: FramingError with the partial body.
  for (const conn of peers) {
    try {
      await conn.closeWrite();
    } catch {
      // Already reset.
    }
  }
  await within(allLost.promise, "every connectionLost", 15_000);
  const incomplete = lost.filter((error) => error instanceof FramingError);
  assertEquals(incomplete.length + cut, PEERS);
  // The partial message: its header and the 3 MiB of body that came.
  const header = "Content-Length: 16000000\r\n\r\n".length;
  for (const error of incomplete) {
    assertEquals((error as FramingError).partial.length, header + 3 * MiB);
  }
  assertEquals(bodies, 0);
  assertEquals(exceptions.contexts.length, cut);
  for (const conn of peers) {
    await drain(conn);
    conn.close();
  }
  server.close();
  await server.waitClosed();
});

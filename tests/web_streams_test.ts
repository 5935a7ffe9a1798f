// Copyright 2026 the denio authors. MIT license.
import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
  assertStrictEquals,
  assertThrows,
} from "@std/assert";
import { delay } from "@std/async/delay";
import { toWebStreams, WebStreamProtocol } from "../protocols/web_streams.ts";
import { createConnection } from "../transports/connection.ts";
import { createServer } from "../transports/server.ts";
import type { Protocol, Transport } from "../mod.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A small seeded PRNG (mulberry32), so failures reproduce. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomBytes(n: number, seed: number): Uint8Array {
  const next = random(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(next() * 256);
  return out;
}

/** Cuts `data` into chunks of random sizes up to `max`. */
function chunked(
  data: Uint8Array,
  max: number,
  seed: number,
): Uint8Array<ArrayBuffer>[] {
  const next = random(seed);
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  for (let at = 0; at < data.length;) {
    const size = 1 + Math.floor(next() * max);
    chunks.push(data.slice(at, at + size));
    at += size;
  }
  return chunks;
}

async function collect(
  readable: ReadableStream<Uint8Array>,
): Promise<Uint8Array> {
  return new Uint8Array(await new Response(readable).arrayBuffer());
}

function portOf(server: { addrs: Deno.Addr[] }): number {
  return (server.addrs[0] as Deno.NetAddr).port;
}

/** A protocol that echoes, then closes on EOF (after flushing). */
function echoProtocol(): Protocol {
  let transport: Transport;
  return {
    connectionMade(t) {
      transport = t;
    },
    dataReceived(data) {
      transport.write(data);
    },
  };
}

/** A protocol that counts what it receives and records its callbacks. */
class Sink implements Protocol {
  log: string[] = [];
  received = 0;
  chunks: Uint8Array[] = [];
  transport!: Transport;
  lost = Promise.withResolvers<Error | null>();
  eof = Promise.withResolvers<void>();
  #pauseAtStart: boolean;
  constructor(pauseAtStart = false) {
    this.#pauseAtStart = pauseAtStart;
  }
  connectionMade(transport: Transport) {
    this.transport = transport;
    this.log.push("connectionMade");
    if (this.#pauseAtStart) transport.pauseReading();
  }
  dataReceived(data: Uint8Array) {
    this.received += data.length;
    this.chunks.push(data);
  }
  eofReceived() {
    this.log.push("eofReceived");
    this.eof.resolve();
  }
  connectionLost(error: Error | null) {
    this.log.push(`connectionLost(${error})`);
    this.lost.resolve(error);
  }
  text(): string {
    return decoder.decode(collectChunks(this.chunks));
  }
}

function collectChunks(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

Deno.test("WebStreamProtocol echoes 1 MiB byte-exact through createServer and createConnection", async () => {
  const pipes: Promise<void>[] = [];
  await using server = await createServer(() => {
    const protocol = new WebStreamProtocol();
    pipes.push(protocol.readable.pipeTo(protocol.writable));
    return protocol;
  }, { hostname: "127.0.0.1", port: 0 });
  const [transport, client] = await createConnection(
    () => new WebStreamProtocol(),
    { port: portOf(server) },
  );
  assertStrictEquals(client.transport, transport);
  const data = randomBytes(1024 * 1024, 1);
  const [echoed] = await Promise.all([
    collect(client.readable),
    ReadableStream.from(chunked(data, 50_000, 2)).pipeTo(client.writable),
  ]);
  assertEquals(echoed.length, data.length);
  assertEquals(echoed, data);
  await Promise.all(pipes);
  assert(transport.isClosing());
});

Deno.test("WebStreamProtocol readable pipes through TextDecoderStream", async () => {
  const text = "na\u00efve caf\u00e9 \u20ac \u{1F600}\n".repeat(1000);
  const bytes = encoder.encode(text);
  await using server = await createServer(() => ({
    async connectionMade(transport: Transport) {
      // Split inside multi-byte characters, across reads.
      for (const chunk of chunked(bytes, 7000, 3)) {
        transport.write(chunk);
        await delay(1);
      }
      transport.close();
    },
  }), { hostname: "127.0.0.1", port: 0 });
  const [, client] = await createConnection(
    () => new WebStreamProtocol({ readableHighWaterMark: 1000 }),
    { port: portOf(server) },
  );
  let received = "";
  for await (
    const part of client.readable.pipeThrough(new TextDecoderStream())
  ) {
    received += part;
  }
  assertEquals(received, text);
  await client.writable.close();
});

Deno.test("WebStreamProtocol round-trips CompressionStream and DecompressionStream", async () => {
  const words = ["alpha ", "beta ", "gamma ", "delta\n", "epsilon "];
  const next = random(4);
  let source = "";
  while (source.length < 512 * 1024) source += words[Math.floor(next() * 5)];
  const data = encoder.encode(source);
  const pipes: Promise<void>[] = [];
  // The server decompresses what it gets and sends it back compressed again.
  await using server = await createServer(() => {
    const protocol = new WebStreamProtocol();
    pipes.push(
      protocol.readable
        .pipeThrough(new DecompressionStream("gzip"))
        .pipeThrough(new CompressionStream("gzip"))
        .pipeTo(protocol.writable),
    );
    return protocol;
  }, { hostname: "127.0.0.1", port: 0 });
  const [, client] = await createConnection(
    () => new WebStreamProtocol(),
    { port: portOf(server) },
  );
  const [back] = await Promise.all([
    collect(client.readable.pipeThrough(new DecompressionStream("gzip"))),
    ReadableStream.from(chunked(data, 30_000, 5))
      .pipeThrough(new CompressionStream("gzip"))
      .pipeTo(client.writable),
  ]);
  assertEquals(back, data);
  await Promise.all(pipes);
});

Deno.test("WebStreamProtocol pipeTo() proxies one connection to another byte-exact", async () => {
  await using backend = await createServer(echoProtocol, {
    hostname: "127.0.0.1",
    port: 0,
  });
  const proxied: Promise<void>[] = [];
  await using proxy = await createServer(() => {
    const downstream = new WebStreamProtocol();
    proxied.push((async () => {
      const [, upstream] = await createConnection(
        () => new WebStreamProtocol(),
        { port: portOf(backend) },
      );
      await Promise.all([
        downstream.readable.pipeTo(upstream.writable),
        upstream.readable.pipeTo(downstream.writable),
      ]);
    })());
    return downstream;
  }, { hostname: "127.0.0.1", port: 0 });

  const data = randomBytes(4 * 1024 * 1024, 6);
  const [transport, client] = await createConnection(
    () => new WebStreamProtocol(),
    { port: portOf(proxy) },
  );
  const [echoed] = await Promise.all([
    collect(client.readable),
    ReadableStream.from(chunked(data, 100_000, 7)).pipeTo(client.writable),
  ]);
  assertEquals(echoed.length, data.length);
  assertEquals(echoed, data);
  await Promise.all(proxied);
  assert(transport.isClosing());
});

Deno.test("WebStreamProtocol pauses reading on the transport while its queue is full", async () => {
  const data = randomBytes(1024 * 1024, 8);
  await using server = await createServer(() => ({
    connectionMade(transport: Transport) {
      transport.write(data);
      transport.close();
    },
  }), { hostname: "127.0.0.1", port: 0 });
  const [transport, client] = await createConnection(
    () => new WebStreamProtocol({ readableHighWaterMark: 16 * 1024 }),
    { port: portOf(server) },
  );
  for (let i = 0; i < 400 && transport.isReading(); i++) await delay(5);
  assert(!transport.isReading(), "reading was never paused");
  await delay(20);
  assert(!transport.isReading(), "reading resumed with nobody reading");
  assertEquals(await collect(client.readable), data);
  await client.writable.close();
});

Deno.test("WebStreamProtocol with readableHighWaterMark 0 reads only while a read is pending", async () => {
  await using server = await createServer(() => ({
    connectionMade(transport: Transport) {
      transport.write(encoder.encode("abc"));
    },
  }), { hostname: "127.0.0.1", port: 0 });
  const [transport, client] = await createConnection(
    () => new WebStreamProtocol({ readableHighWaterMark: 0 }),
    { port: portOf(server) },
  );
  assert(!transport.isReading());
  const reader = client.readable.getReader();
  let got = "";
  for (let i = 0; i < 3 && got.length < 3; i++) {
    const { value } = await reader.read();
    got += decoder.decode(value);
  }
  assertEquals(got, "abc");
  assert(!transport.isReading());
  reader.releaseLock();
  await client.writable.abort();
});

Deno.test("WebStreamProtocol holds write() while the transport is paused and releases it on resumeWriting", async () => {
  const size = 16 * 1024 * 1024;
  const sink = new Sink(true);
  await using server = await createServer(() => sink, {
    hostname: "127.0.0.1",
    port: 0,
  });
  const [transport, client] = await createConnection(
    () => new WebStreamProtocol(),
    { port: portOf(server) },
  );
  const writer = client.writable.getWriter();
  let written = false;
  const write = writer.write(new Uint8Array(size)).then(() => written = true);
  await delay(20);
  // The server reads nothing and the kernel cannot take 16 MiB.
  assert(
    transport.getWriteBufferSize() > transport.getWriteBufferLimits().high,
  );
  assert(!written, "write() resolved while the transport was paused");
  assertEquals(writer.desiredSize, 0);
  sink.transport.resumeReading();
  await write;
  await writer.close();
  await sink.eof.promise;
  assertEquals(sink.received, size);
  sink.transport.close();
  await collect(client.readable);
});

Deno.test("WebStreamProtocol writable.close() sends EOF and the reply still arrives", async () => {
  await using server = await createServer(() => {
    let transport: Transport;
    let got = "";
    return {
      connectionMade(t: Transport) {
        transport = t;
      },
      dataReceived(data: Uint8Array) {
        got += decoder.decode(data);
      },
      eofReceived() {
        transport.write(encoder.encode(`got ${got}`));
        // Returning nothing closes the transport after the reply.
      },
    };
  }, { hostname: "127.0.0.1", port: 0 });
  const [transport, client] = await createConnection(
    () => new WebStreamProtocol(),
    { port: portOf(server) },
  );
  const writer = client.writable.getWriter();
  await writer.write(encoder.encode("request"));
  await writer.close();
  assert(!transport.isClosing(), "closing the writable closed the transport");
  assertEquals(decoder.decode(await collect(client.readable)), "got request");
  assert(transport.isClosing());
});

Deno.test("WebStreamProtocol writable copies each chunk, so the caller may reuse it", async () => {
  const sink = new Sink(true); // not reading: the chunks stay in the transport
  await using server = await createServer(() => sink, {
    hostname: "127.0.0.1",
    port: 0,
  });
  const [transport, client] = await createConnection(
    () => new WebStreamProtocol(),
    { port: portOf(server) },
  );
  transport.setWriteBufferLimits({ high: 64 * 1024 * 1024 });
  const writer = client.writable.getWriter();
  const filler = 16 * 1024 * 1024; // more than the kernel buffers hold
  await writer.write(new Uint8Array(filler));
  const buffer = new Uint8Array(1000);
  for (const letter of "abc") {
    buffer.fill(letter.charCodeAt(0));
    await writer.write(buffer);
  }
  assert(transport.getWriteBufferSize() > 3000);
  await writer.close();
  sink.transport.resumeReading();
  await sink.eof.promise;
  assertEquals(sink.received, filler + 3000);
  const tail = collectChunks(sink.chunks).subarray(filler);
  assertEquals(
    decoder.decode(tail),
    "a".repeat(1000) + "b".repeat(1000) + "c".repeat(1000),
  );
  sink.transport.close();
  await collect(client.readable);
});

Deno.test("WebStreamProtocol errors both streams when the connection fails", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  // With a high-water mark of 0 and no read pending, the peer's FIN is not
  // read, so the readable is still open when writing fails.
  const [transport, client] = await createConnection(
    () => new WebStreamProtocol({ readableHighWaterMark: 0 }),
    { port: (listener.addr as Deno.NetAddr).port },
  );
  (await listener.accept()).close();
  const writer = client.writable.getWriter();
  let error: unknown = null;
  for (let i = 0; i < 200 && error === null; i++) {
    try {
      await writer.write(new Uint8Array(1024));
    } catch (caught) {
      error = caught;
    }
    await delay(5);
  }
  assert(
    error instanceof Deno.errors.ConnectionReset ||
      error instanceof Deno.errors.BrokenPipe,
    `unexpected ${error}`,
  );
  assert(transport.isClosing());
  const reader = client.readable.getReader();
  assertStrictEquals(await assertRejects(() => reader.read()), error);
  assertStrictEquals(await assertRejects(() => writer.closed), error);
});

Deno.test("WebStreamProtocol writable.abort() aborts the transport and errors the readable", async () => {
  const sink = new Sink();
  await using server = await createServer(() => sink, {
    hostname: "127.0.0.1",
    port: 0,
  });
  const [transport, client] = await createConnection(
    () => new WebStreamProtocol(),
    { port: portOf(server) },
  );
  const reason = new Error("stop");
  await client.writable.abort(reason);
  assert(transport.isClosing());
  assertStrictEquals(
    await assertRejects(() => collect(client.readable)),
    reason,
  );
  assertEquals(await sink.lost.promise, null);
  assertEquals(sink.log, [
    "connectionMade",
    "eofReceived",
    "connectionLost(null)",
  ]);
});

Deno.test("WebStreamProtocol readable.cancel() stops reading; closing the writable then closes the transport", async () => {
  const sink = new Sink();
  await using server = await createServer(() => {
    const protocol: Protocol = {
      connectionMade(transport) {
        sink.connectionMade(transport);
        transport.write(encoder.encode("unwanted"));
      },
      dataReceived: (data) => sink.dataReceived(data),
      eofReceived: () => sink.eofReceived(),
      connectionLost: (error) => sink.connectionLost(error),
    };
    return protocol;
  }, { hostname: "127.0.0.1", port: 0 });
  const [transport, client] = await createConnection(
    () => new WebStreamProtocol(),
    { port: portOf(server) },
  );
  await client.readable.cancel();
  assert(!transport.isReading());
  assert(!transport.isClosing());
  const writer = client.writable.getWriter();
  await writer.write(encoder.encode("still writing"));
  await writer.close();
  assert(transport.isClosing());
  await sink.lost.promise;
  assertEquals(sink.text(), "still writing");
});

Deno.test("WebStreamProtocol BYOB reads fill the caller's buffer", async () => {
  const data = randomBytes(10_000, 9);
  await using server = await createServer(() => ({
    connectionMade(transport: Transport) {
      transport.write(data);
      transport.close();
    },
  }), { hostname: "127.0.0.1", port: 0 });
  const [, client] = await createConnection(
    () => new WebStreamProtocol({ readableHighWaterMark: 0 }),
    { port: portOf(server) },
  );
  const reader = client.readable.getReader({ mode: "byob" });
  const parts: Uint8Array[] = [];
  let buffer = new ArrayBuffer(777);
  for (let i = 0; i < 1000; i++) {
    const { value, done } = await reader.read(new Uint8Array(buffer));
    buffer = value!.buffer as ArrayBuffer;
    if (done) break;
    assert(value.length <= 777);
    parts.push(value.slice());
  }
  assertEquals(collectChunks(parts), data);
  reader.releaseLock();
  await client.writable.close();
});

Deno.test("toWebStreams() turns an open transport into web streams", async () => {
  await using server = await createServer(echoProtocol, {
    hostname: "127.0.0.1",
    port: 0,
  });
  const [transport] = await createConnection(() => ({}), {
    port: portOf(server),
  });
  const { readable, writable } = toWebStreams(transport);
  assertInstanceOf(transport.getProtocol(), WebStreamProtocol);
  const data = randomBytes(300_000, 10);
  const [echoed] = await Promise.all([
    collect(readable),
    ReadableStream.from(chunked(data, 20_000, 11)).pipeTo(writable),
  ]);
  assertEquals(echoed, data);
});

Deno.test("toWebStreams() fits ReadableStream.pipeThrough()", async () => {
  await using server = await createServer(echoProtocol, {
    hostname: "127.0.0.1",
    port: 0,
  });
  const [transport] = await createConnection(() => ({}), {
    port: portOf(server),
  });
  const lines = ReadableStream.from(["one\n", "two\n"])
    .pipeThrough(new TextEncoderStream())
    .pipeThrough(toWebStreams(transport))
    .pipeThrough(new TextDecoderStream());
  let text = "";
  for await (const part of lines) text += part;
  assertEquals(text, "one\ntwo\n");
});

Deno.test("toWebStreams() and WebStreamProtocol check their arguments", async () => {
  assertThrows(
    // deno-lint-ignore no-explicit-any
    () => toWebStreams({} as any),
    TypeError,
    "Cannot make web streams as transport is not a stream transport: current value is a Object",
  );
  assertThrows(
    () => new WebStreamProtocol({ readableHighWaterMark: -1 }),
    RangeError,
    "Cannot create web streams as readableHighWaterMark is not an integer of 0 or more: current value is -1",
  );
  assertThrows(
    // deno-lint-ignore no-explicit-any
    () => new WebStreamProtocol({ readableHighWaterMark: "1" as any }),
    TypeError,
  );
  await using server = await createServer(() => ({}), {
    hostname: "127.0.0.1",
    port: 0,
  });
  const [transport, client] = await createConnection(
    () => new WebStreamProtocol(),
    { port: portOf(server) },
  );
  const writer = client.writable.getWriter();
  await assertRejects(
    // deno-lint-ignore no-explicit-any
    () => writer.write("text" as any),
    TypeError,
    'Cannot write to stream as chunk is not a Uint8Array: current value is "text"',
  );
  transport.close();
  assertThrows(
    () => toWebStreams(transport),
    Error,
    "Cannot make web streams as the transport is closing",
  );
});

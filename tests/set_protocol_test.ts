// Copyright 2026 the denio authors. MIT license.
import { assertEquals, assertThrows } from "@std/assert";
import {
  type BufferedProtocol,
  connectReadPipe,
  createConnection,
  createServer,
  type Protocol,
  type Transport,
} from "../mod.ts";
import { byteSource } from "./_pipe_helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A server whose clients send "hello" when told to by `send`. */
async function helloServer() {
  const connected = Promise.withResolvers<Transport>();
  const server = await createServer(() => ({
    connectionMade: (t: Transport) => connected.resolve(t),
  }), { hostname: "127.0.0.1", port: 0 });
  return { server, connected: connected.promise };
}

Deno.test("Transport.setProtocol() from buffered to plain with a read in flight keeps its bytes", async () => {
  const { server, connected } = await helloServer();
  const got = Promise.withResolvers<string>();
  const buffer = new Uint8Array(64);
  const first: BufferedProtocol = {
    getBuffer: () => buffer,
    bufferUpdated: () => got.reject(new Error("old protocol got the bytes")),
  };
  const second: Protocol = {
    dataReceived: (data) => got.resolve(decoder.decode(data)),
  };
  const [transport] = await createConnection(() => first, {
    port: (server.addrs[0] as Deno.NetAddr).port,
  });
  const peer = await connected;
  // Let the client's read loop start its read into `buffer`.
  await new Promise((resolve) => setTimeout(resolve, 10));
  transport.setProtocol(second);
  peer.write(encoder.encode("hello"));
  assertEquals(await got.promise, "hello");
  transport.close();
  server.close();
  server.closeClients();
  await server.waitClosed();
});

Deno.test("Transport.setProtocol() from plain to buffered with a read in flight copies into getBuffer()", async () => {
  const { server, connected } = await helloServer();
  const got = Promise.withResolvers<string>();
  const events: string[] = [];
  const buffer = new Uint8Array(3); // smaller than the data: two rounds
  let text = "";
  const second: BufferedProtocol = {
    getBuffer(hint) {
      events.push(`getBuffer(${hint})`);
      return buffer;
    },
    bufferUpdated(n) {
      events.push(`bufferUpdated(${n})`);
      text += decoder.decode(buffer.subarray(0, n));
      if (text.length === 5) got.resolve(text);
    },
  };
  const [transport] = await createConnection(() => ({}), {
    port: (server.addrs[0] as Deno.NetAddr).port,
  });
  const peer = await connected;
  await new Promise((resolve) => setTimeout(resolve, 10));
  transport.setProtocol(second);
  peer.write(encoder.encode("hello"));
  assertEquals(await got.promise, "hello");
  assertEquals(events.slice(0, 4), [
    "getBuffer(5)",
    "bufferUpdated(3)",
    "getBuffer(2)",
    "bufferUpdated(2)",
  ]);
  transport.close();
  server.close();
  server.closeClients();
  await server.waitClosed();
});

Deno.test("Transport.setProtocol() from plain to buffered with a byte-stream pipe read in flight copies into getBuffer()", async () => {
  // A Protocol reads a byte stream with the adapter's own buffers
  // (readOwned); the read pending at the switch must reach the new
  // BufferedProtocol through getBuffer(), in order with what follows.
  const release = Promise.withResolvers<void>();
  // "hello" first, then the rest as the views allow.
  const { stream, pulls } = byteSource(
    encoder.encode("hello world"),
    (_pull, offset) => offset === 0 ? 5 : Infinity,
    (pull) => pull === 0 ? release.promise : undefined,
  );
  const buffer = new Uint8Array(4);
  let text = "";
  const lost = Promise.withResolvers<Error | null>();
  const second: BufferedProtocol = {
    getBuffer: () => buffer,
    bufferUpdated(n) {
      text += decoder.decode(buffer.subarray(0, n));
    },
    connectionLost: (error) => lost.resolve(error),
  };
  const [transport] = await connectReadPipe(() => ({
    dataReceived: () => {
      throw new Error("the old protocol got the bytes");
    },
  }), stream);
  await new Promise((resolve) => setTimeout(resolve, 10));
  assertEquals(pulls(), 1, "a read is in flight");
  transport.setProtocol(second);
  release.resolve();
  assertEquals(await lost.promise, null);
  assertEquals(text, "hello world");
});

Deno.test("ReadTransport from connectReadPipe(): write() throws TypeError and isReading() reflects the read side", async () => {
  const lost = Promise.withResolvers<Error | null>();
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode("x"));
      controller.close();
    },
  });
  const [transport] = await connectReadPipe(() => ({
    connectionLost: lost.resolve,
  }), stream);
  const writable = transport as unknown as Transport;
  assertThrows(
    () => writable.write(encoder.encode("no")),
    TypeError,
    "Cannot write to transport as it is read-only",
  );
  assertEquals(await lost.promise, null);
  assertEquals(transport.isReading(), false);
});

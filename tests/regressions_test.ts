// Copyright 2026 the denio authors. MIT license.
// Fixes found by the reliability work, each pinned by a test.
import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertThrows,
} from "@std/assert";
import {
  connectWritePipe,
  createConnection,
  createServer,
  type ExceptionContext,
  LineProtocol,
  setExceptionHandler,
  StreamReader,
  type Transport,
} from "../mod.ts";

const encoder = new TextEncoder();

Deno.test("LineProtocol: an async lineReceived that rejects is fatal like a throw", async () => {
  const contexts: ExceptionContext[] = [];
  setExceptionHandler((context) => contexts.push(context));
  try {
    const lost = Promise.withResolvers<Error | null>();
    const boom = new Error("async boom");
    await using server = await createServer(
      () =>
        new LineProtocol({
          // deno-lint-ignore require-await
          async lineReceived() {
            throw boom;
          },
          connectionLost: lost.resolve,
        }),
      { hostname: "127.0.0.1", port: 0 },
    );
    const [client] = await createConnection(() => ({}), {
      port: (server.addrs[0] as Deno.NetAddr).port,
    });
    client.write(encoder.encode("x\n"));
    assert(await lost.promise === boom);
    assertEquals(contexts.length, 1);
    assert(contexts[0]!.error === boom);
    client.close();
  } finally {
    setExceptionHandler(null);
  }
});

Deno.test("Server[Symbol.asyncDispose]() aborts a client that never reads instead of hanging", async () => {
  const lost = Promise.withResolvers<Error | null>();
  const server = await createServer(() => ({
    connectionMade(transport: Transport) {
      // More than the peer's socket buffers hold (32 MiB from one 2 MiB
      // chunk, so the test costs little memory): close() cannot finish.
      const chunk = new Uint8Array(2 * 1024 * 1024);
      for (let i = 0; i < 16; i++) transport.write(chunk);
    },
    connectionLost: lost.resolve,
  }), { hostname: "127.0.0.1", port: 0 });
  const conn = await Deno.connect({
    port: (server.addrs[0] as Deno.NetAddr).port,
  });
  await new Promise((resolve) => setTimeout(resolve, 50));
  await server[Symbol.asyncDispose]();
  assertEquals(await lost.promise, null);
  conn.close();
});

Deno.test("StreamReader.setException() with a non-Error is a TypeError", () => {
  const reader = new StreamReader();
  assertThrows(
    () => reader.setException(1 as unknown as Error),
    TypeError,
    "Cannot set exception as it is not an Error",
  );
});

Deno.test("connectWritePipe(): a fatal error aborts the stream so the reader does not see a clean end", async () => {
  const ended = Promise.withResolvers<string>();
  const stream = new WritableStream<Uint8Array>({
    close: () => ended.resolve("closed"),
    abort: () => ended.resolve("aborted"),
  });
  const contexts: ExceptionContext[] = [];
  setExceptionHandler((context) => contexts.push(context));
  try {
    const lost = Promise.withResolvers<Error | null>();
    await connectWritePipe(() => ({
      connectionMade(transport: Transport) {
        transport.write(encoder.encode("dropped"));
        throw new Error("made failed");
      },
      connectionLost: lost.resolve,
    }), stream);
    assertInstanceOf(await lost.promise, Error);
    assertEquals(await ended.promise, "aborted");
    assertEquals(contexts.length, 1);
  } finally {
    setExceptionHandler(null);
  }
});

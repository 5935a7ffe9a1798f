// Copyright 2026 the denio authors. MIT license.
// The stream-transport core (transports/stream_transport.ts) over real TCP
// sockets: callback order, teardown, EOF and half-close, flow control, read
// pausing, extra info and bad input. Server and Unix specifics live in
// server_test.ts, createConnection's in connection_test.ts.

import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertMatch,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import { createConnection, type Protocol, type Transport } from "../mod.ts";
import {
  BufferedEchoProtocol,
  bytes,
  type CallbackName,
  collapse,
  collectExceptions,
  concat,
  nextMacrotask,
  pattern,
  rawPair,
  readAll,
  readExactly,
  RecordingBufferedProtocol,
  RecordingProtocol,
  sha256,
  shutdown,
  sleep,
  startEchoServer,
  text,
  waitUntil,
  within,
  writeAll,
} from "./_stream_helpers.ts";
import { createServer } from "../mod.ts";
import {
  type ReadyIo,
  type ReadyListener,
  socketReadable,
  StreamTransport,
} from "../transports/stream_transport.ts";

const MiB = 1024 * 1024;

// ------------------------------------------------------------ callback order

Deno.test("Protocol callbacks run in asyncio's order: connectionMade, dataReceived*, eofReceived, connectionLost", async () => {
  const { server, port, protocols } = await startEchoServer();
  const client = new RecordingProtocol();
  const [transport, protocol] = await createConnection(() => client, {
    hostname: "127.0.0.1",
    port,
  });
  assert(protocol === client);
  // createConnection resolves once connectionMade has run.
  assertEquals(client.events, ["connectionMade"]);
  assert(client.transport === transport);
  transport.write(bytes("hello"));
  transport.writeEof();
  assertEquals(await within(client.lost.promise, "connectionLost"), null);
  assertEquals(client.sequence(), [
    "connectionMade",
    "dataReceived",
    "eofReceived",
    "connectionLost",
  ]);
  assertEquals(client.receivedText(), "hello");
  assertEquals(await within(protocols[0]!.lost.promise, "server lost"), null);
  await shutdown(server);
});

Deno.test("BufferedProtocol callbacks run as connectionMade, (getBuffer bufferUpdated)*, getBuffer, eofReceived, connectionLost", async () => {
  const { server, port } = await startEchoServer();
  // A 7-byte buffer forces several getBuffer/bufferUpdated pairs.
  const client = new RecordingBufferedProtocol({ bufferSize: 7 });
  const [transport] = await createConnection(() => client, { port });
  const message = "hello, buffered protocol";
  transport.write(bytes(message));
  transport.writeEof();
  assertEquals(await within(client.lost.promise, "connectionLost"), null);
  assertMatch(
    client.events.join(" "),
    /^connectionMade( getBuffer bufferUpdated)+ getBuffer eofReceived connectionLost$/,
  );
  assertEquals(text(client.received()), message);
  assert(client.updates.every((n) => n > 0 && n <= 7), `${client.updates}`);
  assert(client.sizeHints.every((hint) => hint > 0), `${client.sizeHints}`);
  await shutdown(server);
});

Deno.test("BufferedProtocol.getBuffer() returning an empty buffer is fatal: one exception context, then connectionLost(error)", async () => {
  using exceptions = collectExceptions();
  const protocol = new RecordingBufferedProtocol({
    getBuffer: () => new Uint8Array(0),
  });
  await using pair = await rawPair(protocol);
  // A readiness-based backend asks for a buffer once bytes are there.
  await writeAll(pair.peer, bytes("x"));
  const error = await within(protocol.lost.promise, "connectionLost");
  assertInstanceOf(error, RangeError);
  assertEquals(protocol.events, [
    "connectionMade",
    "getBuffer",
    "connectionLost",
  ]);
  assertEquals(exceptions.contexts.length, 1);
  const context = exceptions.contexts[0]!;
  assertStringIncludes(context.message, "getBuffer");
  assert(context.error === error);
  assert(context.transport === pair.transport);
  assert(context.protocol === protocol);
  // The peer sees the connection go away: EOF, or a reset since the byte
  // it sent was never read.
  const ended = await readAll(pair.peer).then(
    (received) => received.length,
    (error) => error instanceof Deno.errors.ConnectionReset ? 0 : error,
  );
  assertEquals(ended, 0);
  await nextMacrotask();
  assertEquals(exceptions.unhandled, []);
});

Deno.test("BufferedProtocol.getBuffer() returning a non-Uint8Array is fatal with a TypeError", async () => {
  using exceptions = collectExceptions();
  const protocol = new RecordingBufferedProtocol({
    getBuffer: () => [1, 2, 3] as unknown as Uint8Array,
  });
  await using pair = await rawPair(protocol);
  await writeAll(pair.peer, bytes("x"));
  const error = await within(protocol.lost.promise, "connectionLost");
  assertInstanceOf(error, TypeError);
  assertEquals(exceptions.contexts.length, 1);
  assertStringIncludes(exceptions.contexts[0]!.message, "getBuffer");
});

// ------------------------------------------------------- throwing callbacks

/** Drives a connection until `name` is called (and throws). */
async function provoke(
  name: CallbackName,
  transport: Transport,
  peer: Deno.Conn,
): Promise<void> {
  switch (name) {
    case "connectionMade":
      return;
    case "getBuffer":
      // A readiness-based backend asks for a buffer once bytes are there.
      await writeAll(peer, bytes("x"));
      return;
    case "dataReceived":
    case "bufferUpdated":
      await writeAll(peer, bytes("x"));
      return;
    case "eofReceived":
      await peer.closeWrite();
      return;
    case "pauseWriting":
      transport.setWriteBufferLimits({ high: 4 });
      transport.write(bytes("12345"));
      return;
    case "resumeWriting":
      transport.setWriteBufferLimits({ high: 4 });
      transport.write(bytes("12345"));
      await readExactly(peer, 5);
      return;
    case "connectionLost":
      transport.close();
      return;
    default: {
      const never: never = name;
      throw new Error(`Unexpected callback ${never}`);
    }
  }
}

const THROWING: [CallbackName, CallbackName[]][] = [
  ["connectionMade", ["connectionMade", "connectionLost"]],
  ["dataReceived", ["connectionMade", "dataReceived", "connectionLost"]],
  ["eofReceived", ["connectionMade", "eofReceived", "connectionLost"]],
  ["pauseWriting", ["connectionMade", "pauseWriting", "connectionLost"]],
  ["resumeWriting", [
    "connectionMade",
    "pauseWriting",
    "resumeWriting",
    "connectionLost",
  ]],
];

Deno.test("A throwing Protocol callback is fatal: one exception context naming it, connectionLost(error) once, no unhandled rejection", async (t) => {
  for (const [name, expected] of THROWING) {
    await t.step(`protocol.${name}() throws`, async () => {
      using exceptions = collectExceptions();
      const protocol = new RecordingProtocol({ throwIn: name });
      await using pair = await rawPair(protocol);
      await provoke(name, pair.transport, pair.peer);
      const error = await within(protocol.lost.promise, "connectionLost");
      assert(error === protocol.thrown, `connectionLost got ${error}`);
      assertEquals(protocol.events, expected);
      assertEquals(exceptions.contexts.length, 1);
      const context = exceptions.contexts[0]!;
      assertStringIncludes(context.message, name);
      assert(context.error === protocol.thrown);
      assert(context.transport === pair.transport);
      assert(context.protocol === protocol);
      assert(pair.transport.isClosing());
      // The transport was aborted: the peer sees the connection end.
      await readAll(pair.peer);
      await nextMacrotask();
      assertEquals(protocol.count("connectionLost"), 1);
      assertEquals(exceptions.contexts.length, 1);
      assertEquals(exceptions.unhandled, []);
    });
  }
});

Deno.test("A throwing BufferedProtocol callback (getBuffer, bufferUpdated) is fatal like any other", async (t) => {
  for (const name of ["getBuffer", "bufferUpdated"] as const) {
    await t.step(`protocol.${name}() throws`, async () => {
      using exceptions = collectExceptions();
      const protocol = new RecordingBufferedProtocol({ throwIn: name });
      await using pair = await rawPair(protocol);
      await provoke(name, pair.transport, pair.peer);
      const error = await within(protocol.lost.promise, "connectionLost");
      assert(error === protocol.thrown);
      assertEquals(protocol.count("connectionLost"), 1);
      assertEquals(exceptions.contexts.length, 1);
      assertStringIncludes(exceptions.contexts[0]!.message, name);
      assertEquals(exceptions.unhandled, []);
    });
  }
});

Deno.test("A throwing connectionLost() goes to the exception handler once and is not called again", async () => {
  using exceptions = collectExceptions();
  const protocol = new RecordingProtocol({ throwIn: "connectionLost" });
  await using pair = await rawPair(protocol);
  pair.transport.close();
  await within(protocol.lost.promise, "connectionLost");
  await nextMacrotask();
  pair.transport.abort();
  await nextMacrotask();
  assertEquals(protocol.events, ["connectionMade", "connectionLost"]);
  assertEquals(exceptions.contexts.length, 1);
  assertStringIncludes(exceptions.contexts[0]!.message, "connectionLost");
  assert(exceptions.contexts[0]!.error === protocol.thrown);
  assertEquals(exceptions.unhandled, []);
});

// ------------------------------------------------ no synchronous callbacks

Deno.test("Transport.close() and abort() call connectionLost() from a queued microtask, never inside the call", async (t) => {
  for (const method of ["close", "abort"] as const) {
    await t.step(method, async () => {
      const protocol = new RecordingProtocol();
      await using pair = await rawPair(protocol);
      pair.transport[method]();
      assert(pair.transport.isClosing());
      assertEquals(protocol.events, ["connectionMade"]);
      assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
      assertEquals(protocol.events, ["connectionMade", "connectionLost"]);
    });
  }
});

Deno.test("Transport.write() calls pauseWriting() synchronously, inside write()", async () => {
  const protocol = new RecordingProtocol();
  await using pair = await rawPair(protocol);
  pair.transport.setWriteBufferLimits({ high: 1 });
  pair.transport.write(bytes("ab"));
  assertEquals(protocol.events, ["connectionMade", "pauseWriting"]);
});

Deno.test("Transport.resumeReading() delivers held data later, not inside resumeReading()", async () => {
  const protocol = new RecordingProtocol();
  await using pair = await rawPair(protocol);
  pair.transport.pauseReading();
  await writeAll(pair.peer, bytes("held"));
  await sleep(50);
  pair.transport.resumeReading();
  assertEquals(protocol.events, ["connectionMade"]);
  await protocol.waitForBytes(4);
  assertEquals(protocol.receivedText(), "held");
});

// ------------------------------------------------ connectionLost exactly once

Deno.test("connectionLost() is called exactly once, after connectionMade(), whatever ends the connection", async (t) => {
  await t.step("close() then close() and abort()", async () => {
    const protocol = new RecordingProtocol();
    await using pair = await rawPair(protocol);
    pair.transport.close();
    pair.transport.close();
    pair.transport.abort();
    assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
    await readAll(pair.peer);
    assertEquals(protocol.events, ["connectionMade", "connectionLost"]);
  });

  await t.step("abort() then close()", async () => {
    const protocol = new RecordingProtocol();
    await using pair = await rawPair(protocol);
    pair.transport.abort();
    pair.transport.close();
    assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
    assertEquals(protocol.events, ["connectionMade", "connectionLost"]);
  });

  await t.step("peer EOF (closeWrite)", async () => {
    const protocol = new RecordingProtocol();
    await using pair = await rawPair(protocol);
    await pair.peer.closeWrite();
    assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
    await nextMacrotask();
    assertEquals(protocol.events, [
      "connectionMade",
      "eofReceived",
      "connectionLost",
    ]);
  });

  await t.step("peer close()", async () => {
    const protocol = new RecordingProtocol();
    await using pair = await rawPair(protocol);
    pair.peer.close();
    assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
    await nextMacrotask();
    assertEquals(protocol.events, [
      "connectionMade",
      "eofReceived",
      "connectionLost",
    ]);
  });

  await t.step("peer reset (closed with unread data)", async () => {
    using exceptions = collectExceptions();
    // eofResult: true keeps the transport open whichever way Deno reports
    // the reset to the reader (Deno reports ECONNRESET on read as EOF), so
    // the next write meets the reset.
    const protocol = new RecordingProtocol({ eofResult: true });
    await using pair = await rawPair(protocol);
    pair.transport.write(bytes("never read by the peer"));
    await waitUntil(
      () => pair.transport.getWriteBufferSize() === 0,
      "the write to reach the kernel",
    );
    await sleep(20);
    pair.peer.close(); // unread data: the kernel sends RST
    await within(
      Promise.race([protocol.eof.promise, protocol.lost.promise]),
      "the reset to be noticed",
    );
    for (let i = 0; i < 20 && protocol.lostErrors.length === 0; i++) {
      pair.transport.write(bytes("into a reset connection"));
      await sleep(10);
    }
    const error = await within(protocol.lost.promise, "connectionLost");
    assert(
      error instanceof Deno.errors.ConnectionReset ||
        error instanceof Deno.errors.BrokenPipe,
      `connectionLost got ${error}`,
    );
    await nextMacrotask();
    assertEquals(protocol.count("connectionLost"), 1);
    assertEquals(protocol.events[0], "connectionMade");
    assertEquals(protocol.events.at(-1), "connectionLost");
    // asyncio logs a peer reset at debug level only: no exception context.
    assertEquals(exceptions.contexts, []);
  });
});

Deno.test("Transport.close() flushes buffered data before connectionLost(null)", async () => {
  const protocol = new RecordingProtocol();
  await using pair = await rawPair(protocol);
  const data = pattern(8 * MiB, 7);
  pair.transport.write(data);
  pair.transport.close();
  assertEquals(protocol.events, ["connectionMade", "pauseWriting"]);
  // Further writes are dropped, not added after the flush.
  pair.transport.write(bytes("dropped"));
  const received = await readAll(pair.peer);
  assertEquals(received.length, data.length);
  assertEquals(await sha256(received), await sha256(data));
  assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
  assertEquals(protocol.count("connectionLost"), 1);
});

Deno.test("Transport.abort() drops buffered data and calls connectionLost(null)", async () => {
  const protocol = new RecordingProtocol();
  await using pair = await rawPair(protocol);
  const data = pattern(8 * MiB, 8);
  pair.transport.write(data);
  await sleep(20); // the peer does not read: most of it stays buffered
  pair.transport.abort();
  assertEquals(pair.transport.getWriteBufferSize(), 0);
  const received = await readAll(pair.peer);
  assert(received.length < data.length, `received ${received.length}`);
  assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
  // Dropped, no resumeWriting after the abort.
  assertEquals(protocol.events, [
    "connectionMade",
    "pauseWriting",
    "connectionLost",
  ]);
});

// ------------------------------------------------------ EOF and half-close

Deno.test("Transport.writeEof() half-closes: the peer sees EOF and can still send to us", async () => {
  const protocol = new RecordingProtocol();
  await using pair = await rawPair(protocol);
  assert(pair.transport.canWriteEof());
  pair.transport.write(bytes("ping"));
  pair.transport.writeEof();
  pair.transport.writeEof(); // idempotent
  assert(!pair.transport.isClosing());
  assertEquals(text(await readAll(pair.peer)), "ping");
  await writeAll(pair.peer, bytes("late reply"));
  await protocol.waitForBytes(10);
  assertEquals(protocol.receivedText(), "late reply");
  await pair.peer.closeWrite();
  assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
  assertEquals(protocol.sequence(), [
    "connectionMade",
    "dataReceived",
    "eofReceived",
    "connectionLost",
  ]);
});

Deno.test("Transport.writeEof() sends buffered data first", async () => {
  const protocol = new RecordingProtocol({ eofResult: true });
  await using pair = await rawPair(protocol);
  const data = pattern(2 * MiB, 3);
  pair.transport.write(data);
  pair.transport.writeEof();
  const received = await readAll(pair.peer);
  assertEquals(await sha256(received), await sha256(data));
});

Deno.test("Transport.write() and writelines() after writeEof() throw", async () => {
  const protocol = new RecordingProtocol();
  await using pair = await rawPair(protocol);
  pair.transport.writeEof();
  const error = assertThrows(() => pair.transport.write(bytes("x")), Error);
  assert(!(error instanceof TypeError));
  assertStringIncludes(error.message, "writeEof");
  assertThrows(
    () => pair.transport.writelines([bytes("x")]),
    Error,
    "writeEof",
  );
  assertEquals((await readAll(pair.peer)).length, 0);
});

Deno.test("Protocol.eofReceived() returning true keeps the write side usable", async () => {
  const protocol = new RecordingProtocol({ eofResult: true });
  await using pair = await rawPair(protocol);
  await pair.peer.closeWrite();
  await within(protocol.eof.promise, "eofReceived");
  await sleep(20);
  assert(!pair.transport.isClosing());
  pair.transport.write(bytes("after eof"));
  pair.transport.close();
  assertEquals(text(await readAll(pair.peer)), "after eof");
  assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
  assertEquals(protocol.events, [
    "connectionMade",
    "eofReceived",
    "connectionLost",
  ]);
});

Deno.test("Protocol.eofReceived() returning a falsy value closes the transport", async (t) => {
  for (const result of [undefined, false]) {
    await t.step(`eofReceived() returns ${result}`, async () => {
      const protocol = new RecordingProtocol(
        result === undefined ? {} : { eofResult: result },
      );
      await using pair = await rawPair(protocol);
      await pair.peer.closeWrite();
      await within(protocol.eof.promise, "eofReceived");
      assert(pair.transport.isClosing());
      assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
      assertEquals((await readAll(pair.peer)).length, 0);
      assertEquals(protocol.events, [
        "connectionMade",
        "eofReceived",
        "connectionLost",
      ]);
    });
  }
});

// ---------------------------------------------------------- flow control

Deno.test("pauseWriting() fires only when the buffer goes strictly over high, resumeWriting() once at low or below", async () => {
  const resumeSizes: number[] = [];
  const protocol: RecordingProtocol = new RecordingProtocol({
    onEvent(name) {
      if (name === "resumeWriting") {
        resumeSizes.push(protocol.transport!.getWriteBufferSize());
      }
    },
  });
  await using pair = await rawPair(protocol);
  const transport = pair.transport;
  transport.setWriteBufferLimits({ high: 1000 });
  assertEquals(transport.getWriteBufferLimits(), { high: 1000, low: 250 });
  transport.write(pattern(1000));
  assertEquals(transport.getWriteBufferSize(), 1000);
  assertEquals(protocol.count("pauseWriting"), 0, "exactly high: no pause");
  transport.write(pattern(1));
  assertEquals(
    protocol.count("pauseWriting"),
    1,
    "high + 1: pause, inside write()",
  );
  transport.write(pattern(100));
  transport.writelines([pattern(10), pattern(10)]);
  assertEquals(protocol.count("pauseWriting"), 1, "only once per crossing");
  await readExactly(pair.peer, 1121);
  await waitUntil(() => protocol.count("resumeWriting") === 1, "resumeWriting");
  assert(resumeSizes[0]! <= 250, `resumed at ${resumeSizes[0]}`);
  assertEquals(transport.getWriteBufferSize(), 0);

  // A second crossing pauses and resumes again.
  transport.write(pattern(1001));
  assertEquals(protocol.count("pauseWriting"), 2);
  await readExactly(pair.peer, 1001);
  await waitUntil(() => protocol.count("resumeWriting") === 2, "resumeWriting");
  await nextMacrotask();
  assertEquals(protocol.events, [
    "connectionMade",
    "pauseWriting",
    "resumeWriting",
    "pauseWriting",
    "resumeWriting",
  ]);
});

Deno.test("resumeWriting() fires as the buffer drains to exactly low, not later", async () => {
  const sizes: number[] = [];
  const protocol: RecordingProtocol = new RecordingProtocol({
    onEvent(name) {
      if (name.endsWith("Writing")) {
        sizes.push(protocol.transport!.getWriteBufferSize());
      }
    },
  });
  await using pair = await rawPair(protocol);
  // The "socket" extra is the very Deno.Conn the transport writes to: make
  // each OS write take at most 100 bytes, so the buffer drains in steps of
  // 100 (1050, 950, ..., 250) and passes through exactly `low`.
  const socket = pair.transport.getExtraInfo("socket") as Deno.Conn & {
    writeNow?: (data: Uint8Array) => number;
  };
  const write = socket.write.bind(socket);
  socket.write = (data: Uint8Array) => write(data.subarray(0, 100));
  // The native backend's synchronous write.
  const writeNow = socket.writeNow?.bind(socket);
  if (writeNow) {
    socket.writeNow = (data: Uint8Array) => writeNow(data.subarray(0, 100));
  }
  pair.transport.setWriteBufferLimits({ high: 1000, low: 250 });
  pair.transport.write(pattern(1050));
  await readExactly(pair.peer, 1050);
  await waitUntil(() => protocol.count("resumeWriting") === 1, "resumeWriting");
  assertEquals(sizes, [1050, 250]);
});

Deno.test("A single write() of high + 1 bytes calls pauseWriting() once, inside that write()", async () => {
  const protocol = new RecordingProtocol();
  await using pair = await rawPair(protocol);
  pair.transport.setWriteBufferLimits({ high: 100, low: 10 });
  pair.transport.write(pattern(101));
  assertEquals(protocol.events, ["connectionMade", "pauseWriting"]);
  await readExactly(pair.peer, 101);
  await waitUntil(() => protocol.count("resumeWriting") === 1, "resumeWriting");
});

Deno.test("One 4 MiB write() with default limits calls pauseWriting() once, inside that write(); getWriteBufferSize() counts it all", async () => {
  const protocol = new RecordingProtocol();
  await using pair = await rawPair(protocol);
  assertEquals(pair.transport.getWriteBufferLimits(), {
    high: 64 * 1024,
    low: 16 * 1024,
  });
  const data = pattern(4 * MiB, 4);
  pair.transport.write(data);
  assertEquals(protocol.events, ["connectionMade", "pauseWriting"]);
  assertEquals(pair.transport.getWriteBufferSize(), 4 * MiB);
  const received = await readExactly(pair.peer, 4 * MiB);
  assertEquals(await sha256(received), await sha256(data));
  await waitUntil(() => protocol.count("resumeWriting") === 1, "resumeWriting");
  assertEquals(pair.transport.getWriteBufferSize(), 0);
  assertEquals(protocol.events, [
    "connectionMade",
    "pauseWriting",
    "resumeWriting",
  ]);
});

Deno.test("Transport.getWriteBufferSize() counts bytes already handed to the OS write but not yet written", async () => {
  const protocol = new RecordingProtocol();
  await using pair = await rawPair(protocol);
  const data = pattern(8 * MiB, 5);
  pair.transport.write(data);
  // The single chunk has left the queue for Deno's write op by now, and the
  // peer reads nothing, so the write cannot complete.
  await sleep(100);
  const size = pair.transport.getWriteBufferSize();
  assert(size > 16 * 1024 && size <= 8 * MiB, `buffer size ${size}`);
  assertEquals(protocol.count("resumeWriting"), 0);
  const received = await readExactly(pair.peer, 8 * MiB);
  assertEquals(await sha256(received), await sha256(data));
  await waitUntil(() => pair.transport.getWriteBufferSize() === 0, "drain");
  assertEquals(protocol.count("resumeWriting"), 1);
});

Deno.test("Transport.setWriteBufferLimits() follows asyncio: high alone, low alone, neither", async () => {
  const protocol = new RecordingProtocol();
  await using pair = await rawPair(protocol);
  const transport = pair.transport;
  transport.setWriteBufferLimits({ high: 1000 });
  assertEquals(transport.getWriteBufferLimits(), { high: 1000, low: 250 });
  transport.setWriteBufferLimits({ high: 1001 });
  assertEquals(transport.getWriteBufferLimits(), { high: 1001, low: 250 });
  transport.setWriteBufferLimits({ low: 100 });
  assertEquals(transport.getWriteBufferLimits(), { high: 400, low: 100 });
  transport.setWriteBufferLimits({ high: 10, low: 10 });
  assertEquals(transport.getWriteBufferLimits(), { high: 10, low: 10 });
  transport.setWriteBufferLimits({ high: 0 });
  assertEquals(transport.getWriteBufferLimits(), { high: 0, low: 0 });
  transport.setWriteBufferLimits();
  assertEquals(transport.getWriteBufferLimits(), {
    high: 64 * 1024,
    low: 16 * 1024,
  });
  transport.setWriteBufferLimits({ high: 5 });
  transport.setWriteBufferLimits({});
  assertEquals(transport.getWriteBufferLimits(), {
    high: 64 * 1024,
    low: 16 * 1024,
  });
});

Deno.test("Transport.setWriteBufferLimits() rejects bad limits and keeps the old ones", async () => {
  const protocol = new RecordingProtocol();
  await using pair = await rawPair(protocol);
  const transport = pair.transport;
  transport.setWriteBufferLimits({ high: 800 });
  const bad: [unknown, typeof TypeError | typeof RangeError][] = [
    [{ high: -1 }, RangeError],
    [{ low: -1 }, RangeError],
    [{ high: NaN }, RangeError],
    [{ low: NaN }, RangeError],
    [{ high: 10, low: 20 }, RangeError],
    [{ high: "10" }, TypeError],
    [{ low: "1" }, TypeError],
    ["64k", TypeError],
  ];
  for (const [limits, ErrorClass] of bad) {
    assertThrows(
      () => transport.setWriteBufferLimits(limits as { high?: number }),
      ErrorClass,
      "Cannot set write buffer limits",
    );
    assertEquals(transport.getWriteBufferLimits(), { high: 800, low: 200 });
  }
});

Deno.test("Transport.setWriteBufferLimits() below the buffered size calls pauseWriting() at once", async () => {
  const protocol = new RecordingProtocol();
  await using pair = await rawPair(protocol);
  pair.transport.write(pattern(100));
  assertEquals(protocol.count("pauseWriting"), 0);
  pair.transport.setWriteBufferLimits({ high: 10 });
  assertEquals(protocol.events, ["connectionMade", "pauseWriting"]);
  await readExactly(pair.peer, 100);
  await waitUntil(() => protocol.count("resumeWriting") === 1, "resumeWriting");
});

// ------------------------------------------------------ 16 MiB both ways

Deno.test("16 MiB go both ways byte-exact with a Protocol client and echo server", async () => {
  const { server, port } = await startEchoServer();
  const data = pattern(16 * MiB, 16);
  const client = new RecordingProtocol();
  const [transport] = await createConnection(() => client, { port });
  transport.write(data);
  transport.writeEof();
  assertEquals(await within(client.lost.promise, "connectionLost"), null);
  const received = client.received();
  assertEquals(received.length, data.length);
  assertEquals(await sha256(received), await sha256(data));
  assertEquals(client.events[1], "pauseWriting", "inside the 16 MiB write()");
  assertEquals(
    collapse(
      client.events.filter((e) =>
        e !== "pauseWriting" && e !== "resumeWriting"
      ),
      "dataReceived",
    ),
    ["connectionMade", "dataReceived", "eofReceived", "connectionLost"],
  );
  assertEquals(client.count("pauseWriting"), 1);
  assertEquals(client.count("resumeWriting"), 1);
  assertEquals(client.count("eofReceived"), 1);
  await shutdown(server);
});

Deno.test("16 MiB go both ways byte-exact with BufferedProtocol on both ends", async () => {
  const server = await createServer(() => new BufferedEchoProtocol(), {
    hostname: "127.0.0.1",
    port: 0,
  });
  const { port } = server.addrs[0] as Deno.NetAddr;
  const size = 16 * MiB;
  const data = pattern(size, 17);
  const target = new Uint8Array(size);
  const overflow = new Uint8Array(1024);
  let offset = 0;
  let overflowed = 0;
  const lost = Promise.withResolvers<Error | null>();
  let last: Uint8Array = overflow;
  const [transport] = await createConnection(() => ({
    getBuffer(sizeHint: number): Uint8Array {
      assert(sizeHint > 0);
      last = offset < size ? target.subarray(offset) : overflow;
      return last;
    },
    bufferUpdated(nbytes: number): void {
      if (last === overflow) overflowed += nbytes;
      else offset += nbytes;
    },
    connectionLost: lost.resolve,
  }), { port });
  transport.write(data);
  transport.writeEof();
  assertEquals(await within(lost.promise, "connectionLost"), null);
  assertEquals(overflowed, 0);
  assertEquals(offset, size);
  assertEquals(await sha256(target), await sha256(data));
  await shutdown(server);
});

// --------------------------------------------------- pause/resume reading

Deno.test("Transport.pauseReading() and resumeReading() are idempotent", async () => {
  const protocol = new RecordingProtocol();
  await using pair = await rawPair(protocol);
  const transport = pair.transport;
  assert(transport.isReading());
  transport.pauseReading();
  transport.pauseReading();
  assert(!transport.isReading());
  transport.resumeReading();
  transport.resumeReading();
  assert(transport.isReading());
  await writeAll(pair.peer, bytes("once"));
  await protocol.waitForBytes(4);
  await sleep(20);
  assertEquals(protocol.receivedText(), "once");
  transport.close();
  assert(!transport.isReading());
  transport.resumeReading(); // a no-op once closing
  assert(!transport.isReading());
  await within(protocol.lost.promise, "connectionLost");
});

Deno.test("Transport.pauseReading() holds data and EOF, even from a read already in flight; resumeReading() delivers them in order", async () => {
  const protocol = new RecordingProtocol();
  await using pair = await rawPair(protocol);
  await nextMacrotask(); // the read loop has a read in flight now
  pair.transport.pauseReading();
  await writeAll(pair.peer, bytes("abc"));
  await sleep(50);
  assertEquals(protocol.events, ["connectionMade"]);
  await writeAll(pair.peer, bytes("def"));
  await pair.peer.closeWrite();
  await sleep(50);
  assertEquals(protocol.events, ["connectionMade"]);
  assert(!pair.transport.isClosing());
  pair.transport.resumeReading();
  assertEquals(protocol.events, ["connectionMade"]);
  await within(protocol.lost.promise, "connectionLost");
  assertEquals(protocol.receivedText(), "abcdef");
  assertEquals(protocol.sequence(), [
    "connectionMade",
    "dataReceived",
    "eofReceived",
    "connectionLost",
  ]);
});

Deno.test("Transport.pauseReading() from inside dataReceived() stops further delivery until resumeReading()", async () => {
  const protocol: RecordingProtocol = new RecordingProtocol({
    onEvent(name) {
      if (name === "dataReceived") protocol.transport!.pauseReading();
    },
  });
  await using pair = await rawPair(protocol);
  const transport = pair.transport;
  await writeAll(pair.peer, bytes("first"));
  await protocol.waitForBytes(5);
  await writeAll(pair.peer, bytes("second"));
  await sleep(50);
  assertEquals(protocol.receivedText(), "first");
  transport.resumeReading();
  await protocol.waitForBytes(11);
  assertEquals(protocol.receivedText(), "firstsecond");
});

// -------------------------------------------------------------- extra info

Deno.test("Transport.getExtraInfo() gives peername, sockname, socket, and defaultValue for unknown keys", async () => {
  const protocol = new RecordingProtocol();
  await using pair = await rawPair(protocol);
  const transport = pair.transport;
  assertEquals(transport.getExtraInfo("peername"), pair.peer.localAddr);
  assertEquals(transport.getExtraInfo("sockname"), pair.peer.remoteAddr);
  const socket = transport.getExtraInfo("socket") as Deno.TcpConn;
  assertEquals(socket.remoteAddr, pair.peer.localAddr);
  assertEquals(socket.localAddr, pair.peer.remoteAddr);
  assertEquals(transport.getExtraInfo("no such key"), undefined);
  assertEquals(transport.getExtraInfo("no such key", 42), 42);
  // Object.prototype members are not extra info.
  assertEquals(transport.getExtraInfo("toString", "none"), "none");
});

Deno.test("Transport.setProtocol() sends later callbacks to the new protocol", async () => {
  const first = new RecordingProtocol();
  await using pair = await rawPair(first);
  const second = new RecordingProtocol();
  pair.transport.setProtocol(second);
  assert(pair.transport.getProtocol() === second);
  await writeAll(pair.peer, bytes("to second"));
  await second.waitForBytes(9);
  pair.transport.close();
  await within(second.lost.promise, "connectionLost");
  assertEquals(first.events, ["connectionMade"]);
  assertEquals(second.sequence(), ["dataReceived", "connectionLost"]);
  assertThrows(
    () => pair.transport.setProtocol(null as unknown as RecordingProtocol),
    TypeError,
  );
});

// -------------------------------------------------------------- bad input

Deno.test("Transport.write() and writelines() reject non-Uint8Array data with a TypeError and buffer nothing", async () => {
  const protocol = new RecordingProtocol();
  await using pair = await rawPair(protocol);
  const transport = pair.transport;
  for (
    const value of ["text", null, undefined, 42, [1, 2], new ArrayBuffer(4)]
  ) {
    assertThrows(
      () => transport.write(value as unknown as Uint8Array),
      TypeError,
      "Cannot write to transport as data is not a Uint8Array",
    );
  }
  assertThrows(
    () =>
      transport.write(
        new DataView(new ArrayBuffer(4)) as unknown as Uint8Array,
      ),
    TypeError,
  );
  assertThrows(
    () =>
      transport.writelines([bytes("ok"), "not bytes" as unknown as Uint8Array]),
    TypeError,
  );
  assertThrows(
    () => transport.writelines(42 as unknown as Uint8Array[]),
    TypeError,
  );
  assertThrows(
    () => transport.writelines(null as unknown as Uint8Array[]),
    TypeError,
  );
  assertEquals(transport.getWriteBufferSize(), 0);
  transport.writelines([bytes("a"), bytes("b")]);
  transport.writelines(new Set([bytes("c")]));
  transport.close();
  assertEquals(text(await readAll(pair.peer)), "abc");
});

Deno.test("Transport.write() after the connection is lost drops the data without throwing, warning once", async () => {
  const protocol = new RecordingProtocol();
  await using pair = await rawPair(protocol);
  pair.transport.abort();
  await within(protocol.lost.promise, "connectionLost");
  const warnings: unknown[][] = [];
  const warn = console.warn;
  console.warn = (...args: unknown[]) => warnings.push(args);
  try {
    for (let i = 0; i < 10; i++) {
      pair.transport.write(bytes("dropped"));
      pair.transport.writelines([bytes("dropped")]);
    }
  } finally {
    console.warn = warn;
  }
  assertEquals(pair.transport.getWriteBufferSize(), 0);
  assertEquals(warnings.length, 1);
  // A wrong type is still a TypeError.
  assertThrows(
    () => pair.transport.write("x" as unknown as Uint8Array),
    TypeError,
  );
  assertEquals(protocol.events, ["connectionMade", "connectionLost"]);
});

/**
 * A readiness adapter (as the native backend's socket) over memory: what a
 * test queues is what `readNow` finds; every read and write is logged.
 */
class MemoryReadyIo implements ReadyIo {
  readonly incoming: Uint8Array[] = [];
  readonly readSize = 64 * 1024;
  listener: ReadyListener | null = null;
  constructor(readonly name: string, readonly log: string[]) {}
  readyToRead(): boolean {
    return this.incoming.length > 0;
  }
  readNow(buffer: Uint8Array): number | null {
    const data = this.incoming.shift();
    if (data === undefined) return -1;
    buffer.set(data.subarray(0, buffer.length));
    this.log.push(`${this.name} read ${data.length}`);
    return Math.min(data.length, buffer.length);
  }
  writeNow(data: Uint8Array): number {
    this.log.push(`${this.name} write ${data.length}`);
    return data.length;
  }
  listen(listener: ReadyListener | null): void {
    this.listener = listener;
  }
  wantRead(_on: boolean): void {}
  wantWrite(_on: boolean): void {}
  read(): Promise<number | null> {
    return Promise.reject(new Error("a ReadyIo is read with readNow"));
  }
  write(): Promise<number> {
    return Promise.reject(new Error("a ReadyIo is written with writeNow"));
  }
  close(): void {}
}

Deno.test("On a readiness adapter, a batch's small writes leave after the whole batch; 64 KiB of them leave before the next connection's read", async (t) => {
  for (
    const [size, expected] of [
      [1024, ["a read 1024", "b read 1024", "a write 1024", "b write 1024"]],
      [64 * 1024, [
        "a read 65536",
        "a write 65536",
        "b read 65536",
        "b write 65536",
      ]],
    ] as const
  ) {
    await t.step(`${size} B echoes`, async () => {
      const log: string[] = [];
      const echo = () => ({
        transport: null as Transport | null,
        connectionMade(transport: Transport) {
          this.transport = transport;
        },
        dataReceived(data: Uint8Array) {
          this.transport!.write(data);
        },
      });
      const a = new MemoryReadyIo("a", log);
      const b = new MemoryReadyIo("b", log);
      const ta = new StreamTransport(a, echo());
      const tb = new StreamTransport(b, echo());
      await nextMacrotask(); // connectionMade, then the first (empty) pump
      a.incoming.push(new Uint8Array(size));
      b.incoming.push(new Uint8Array(size));
      // One reactor batch: both connections are readable.
      a.listener![socketReadable]();
      b.listener![socketReadable]();
      await nextMacrotask();
      assertEquals(log, [...expected]);
      ta.abort();
      tb.abort();
      await nextMacrotask();
    });
  }
});

Deno.test("Writes queued in one tick leave in order, joined up to 64 KiB; a write of 64 KiB or more leaves alone", async () => {
  const log: string[] = [];
  const io = new MemoryReadyIo("a", log);
  const sent: Uint8Array[] = [];
  io.writeNow = (data: Uint8Array): number => {
    sent.push(data.slice());
    return data.length;
  };
  let transport: Transport | null = null;
  const protocol: Protocol = {
    connectionMade(t: Transport) {
      transport = t;
    },
    dataReceived() {},
  };
  const made = new StreamTransport(io, protocol);
  await nextMacrotask();
  const sizes = [10, 20, 64 * 1024 - 30, 100 * 1024, 5, 6, 64 * 1024 - 5, 1];
  const parts = sizes.map((size, i) => pattern(size, i + 1));
  for (const part of parts) transport!.write(part);
  assertEquals(transport!.getWriteBufferSize(), sizes.reduce((a, b) => a + b));
  await nextMacrotask();
  // The first three make 64 KiB exactly; 100 KiB alone; then 5 + 6 (the
  // next would pass 64 KiB), and the last two.
  assertEquals(sent.map((chunk) => chunk.length), [
    64 * 1024,
    100 * 1024,
    11,
    64 * 1024 - 5 + 1,
  ]);
  assertEquals(await sha256(concat(sent)), await sha256(concat(parts)));
  assertEquals(transport!.getWriteBufferSize(), 0);
  made.abort();
  await nextMacrotask();
});

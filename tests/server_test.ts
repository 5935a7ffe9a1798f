// Copyright 2026 the denio authors. MIT license.
// createServer() and Server over real TCP and Unix sockets: serving state,
// close/closeClients/abortClients/waitClosed, serveForever, `await using`,
// abort signals, Unix socket files, many clients, and bad input.

import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import {
  createConnection,
  createServer,
  type Protocol,
  Server,
  type Transport,
} from "../mod.ts";
import {
  BufferedEchoProtocol,
  bytes,
  collapse,
  collectExceptions,
  EchoProtocol,
  nextMacrotask,
  pattern,
  readAll,
  RecordingProtocol,
  runCommand,
  shutdown,
  sleep,
  startEchoServer,
  text,
  waitUntil,
  within,
  writeAll,
} from "./_stream_helpers.ts";
import { peerMissing } from "./_peers.ts";

/** Connects a RecordingProtocol client to 127.0.0.1:port. */
async function connect(
  port: number,
): Promise<[Transport, RecordingProtocol]> {
  return await createConnection(() => new RecordingProtocol(), { port });
}

/** Sends `message`, half-closes, and resolves with the echo once lost. */
async function echoOnce(
  port: number,
  message: Uint8Array,
): Promise<Uint8Array> {
  const [transport, client] = await connect(port);
  transport.write(message);
  transport.writeEof();
  const error = await within(client.lost.promise, "client connectionLost");
  assertEquals(error, null);
  return client.received();
}

// ------------------------------------------------------------- basics

Deno.test("createServer() listens on 127.0.0.1:0 and reports the bound address in addrs", async () => {
  const server = await createServer(() => new EchoProtocol(), {
    hostname: "127.0.0.1",
    port: 0,
  });
  assertInstanceOf(server, Server);
  assertEquals(server.addrs.length, 1);
  const addr = server.addrs[0] as Deno.NetAddr;
  assertEquals(addr.transport, "tcp");
  assertEquals(addr.hostname, "127.0.0.1");
  assert(addr.port > 0 && addr.port <= 65535);
  assert(server.isServing());
  assertEquals(text(await echoOnce(addr.port, bytes("hi"))), "hi");
  await shutdown(server);
  assert(!server.isServing());
  assertEquals(server.addrs, []);
});

Deno.test("createServer() with a BufferedProtocol factory serves it", async () => {
  await using server = await createServer(() => new BufferedEchoProtocol(), {
    hostname: "127.0.0.1",
    port: 0,
  });
  const { port } = server.addrs[0] as Deno.NetAddr;
  const data = pattern(300_000, 9);
  assertEquals(await echoOnce(port, data), data);
});

Deno.test("createServer() with startServing: false accepts nothing until startServing()", async () => {
  let made = 0;
  const server = await createServer(() => {
    made++;
    return new EchoProtocol();
  }, { hostname: "127.0.0.1", port: 0, startServing: false });
  const { port } = server.addrs[0] as Deno.NetAddr;
  assert(!server.isServing());
  // The kernel completes the handshake (the socket listens), but no
  // protocol is made while not serving.
  const raw = await Deno.connect({ port });
  await writeAll(raw, bytes("early"));
  await sleep(50);
  assertEquals(made, 0);
  server.startServing();
  server.startServing(); // idempotent
  assert(server.isServing());
  await raw.closeWrite();
  assertEquals(text(await readAll(raw)), "early");
  raw.close();
  assertEquals(made, 1);
  await shutdown(server);
  assertThrows(() => server.startServing(), Error, "closed");
});

Deno.test("Server.close() stops accepting but keeps open connections", async () => {
  const { server, port, protocols } = await startEchoServer();
  const [transport, client] = await connect(port);
  await waitUntil(() => protocols.length === 1, "the server connection");
  server.close();
  server.close(); // idempotent
  assert(!server.isServing());
  assertEquals(server.addrs, []);
  // A new client never reaches a protocol. (Deno releases the listening
  // socket a moment after close(), so a connect racing it may be accepted
  // by the kernel and then reset instead of refused.)
  try {
    const late = await Deno.connect({ port });
    try {
      assertEquals(
        await within(late.read(new Uint8Array(1)), "late read"),
        null,
      );
    } catch (error) {
      assertInstanceOf(error, Deno.errors.ConnectionReset);
    } finally {
      late.close();
    }
  } catch (error) {
    assert(
      error instanceof Deno.errors.ConnectionRefused ||
        error instanceof Deno.errors.ConnectionReset,
      `connect after close: ${error}`,
    );
  }
  assertEquals(protocols.length, 1);
  // The accepted connection still echoes.
  transport.write(bytes("still here"));
  await client.waitForBytes(10);
  assertEquals(client.receivedText(), "still here");
  transport.close();
  await within(server.waitClosed(), "waitClosed");
  assertEquals(await within(client.lost.promise, "connectionLost"), null);
});

Deno.test("Server.waitClosed() resolves only once the server is closed and every connection is gone", async () => {
  const { server, port } = await startEchoServer();
  let done = false;
  const waiting = server.waitClosed().then(() => done = true);
  const [transport, client] = await connect(port);
  await sleep(20);
  assert(!done, "resolved while serving");
  server.close();
  await sleep(20);
  assert(!done, "resolved while a connection is open");
  transport.close();
  await within(waiting, "waitClosed");
  assert(done);
  await within(client.lost.promise, "connectionLost");
  // Once closed and empty it resolves at once.
  await within(server.waitClosed(), "waitClosed again");
});

Deno.test("Server.closeClients() closes every connection after flushing its buffer", async () => {
  const big = pattern(3 * 1024 * 1024, 11);
  const serverSide: Transport[] = [];
  const server = await createServer(() => ({
    connectionMade(transport: Transport) {
      serverSide.push(transport);
      transport.write(big);
    },
  }), { hostname: "127.0.0.1", port: 0 });
  const { port } = server.addrs[0] as Deno.NetAddr;
  const clients = await Promise.all([connect(port), connect(port)]);
  await waitUntil(() => serverSide.length === 2, "two server connections");
  server.close();
  server.closeClients();
  await within(server.waitClosed(), "waitClosed");
  for (const [, client] of clients) {
    assertEquals(await within(client.lost.promise, "client lost"), null);
    assertEquals(client.size, big.length);
    assertEquals(client.count("eofReceived"), 1);
  }
});

Deno.test("Server.abortClients() aborts every connection", async () => {
  const lost: (Error | null)[] = [];
  const server = await createServer(() => ({
    connectionMade(transport: Transport) {
      transport.write(pattern(8 * 1024 * 1024, 12));
    },
    connectionLost(error: Error | null) {
      lost.push(error);
    },
  }), { hostname: "127.0.0.1", port: 0 });
  const { port } = server.addrs[0] as Deno.NetAddr;
  const [transport, client] = await connect(port);
  transport.pauseReading(); // the server's 8 MiB cannot all be sent
  await sleep(50);
  server.abortClients();
  server.close();
  await within(server.waitClosed(), "waitClosed");
  assertEquals(lost, [null]);
  transport.resumeReading();
  await within(client.lost.promise, "client lost");
  assert(client.size < 8 * 1024 * 1024, `client got ${client.size}`);
});

Deno.test("Server.serveForever() resolves when the server is closed and rejects on a closed server", async () => {
  const server = await createServer(() => new EchoProtocol(), {
    hostname: "127.0.0.1",
    port: 0,
    startServing: false,
  });
  let resolved = false;
  const forever = server.serveForever().then(() => resolved = true);
  assert(server.isServing(), "serveForever() starts serving");
  const { port } = server.addrs[0] as Deno.NetAddr;
  assertEquals(text(await echoOnce(port, bytes("x"))), "x");
  await sleep(10);
  assert(!resolved);
  server.close();
  await within(forever, "serveForever");
  await assertRejects(() => server.serveForever(), Error, "closed");
  await server.waitClosed();
});

Deno.test("Server [Symbol.asyncDispose] closes the server and its clients and waits for them", async () => {
  const serverLost: (Error | null)[] = [];
  let serverMade = 0;
  let client: RecordingProtocol;
  let server: Server;
  {
    await using scoped = await createServer(() => ({
      connectionMade() {
        serverMade++;
      },
      connectionLost(error: Error | null) {
        serverLost.push(error);
      },
    }), { hostname: "127.0.0.1", port: 0 });
    server = scoped;
    const { port } = scoped.addrs[0] as Deno.NetAddr;
    [, client] = await connect(port);
    await waitUntil(() => serverMade === 1, "the server connection");
  }
  assert(!server.isServing());
  // Every server-side connection was gone before the scope ended.
  assertEquals(serverLost, [null]);
  assertEquals(await within(client.lost.promise, "client lost"), null);
});

Deno.test("createServer() signal: aborting closes the server; an aborted signal rejects", async () => {
  const controller = new AbortController();
  const server = await createServer(() => new EchoProtocol(), {
    hostname: "127.0.0.1",
    port: 0,
    signal: controller.signal,
  });
  const forever = server.serveForever();
  controller.abort();
  assert(!server.isServing());
  await within(forever, "serveForever");
  await within(server.waitClosed(), "waitClosed");

  let made = false;
  await assertRejects(
    () =>
      createServer(() => {
        made = true;
        return new EchoProtocol();
      }, { hostname: "127.0.0.1", port: 0, signal: controller.signal }),
    DOMException,
  );
  assert(!made);
});

Deno.test("createServer(): a throwing protocol factory drops that connection and keeps serving", async () => {
  using exceptions = collectExceptions();
  let calls = 0;
  const server = await createServer((): Protocol => {
    if (++calls === 1) throw new Error("factory failed");
    return new EchoProtocol();
  }, { hostname: "127.0.0.1", port: 0 });
  const { port } = server.addrs[0] as Deno.NetAddr;
  const raw = await Deno.connect({ port });
  assertEquals((await readAll(raw)).length, 0);
  raw.close();
  assertEquals(exceptions.contexts.length, 1);
  assertEquals(
    (exceptions.contexts[0]!.error as Error).message,
    "factory failed",
  );
  assertEquals(text(await echoOnce(port, bytes("ok"))), "ok");
  await shutdown(server);
  await nextMacrotask();
  assertEquals(exceptions.unhandled, []);
});

// ------------------------------------------------------------- many clients

Deno.test("A server answers 200 concurrent clients, each echo byte-exact", async () => {
  const { server, port, protocols } = await startEchoServer();
  const count = 200;
  const results = await within(
    Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const message = pattern(2048 + i, i + 1);
        const echo = await echoOnce(port, message);
        assertEquals(echo, message, `client ${i}`);
        return echo.length;
      }),
    ),
    "200 clients",
    60_000,
  );
  assertEquals(results.length, count);
  assertEquals(protocols.length, count);
  await shutdown(server);
  for (const protocol of protocols) {
    assertEquals(await protocol.lost.promise, null);
  }
});

// ------------------------------------------------------------ Unix sockets

Deno.test("createServer() and createConnection() over a Unix socket: exchange, half-close, extra info, socket file removed on close", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denio_unix_" });
  const path = `${dir}/echo.sock`;
  try {
    const server = await createServer(() => new EchoProtocol(), {
      transport: "unix",
      path,
    });
    const addr = server.addrs[0] as Deno.UnixAddr;
    assertEquals(addr.transport, "unix");
    assertEquals(addr.path, path);
    assert((await Deno.lstat(path)).isSocket);

    const [transport, client] = await createConnection(
      () => new RecordingProtocol(),
      { transport: "unix", path },
    );
    assert(transport.canWriteEof());
    const peername = transport.getExtraInfo("peername") as Deno.UnixAddr;
    assertEquals(peername.transport, "unix");
    assertEquals(peername.path, path);
    assertEquals(
      (transport.getExtraInfo("sockname") as Deno.UnixAddr).transport,
      "unix",
    );
    assert(transport.getExtraInfo("socket") !== undefined);
    const data = pattern(1024 * 1024, 21);
    transport.write(data);
    transport.writeEof();
    assertEquals(await within(client.lost.promise, "connectionLost"), null);
    assertEquals(client.received(), data);
    assertEquals(client.sequence().filter((e) => e.endsWith("Writing")), [
      "pauseWriting",
      "resumeWriting",
    ]);
    await shutdown(server);
    await assertRejects(() => Deno.lstat(path), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("createServer() over Unix replaces a stale socket file but not a regular file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denio_unix_" });
  const path = `${dir}/stale.sock`;
  try {
    // A socket file left behind by a process that exited without closing
    // its listener (Deno's own close() unlinks the file).
    const { success } = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `Deno.listen({ transport: "unix", path: ${
          JSON.stringify(path)
        } }); Deno.exit(0);`,
      ],
      stdout: "null",
      stderr: "inherit",
    }).output();
    assert(success);
    assert((await Deno.lstat(path)).isSocket);
    await assertRejects(() => Deno.connect({ transport: "unix", path }));
    const server = await createServer(() => new EchoProtocol(), {
      transport: "unix",
      path,
    });
    const [transport, client] = await createConnection(
      () => new RecordingProtocol(),
      { transport: "unix", path },
    );
    transport.write(bytes("fresh"));
    transport.writeEof();
    await within(client.lost.promise, "connectionLost");
    assertEquals(client.receivedText(), "fresh");
    await shutdown(server);

    const file = `${dir}/regular`;
    await Deno.writeTextFile(file, "keep me");
    await assertRejects(() =>
      createServer(() => new EchoProtocol(), { transport: "unix", path: file })
    );
    assertEquals(await Deno.readTextFile(file), "keep me");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// --------------------------------------------------------------- bad input

Deno.test("createServer() rejects bad input with TypeError or RangeError", async (t) => {
  const factory = () => new EchoProtocol();
  const cases: [string, () => Promise<unknown>, typeof TypeError, string][] = [
    [
      "factory not a function",
      () => createServer("echo" as unknown as () => Protocol, { port: 0 }),
      TypeError,
      "protocolFactory",
    ],
    [
      "options not an object",
      () => createServer(factory, null as unknown as { port: number }),
      TypeError,
      "options",
    ],
    [
      "port 70000",
      () => createServer(factory, { port: 70000 }),
      RangeError,
      "port",
    ],
    ["port -1", () => createServer(factory, { port: -1 }), RangeError, "port"],
    [
      "port 1.5",
      () => createServer(factory, { port: 1.5 }),
      RangeError,
      "port",
    ],
    [
      'port "80"',
      () => createServer(factory, { port: "80" as unknown as number }),
      TypeError,
      "port",
    ],
    [
      'transport "udp"',
      () => createServer(factory, { transport: "udp" as "tcp" }),
      TypeError,
      "transport",
    ],
    [
      "unix without a path",
      () => createServer(factory, { transport: "unix" }),
      TypeError,
      "path",
    ],
    [
      "hostname not a string",
      () => createServer(factory, { hostname: 127 as unknown as string }),
      TypeError,
      "hostname",
    ],
    [
      "startServing not a boolean",
      () =>
        createServer(factory, { startServing: "yes" as unknown as boolean }),
      TypeError,
      "startServing",
    ],
    [
      "signal not an AbortSignal",
      () => createServer(factory, { signal: {} as AbortSignal }),
      TypeError,
      "signal",
    ],
  ];
  for (const [name, call, ErrorClass, word] of cases) {
    await t.step(name, async () => {
      const error = await assertRejects(call, ErrorClass);
      assertStringIncludes(error.message, "Cannot create server as");
      assertStringIncludes(error.message, word);
    });
  }
});

// -------------------------------------------- against CPython's own asyncio

const HAS_PYTHON = peerMissing("python3") === null;

/** An asyncio Protocol client: sends N bytes, half-closes, counts the echo. */
const PYTHON_PROTOCOL_CLIENT = `
import asyncio, sys
class Client(asyncio.Protocol):
    def __init__(self, done, size):
        self.done, self.size, self.got, self.events = done, size, 0, []
    def connection_made(self, transport):
        self.events.append("connection_made")
        transport.write(bytes(i % 251 for i in range(self.size)))
        transport.write_eof()
    def data_received(self, data):
        if self.events[-1] != "data_received":
            self.events.append("data_received")
        self.got += len(data)
    def eof_received(self):
        self.events.append("eof_received")
    def connection_lost(self, exc):
        self.events.append("connection_lost")
        self.done.set_result(None)
async def main(port, size):
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    _, client = await loop.create_connection(lambda: Client(done, size), "127.0.0.1", port)
    await asyncio.wait_for(done, 20)
    print(client.got, " ".join(client.events))
asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
`;

Deno.test({
  name:
    "createServer() serves a CPython asyncio Protocol client: echo complete, asyncio's callback order on both sides",
  ignore: !HAS_PYTHON,
  async fn() {
    const serverSide: RecordingProtocol[] = [];
    const server = await createServer(() => {
      const protocol: RecordingProtocol = new RecordingProtocol({
        onEvent(name) {
          if (name === "dataReceived") {
            protocol.transport!.write(protocol.chunks.at(-1)!);
          }
        },
      });
      serverSide.push(protocol);
      return protocol;
    }, { hostname: "127.0.0.1", port: 0 });
    const { port } = server.addrs[0] as Deno.NetAddr;
    const size = 500_000;
    const python = await runCommand("python3", [
      "-c",
      PYTHON_PROTOCOL_CLIENT,
      String(port),
      String(size),
    ]);
    assertEquals(python.code, 0, python.stderr);
    assertEquals(
      python.stdout,
      `${size} connection_made data_received eof_received connection_lost\n`,
    );
    await shutdown(server);
    assertEquals(serverSide.length, 1);
    const received = serverSide[0]!.received();
    assertEquals(received.length, size);
    assert(received.every((byte, i) => byte === i % 251));
    assertEquals(
      collapse(
        serverSide[0]!.events.filter((e) => !e.endsWith("Writing")),
        "dataReceived",
      ),
      ["connectionMade", "dataReceived", "eofReceived", "connectionLost"],
    );
  },
});

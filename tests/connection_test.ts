// Copyright 2026 the denio authors. MIT license.
// createConnection() over real sockets: what it resolves to, failures before
// a protocol exists (refused, aborted, throwing factory), and bad input.

import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
} from "@std/assert";
import {
  type ConnectOptions,
  createConnection,
  type Protocol,
  type Transport,
} from "../mod.ts";
import {
  bytes,
  LineProcess,
  pattern,
  readAll,
  RecordingProtocol,
  shutdown,
  startEchoServer,
  within,
} from "./_stream_helpers.ts";
import { peerMissing } from "./_peers.ts";

Deno.test("createConnection() resolves to [transport, protocol] once connectionMade() has run", async () => {
  const { server, port } = await startEchoServer();
  let made: Transport | undefined;
  const protocol: Protocol = {
    connectionMade(transport) {
      made = transport;
    },
  };
  // hostname defaults to 127.0.0.1.
  const [transport, got] = await createConnection(() => protocol, { port });
  assert(got === protocol);
  assert(made === transport);
  assert(transport.getProtocol() === protocol);
  assertEquals(
    (transport.getExtraInfo("peername") as Deno.NetAddr).hostname,
    "127.0.0.1",
  );
  transport.close();
  await shutdown(server);
});

Deno.test("createConnection() to a closed port rejects with ConnectionRefused and makes no protocol", async () => {
  // Find a port nothing listens on.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  let made = 0;
  await assertRejects(
    () =>
      createConnection(() => {
        made++;
        return {};
      }, { port }),
    Deno.errors.ConnectionRefused,
  );
  assertEquals(made, 0);
});

Deno.test("createConnection() with an aborted signal rejects and makes no protocol", async () => {
  const { server, port } = await startEchoServer();
  let made = 0;
  const factory = () => {
    made++;
    return {};
  };
  await assertRejects(
    () => createConnection(factory, { port, signal: AbortSignal.abort() }),
    DOMException,
  );
  const dir = await Deno.makeTempDir({ prefix: "denio_unix_" });
  try {
    await assertRejects(
      () =>
        createConnection(factory, {
          transport: "unix",
          path: `${dir}/none.sock`,
          signal: AbortSignal.abort(),
        }),
      DOMException,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assertEquals(made, 0);
  await shutdown(server);
});

Deno.test("createConnection(): a throwing protocol factory rejects with its error and closes the socket", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const accepted = listener.accept();
    const failure = new Error("factory failed");
    const rejected = assertRejects(
      () =>
        createConnection(() => {
          throw failure;
        }, { port: listener.addr.port }),
    );
    const peer = await accepted;
    assert(await rejected === failure);
    // The client side was closed: the peer reads EOF.
    assertEquals((await readAll(peer)).length, 0);
    peer.close();
  } finally {
    listener.close();
  }
});

Deno.test("createConnection(): a factory returning a non-object rejects with a TypeError", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const accepted = listener.accept();
    const rejected = assertRejects(
      () =>
        createConnection(
          () => "protocol" as unknown as Protocol,
          { port: listener.addr.port },
        ),
      TypeError,
      "protocolFactory",
    );
    const peer = await accepted;
    await rejected;
    assertEquals((await readAll(peer)).length, 0);
    peer.close();
  } finally {
    listener.close();
  }
});

Deno.test("createConnection() over a Unix socket reaches a plain Deno listener", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denio_unix_" });
  const path = `${dir}/plain.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  try {
    const accepted = listener.accept();
    const [transport, client] = await createConnection(
      () => new RecordingProtocol(),
      { transport: "unix", path },
    );
    const peer = await accepted;
    transport.write(bytes("over unix"));
    transport.writeEof();
    assertEquals(new TextDecoder().decode(await readAll(peer)), "over unix");
    await peer.write(bytes("back"));
    peer.close();
    assertEquals(await within(client.lost.promise, "connectionLost"), null);
    assertEquals(client.receivedText(), "back");
  } finally {
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("createConnection() rejects bad input with TypeError or RangeError before connecting", async (t) => {
  const factory = () => ({});
  const cases: [string, unknown, unknown, typeof TypeError, string][] = [
    ["port 70000", factory, { port: 70000 }, RangeError, "port"],
    ["port -1", factory, { port: -1 }, RangeError, "port"],
    ["port 1.5", factory, { port: 1.5 }, RangeError, "port"],
    ["port 0", factory, { port: 0 }, RangeError, "port"],
    ['port "80"', factory, { port: "80" }, TypeError, "port"],
    ["no port", factory, {}, TypeError, "port"],
    ["factory not a function", {}, { port: 80 }, TypeError, "protocolFactory"],
    ["options missing", factory, undefined, TypeError, "options"],
    [
      'transport "udp"',
      factory,
      { transport: "udp", port: 80 },
      TypeError,
      "transport",
    ],
    ["unix without a path", factory, { transport: "unix" }, TypeError, "path"],
    [
      "hostname not a string",
      factory,
      { hostname: 1, port: 80 },
      TypeError,
      "hostname",
    ],
    [
      "signal not an AbortSignal",
      factory,
      { port: 80, signal: "stop" },
      TypeError,
      "signal",
    ],
    [
      "tls over unix",
      factory,
      { transport: "unix", path: "/nonexistent/x.sock", tls: {} },
      TypeError,
      "tls",
    ],
  ];
  for (const [name, protocolFactory, options, ErrorClass, word] of cases) {
    await t.step(name, async () => {
      const error = await assertRejects(
        () =>
          createConnection(
            protocolFactory as () => Protocol,
            options as ConnectOptions,
          ),
        ErrorClass,
      );
      assertStringIncludes(error.message, "Cannot create connection as");
      assertStringIncludes(error.message, word);
    });
  }
});

// -------------------------------------------- against CPython's own asyncio

const HAS_PYTHON = peerMissing("python3") === null;

/** An asyncio Protocol server that logs its callbacks, replies after EOF and closes. */
const PYTHON_PROTOCOL_SERVER = `
import asyncio
class Recording(asyncio.Protocol):
    def __init__(self, done):
        self.done, self.events, self.size = done, [], 0
    def connection_made(self, transport):
        self.transport = transport
        self.events.append("connection_made")
    def data_received(self, data):
        if self.events[-1] != "data_received":
            self.events.append("data_received")
        self.size += len(data)
    def eof_received(self):
        self.events.append("eof_received")
        self.transport.write(b"got %d bytes" % self.size)
        self.transport.close()  # flushes the reply, then sends FIN
    def connection_lost(self, exc):
        self.events.append("connection_lost")
        print("events", " ".join(self.events), exc, flush=True)
        self.done.set_result(None)
async def main():
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    server = await loop.create_server(lambda: Recording(done), "127.0.0.1", 0)
    print("port", server.sockets[0].getsockname()[1], flush=True)
    await asyncio.wait_for(done, 20)
    server.close()
asyncio.run(main())
`;

Deno.test({
  name:
    "createConnection() half-closes against a CPython asyncio Protocol server: both sides see asyncio's callback order",
  ignore: !HAS_PYTHON,
  async fn() {
    await using python = new LineProcess("python3", [
      "-c",
      PYTHON_PROTOCOL_SERVER,
    ]);
    const port = Number((await python.waitForLine(/^port \d+$/)).split(" ")[1]);
    const [transport, client] = await createConnection(
      () => new RecordingProtocol(),
      { port },
    );
    transport.write(pattern(300_000, 5));
    transport.writeEof(); // half-close: Python answers after its eof_received
    assertEquals(await within(client.lost.promise, "connectionLost"), null);
    assertEquals(client.receivedText(), "got 300000 bytes");
    assertEquals(client.sequence(), [
      "connectionMade",
      "pauseWriting",
      "resumeWriting",
      "dataReceived",
      "eofReceived",
      "connectionLost",
    ]);
    assertEquals(
      await python.waitForLine(/^events /),
      "events connection_made data_received eof_received connection_lost None",
    );
    assertEquals((await python.status()).code, 0);
  },
});

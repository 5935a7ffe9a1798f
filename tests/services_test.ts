// Copyright 2026 the denio authors. MIT license.
// The service options of issue 9: idleTimeout / setIdleTimeout() and
// timeoutReached(), maxConnections and connectionCount, keepAlive and
// reusePort, over real sockets on 127.0.0.1, and bad input to each.

import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import {
  connectReadPipe,
  createConnection,
  createServer,
  type Protocol,
  startTls,
  type Transport,
} from "../mod.ts";
import { makeTestCerts } from "./_certs.ts";
import { collectExceptions, readAll } from "./_stream_helpers.ts";
import { commandMissing } from "./_peers.ts";
import { sleep, within } from "./_timing.ts";

const encoder = new TextEncoder();
const WAIT = 15_000;

/** Logs every callback; answers timeoutReached() from a script. */
class Recorder implements Protocol {
  readonly events: string[] = [];
  readonly lost: PromiseWithResolvers<Error | null> = Promise.withResolvers();
  readonly made: PromiseWithResolvers<Transport> = Promise.withResolvers();
  transport: Transport | undefined;
  madeAt = 0;
  lostAt = 0;
  #answers: (boolean | undefined | "throw")[];
  #echo: boolean;

  constructor(answers: (boolean | undefined | "throw")[] = [], echo = false) {
    this.#answers = answers;
    this.#echo = echo;
  }
  connectionMade(transport: Transport): void {
    this.transport = transport;
    this.madeAt = performance.now();
    this.events.push("connectionMade");
    this.made.resolve(transport);
  }
  dataReceived(data: Uint8Array): void {
    this.events.push("dataReceived");
    if (this.#echo) this.transport!.write(data.slice());
  }
  eofReceived(): void {
    this.events.push("eofReceived");
  }
  timeoutReached(): boolean | undefined {
    this.events.push("timeoutReached");
    const answer = this.#answers.shift();
    if (answer === "throw") throw new Error("thrown by timeoutReached");
    return answer;
  }
  connectionLost(error: Error | null): void {
    this.lostAt = performance.now();
    this.events.push(`connectionLost(${error?.name ?? "null"})`);
    this.lost.resolve(error);
  }
}

/** A server whose protocols are Recorders, collected in `made`. */
async function recordingServer(
  options: Parameters<typeof createServer>[1],
  make: () => Recorder = () => new Recorder(),
) {
  const made: Recorder[] = [];
  const server = await createServer(() => {
    const protocol = make();
    made.push(protocol);
    return protocol;
  }, { hostname: "127.0.0.1", port: 0, ...options });
  const { port } = server.addrs[0] as Deno.NetAddr;
  return { server, port, made };
}

async function waitFor(
  check: () => boolean,
  what: string,
  ms = WAIT,
): Promise<void> {
  const end = performance.now() + ms;
  while (!check()) {
    if (performance.now() > end) {
      throw new Error(`Timed out waiting for ${what}`);
    }
    await sleep(5);
  }
}

Deno.test("ServeOptions.idleTimeout aborts a silent connection with TimedOut after timeoutReached()", async () => {
  const { server, port, made } = await recordingServer({ idleTimeout: 150 });
  const conn = await Deno.connect({ port });
  await waitFor(() => made.length === 1, "the server protocol");
  const error = await within(made[0]!.lost.promise, "connectionLost", WAIT);
  assertInstanceOf(error, Deno.errors.TimedOut);
  assertStringIncludes(error!.message, "150 ms");
  assertEquals(made[0]!.events, [
    "connectionMade",
    "timeoutReached",
    "connectionLost(TimedOut)",
  ]);
  // Aborted, not held: at least 150 ms and well under the 1.25x slack plus
  // scheduling noise.
  const idle = made[0]!.lostAt - made[0]!.madeAt;
  assert(idle >= 140, `reaped after ${idle} ms`);
  // The peer sees the connection end.
  assertEquals((await readAll(conn)).length, 0);
  conn.close();
  server.close();
  await server.waitClosed();
});

Deno.test("Protocol.timeoutReached() returning true keeps the connection and restarts the timer", async () => {
  const { server, port, made } = await recordingServer(
    { idleTimeout: 80 },
    () => new Recorder([true, true, false]),
  );
  const conn = await Deno.connect({ port });
  await waitFor(() => made.length === 1, "the server protocol");
  const error = await within(made[0]!.lost.promise, "connectionLost", WAIT);
  assertInstanceOf(error, Deno.errors.TimedOut);
  assertEquals(made[0]!.events, [
    "connectionMade",
    "timeoutReached",
    "timeoutReached",
    "timeoutReached",
    "connectionLost(TimedOut)",
  ]);
  assert(made[0]!.lostAt - made[0]!.madeAt >= 3 * 80 - 10);
  conn.close();
  server.close();
  await server.waitClosed();
});

Deno.test("idleTimeout: traffic keeps a connection open; silence then reaps it", async () => {
  const { server, port, made } = await recordingServer(
    { idleTimeout: 200 },
    () => new Recorder([], true),
  );
  const conn = await Deno.connect({ port });
  const buffer = new Uint8Array(16);
  // A byte every 60 ms for about four timeouts: never idle.
  for (let i = 0; i < 14; i++) {
    await conn.write(encoder.encode("x"));
    assertEquals(await conn.read(buffer), 1);
    await sleep(60);
  }
  assertEquals(made[0]!.events.includes("timeoutReached"), false);
  const error = await within(made[0]!.lost.promise, "connectionLost", WAIT);
  assertInstanceOf(error, Deno.errors.TimedOut);
  assertEquals(made[0]!.events.filter((e) => e === "timeoutReached").length, 1);
  conn.close();
  server.close();
  await server.waitClosed();
});

Deno.test("idleTimeout: a paused reader with a flushing writer is not idle", async () => {
  const total = 4 * 1024 * 1024;
  const { server, port, made } = await recordingServer(
    { idleTimeout: 200 },
    () => {
      const protocol = new Recorder();
      const made = protocol.connectionMade.bind(protocol);
      protocol.connectionMade = (transport) => {
        made(transport);
        transport.pauseReading();
        transport.write(new Uint8Array(total));
        transport.close();
      };
      return protocol;
    },
  );
  const conn = await Deno.connect({ port });
  // Read slowly: 64 KiB every 20 ms, so the server's write takes far longer
  // than the timeout while every period sees bytes leave.
  const buffer = new Uint8Array(64 * 1024);
  let received = 0;
  for (let i = 0; i < 10_000; i++) {
    const n = await conn.read(buffer);
    if (n === null) break;
    received += n;
    await sleep(received % (256 * 1024) < n ? 20 : 0);
  }
  assertEquals(received, total);
  assertEquals(await within(made[0]!.lost.promise, "lost", WAIT), null);
  assertEquals(made[0]!.events.includes("timeoutReached"), false);
  conn.close();
  server.close();
  await server.waitClosed();
});

Deno.test("idleTimeout: a closing transport whose peer never reads is aborted with TimedOut", async () => {
  const { server, port, made } = await recordingServer(
    { idleTimeout: 150 },
    () => {
      const protocol = new Recorder();
      const made = protocol.connectionMade.bind(protocol);
      protocol.connectionMade = (transport) => {
        made(transport);
        transport.write(new Uint8Array(32 * 1024 * 1024));
        transport.close();
      };
      return protocol;
    },
  );
  const conn = await Deno.connect({ port });
  await waitFor(() => made.length === 1, "the server protocol");
  const error = await within(made[0]!.lost.promise, "connectionLost", WAIT);
  assertInstanceOf(error, Deno.errors.TimedOut);
  // Closing: the protocol is not asked again.
  assertEquals(made[0]!.events[0], "connectionMade");
  assertEquals(made[0]!.events.at(-1), "connectionLost(TimedOut)");
  assertEquals(made[0]!.events.includes("timeoutReached"), false);
  conn.close();
  server.close();
  await server.waitClosed();
});

Deno.test("Protocol.timeoutReached() that throws is fatal: the exception handler is told, connectionLost gets the error", async () => {
  using exceptions = collectExceptions();
  const { server, port, made } = await recordingServer(
    { idleTimeout: 80 },
    () => new Recorder(["throw"]),
  );
  const conn = await Deno.connect({ port });
  await waitFor(() => made.length === 1, "the server protocol");
  const error = await within(made[0]!.lost.promise, "connectionLost", WAIT);
  assertEquals(error?.message, "thrown by timeoutReached");
  assertEquals(exceptions.contexts.length, 1);
  assertStringIncludes(exceptions.contexts[0]!.message, "timeoutReached");
  conn.close();
  server.close();
  await server.waitClosed();
});

Deno.test("Transport.setIdleTimeout() on a client: set, changed, turned off, and a graceful close() from timeoutReached()", async (t) => {
  const { server, port } = await recordingServer({});
  await t.step(
    "createConnection({ idleTimeout }) reaps a silent client",
    async () => {
      const client = new Recorder();
      await createConnection(() => client, { port, idleTimeout: 100 });
      const error = await within(client.lost.promise, "lost", WAIT);
      assertInstanceOf(error, Deno.errors.TimedOut);
    },
  );
  await t.step("setIdleTimeout(null) and (0) turn it off", async () => {
    const client = new Recorder();
    const [transport] = await createConnection(() => client, {
      port,
      idleTimeout: 60,
    });
    transport.setIdleTimeout(null);
    await sleep(200);
    transport.setIdleTimeout(60);
    transport.setIdleTimeout(0);
    await sleep(200);
    assertEquals(client.events, ["connectionMade"]);
    transport.close();
    assertEquals(await client.lost.promise, null);
  });
  await t.step(
    "close() from timeoutReached() flushes and ends cleanly",
    async () => {
      const client = new Recorder();
      client.timeoutReached = () => {
        client.events.push("timeoutReached");
        client.transport!.write(encoder.encode("bye\n"));
        client.transport!.close();
        return false;
      };
      const [transport] = await createConnection(() => client, { port });
      transport.setIdleTimeout(60);
      assertEquals(await within(client.lost.promise, "lost", WAIT), null);
      assertEquals(client.events, [
        "connectionMade",
        "timeoutReached",
        "connectionLost(null)",
      ]);
    },
  );
  server.close();
  server.closeClients();
  await server.waitClosed();
});

Deno.test("Transport.setIdleTimeout() on a Unix socket and a read pipe", async (t) => {
  await t.step("unix", async () => {
    const dir = await Deno.makeTempDir();
    const path = `${dir}/idle.sock`;
    const { server, made } = await recordingServer({
      transport: "unix",
      path,
      idleTimeout: 80,
    });
    const conn = await Deno.connect({ transport: "unix", path });
    await waitFor(() => made.length === 1, "the server protocol");
    assertInstanceOf(
      await within(made[0]!.lost.promise, "lost", WAIT),
      Deno.errors.TimedOut,
    );
    conn.close();
    server.close();
    await server.waitClosed();
    await Deno.remove(dir, { recursive: true });
  });
  await t.step("read pipe", async () => {
    let cancelled = false;
    const stream = new ReadableStream<Uint8Array>({
      cancel() {
        cancelled = true;
      },
    });
    const protocol = new Recorder();
    const [transport] = await connectReadPipe(() => protocol, stream);
    transport.setIdleTimeout(80);
    assertInstanceOf(
      await within(protocol.lost.promise, "lost", WAIT),
      Deno.errors.TimedOut,
    );
    assert(cancelled, "the stream is cancelled");
  });
});

Deno.test("idleTimeout over TLS, and through startTls() to the upgraded transport", async (t) => {
  const certs = await makeTestCerts();
  await Deno.remove(certs.dir, { recursive: true });
  await t.step("a TLS server reaps a silent client", async () => {
    const { server, port, made } = await recordingServer({
      idleTimeout: 100,
      tls: { cert: certs.cert, key: certs.key },
    });
    const client = new Recorder();
    await createConnection(() => client, {
      port,
      tls: { caCerts: [certs.caCert], hostname: "localhost" },
    });
    await waitFor(() => made.length === 1, "the server protocol");
    assertInstanceOf(
      await within(made[0]!.lost.promise, "lost", WAIT),
      Deno.errors.TimedOut,
    );
    await within(client.lost.promise, "client lost", WAIT);
    server.close();
    await server.waitClosed();
  });
  await t.step(
    "startTls() keeps the plain transport's idle timeout",
    async () => {
      const { server, port, made } = await recordingServer({});
      const plain = new Recorder();
      const [transport] = await createConnection(() => plain, { port });
      await waitFor(() => made.length === 1, "the server protocol");
      const upgraded = new Recorder();
      transport.setIdleTimeout(100);
      const serverSide = startTls(made[0]!.transport!, made[0]!, {
        serverSide: true,
        cert: certs.cert,
        key: certs.key,
      });
      const tls = await startTls(transport, upgraded, {
        caCerts: [certs.caCert],
        hostname: "localhost",
      });
      await serverSide;
      const error = await within(upgraded.lost.promise, "upgraded lost", WAIT);
      assertInstanceOf(error, Deno.errors.TimedOut);
      assert(tls.isClosing());
      // The plain transport's protocol is not called after the upgrade.
      assertEquals(plain.events, ["connectionMade"]);
      await within(made[0]!.lost.promise, "server lost", WAIT);
      server.close();
      await server.waitClosed();
    },
  );
});

Deno.test("ServeOptions.maxConnections stops accepting at the limit and resumes when one is lost", async () => {
  const { server, port, made } = await recordingServer(
    { maxConnections: 2 },
    () => new Recorder([], true),
  );
  assertEquals(server.connectionCount, 0);
  const a = await Deno.connect({ port });
  const b = await Deno.connect({ port });
  await waitFor(() => server.connectionCount === 2, "two connections");
  // The third connects (the kernel's backlog holds it) but is not accepted.
  const c = await Deno.connect({ port });
  await c.write(encoder.encode("third"));
  await sleep(150);
  assertEquals(made.length, 2);
  assertEquals(server.connectionCount, 2);
  a.close();
  const buffer = new Uint8Array(16);
  const n = await within(c.read(buffer), "the third echo", WAIT);
  assertEquals(new TextDecoder().decode(buffer.subarray(0, n!)), "third");
  assertEquals(made.length, 3);
  await waitFor(() => server.connectionCount === 2, "a gone, c in");
  b.close();
  c.close();
  await waitFor(() => server.connectionCount === 0, "all gone");
  server.close();
  await server.waitClosed();
});

Deno.test("ServeOptions.keepAlive and ConnectOptions.keepAlive turn on TCP keepalive", async () => {
  const ssMissing = commandMissing("ss", ["-V"], "apt-get install -y iproute2");
  const { server, port, made } = await recordingServer({ keepAlive: true });
  const client = new Recorder();
  const [transport] = await createConnection(() => client, {
    port,
    keepAlive: true,
  });
  await waitFor(() => made.length === 1, "the server protocol");
  if (ssMissing !== null) {
    console.log(`keepalive not verified from the kernel: ${ssMissing}`);
  } else {
    // `ss -o` shows a keepalive timer on both ends of the connection.
    const out = new Deno.Command("ss", {
      args: [
        "-tno",
        "state",
        "established",
        `( sport = :${port} or dport = :${port} )`,
      ],
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    // Only this pair: other tests on the machine may use similar ports.
    const clientPort = (transport.getExtraInfo("sockname") as Deno.NetAddr)
      .port;
    const ends = [`127.0.0.1:${port}`, `127.0.0.1:${clientPort}`];
    const lines = new TextDecoder().decode(out.stdout).split("\n").filter(
      (line) => {
        const columns = line.trim().split(/\s+/);
        return ends.includes(columns[2]!) && ends.includes(columns[3]!);
      },
    );
    assertEquals(lines.length, 2, lines.join("\n"));
    for (const line of lines) assertStringIncludes(line, "keepalive");
  }
  transport.close();
  await client.lost.promise;
  server.close();
  await server.waitClosed();
});

Deno.test("ServeOptions.reusePort lets two servers share a port (net unstable flag on)", async () => {
  const first = await createServer(() => new Recorder([], true), {
    hostname: "127.0.0.1",
    port: 0,
    reusePort: true,
  });
  const { port } = first.addrs[0] as Deno.NetAddr;
  const second = await createServer(() => new Recorder([], true), {
    hostname: "127.0.0.1",
    port,
    reusePort: true,
  });
  await assertRejects(
    () => createServer(() => ({}), { hostname: "127.0.0.1", port }),
    Deno.errors.AddrInUse,
  );
  // Both serve.
  for (let i = 0; i < 4; i++) {
    const conn = await Deno.connect({ port });
    await conn.write(encoder.encode("hi"));
    const buffer = new Uint8Array(2);
    assertEquals(await conn.read(buffer), 2);
    conn.close();
  }
  first.close();
  second.close();
  first.closeClients();
  second.closeClients();
  await first.waitClosed();
  await second.waitClosed();
});

Deno.test({
  name:
    'ServeOptions.reusePort, keepAlive and idleTimeout with backend: "native"',
  ignore: Deno.build.os !== "linux" ||
    (Deno.build.arch !== "x86_64" && Deno.build.arch !== "aarch64"),
  async fn() {
    const first = await createServer(() => new Recorder([], true), {
      hostname: "127.0.0.1",
      port: 0,
      reusePort: true,
      backend: "native",
    });
    const { port } = first.addrs[0] as Deno.NetAddr;
    const made: Recorder[] = [];
    const second = await createServer(() => {
      const recorder = new Recorder();
      made.push(recorder);
      return recorder;
    }, {
      hostname: "127.0.0.1",
      port,
      reusePort: true,
      backend: "native",
      idleTimeout: 100,
      keepAlive: true,
    });
    // Connections spread over both; the second's are reaped when idle.
    const conns: Deno.Conn[] = [];
    for (let i = 0; i < 16; i++) conns.push(await Deno.connect({ port }));
    await waitFor(() => made.length > 0, "a connection on the second server");
    const error = await within(made[0]!.lost.promise, "the idle timeout", WAIT);
    assertInstanceOf(error, Deno.errors.TimedOut);
    for (const conn of conns) conn.close();
    for (const server of [first, second]) {
      server.close();
      server.closeClients();
      await server.waitClosed();
    }
  },
});

Deno.test("ServeOptions.reusePort without the net unstable flag is a NotSupported error, not an exit", async () => {
  const script = `
    import { createServer } from ${
    JSON.stringify(new URL("../mod.ts", import.meta.url).href)
  };
    try {
      await createServer(() => ({}), { hostname: "127.0.0.1", port: 0, reusePort: true });
      console.log("listened");
    } catch (error) {
      console.log(error.name + ": " + error.message);
    }
    if (Deno.build.os === "linux" && ["x86_64", "aarch64"].includes(Deno.build.arch)) {
      // The native backend sets SO_REUSEPORT itself: no flag needed.
      const server = await createServer(() => ({}), {
        hostname: "127.0.0.1", port: 0, reusePort: true, backend: "native",
      });
      console.log("native listened");
      server.close();
    }`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-config", "--no-lock", script],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  assertStringIncludes(
    stdout,
    "NotSupported: Cannot create server as reusePort needs the net unstable flag",
  );
  if (
    Deno.build.os === "linux" &&
    (Deno.build.arch === "x86_64" || Deno.build.arch === "aarch64")
  ) {
    assertStringIncludes(stdout, "native listened");
  }
});

Deno.test("service options: bad input is a TypeError or RangeError at the call", async (t) => {
  const factory = () => ({});
  const base = { hostname: "127.0.0.1", port: 0 };
  const cases: [
    string,
    Record<string, unknown>,
    typeof TypeError | typeof RangeError,
    string,
  ][] = [
    [
      "idleTimeout string",
      { idleTimeout: "5" },
      TypeError,
      "idleTimeout is not a number",
    ],
    [
      "idleTimeout negative",
      { idleTimeout: -1 },
      RangeError,
      "idleTimeout is not a finite",
    ],
    [
      "idleTimeout NaN",
      { idleTimeout: NaN },
      RangeError,
      "current value is NaN",
    ],
    ["idleTimeout Infinity", { idleTimeout: Infinity }, RangeError, "Infinity"],
    [
      "idleTimeout null",
      { idleTimeout: null },
      TypeError,
      "idleTimeout is not a number",
    ],
    [
      "keepAlive string",
      { keepAlive: "yes" },
      TypeError,
      "keepAlive is not a boolean",
    ],
    [
      "maxConnections 0",
      { maxConnections: 0 },
      RangeError,
      "maxConnections is not an integer >= 1",
    ],
    [
      "maxConnections 1.5",
      { maxConnections: 1.5 },
      RangeError,
      "current value is 1.5",
    ],
    [
      "maxConnections string",
      { maxConnections: "3" },
      TypeError,
      "maxConnections is not a number",
    ],
    [
      "reusePort string",
      { reusePort: "x" },
      TypeError,
      "reusePort is not a boolean",
    ],
  ];
  for (const [name, extra, type, message] of cases) {
    await t.step(`createServer: ${name}`, async () => {
      const error = await assertRejects(
        () => createServer(factory, { ...base, ...extra } as never),
        type,
      );
      assertStringIncludes(error.message, "Cannot create server as");
      assertStringIncludes(error.message, message);
    });
  }
  await t.step(
    "createServer: keepAlive and reusePort with a Unix socket",
    async () => {
      for (const extra of [{ keepAlive: true }, { reusePort: true }]) {
        await assertRejects(
          () =>
            createServer(factory, {
              transport: "unix",
              path: "/tmp/x.sock",
              ...extra,
            }),
          TypeError,
          "not Unix sockets",
        );
      }
    },
  );
  await t.step("createConnection: idleTimeout and keepAlive", async () => {
    await assertRejects(
      () => createConnection(factory, { port: 1, idleTimeout: -5 }),
      RangeError,
      "Cannot create connection as idleTimeout",
    );
    await assertRejects(
      () => createConnection(factory, { port: 1, keepAlive: 1 as never }),
      TypeError,
      "Cannot create connection as keepAlive is not a boolean",
    );
    await assertRejects(
      () =>
        createConnection(factory, {
          transport: "unix",
          path: "/tmp/none.sock",
          keepAlive: true,
        }),
      TypeError,
      "not Unix sockets",
    );
  });
  await t.step(
    "Transport.setIdleTimeout: wrong type, negative, NaN; the old value stays",
    async () => {
      const { server, port } = await recordingServer({});
      const client = new Recorder();
      const [transport] = await createConnection(() => client, { port });
      assertThrows(
        () => transport.setIdleTimeout("1" as never),
        TypeError,
        "is not a number or null",
      );
      assertThrows(() => transport.setIdleTimeout(-1), RangeError);
      assertThrows(() => transport.setIdleTimeout(NaN), RangeError);
      assertThrows(
        () => transport.setIdleTimeout(undefined as never),
        TypeError,
      );
      transport.close();
      await client.lost.promise;
      server.close();
      server.closeClients();
      await server.waitClosed();
    },
  );
});

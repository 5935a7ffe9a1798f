// Copyright 2026 the denio authors. MIT license.
// The native backend itself: descriptors, EAGAIN and partial writes, peer
// resets, process exit, permissions, "auto" selection and bad input. The
// shared suites run over it in native_backend_test.ts.

import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
  assertStringIncludes,
} from "@std/assert";
import { createConnection, createServer, type Transport } from "../mod.ts";
import {
  connectNative,
  listenNative,
  NativeConn,
  openReactor,
  reactorFds,
} from "../transports/_native_io.ts";
import { libc } from "../transports/_native_reactor.ts";
import {
  bytes,
  collectExceptions,
  EchoProtocol,
  pattern,
  readExactly,
  RecordingProtocol,
  runCommand,
  sha256,
  text,
  waitUntil,
  within,
  writeAll,
} from "./_stream_helpers.ts";
import { openFdCount, settleFds } from "./_reliability_helpers.ts";
import { makeTestCerts, opensslMissing } from "./_certs.ts";

if (opensslMissing() !== null) {
  console.log(`native_test.ts: TLS "auto" test skipped: ${opensslMissing()}`);
}

const ROOT = new URL("..", import.meta.url);

Deno.test('backend "native": createServer() and createConnection() echo byte-exact and close every socket descriptor they opened', async () => {
  openReactor(); // Its two descriptors live as long as the process.
  const before = openFdCount();
  const server = await createServer(() => new EchoProtocol(), {
    hostname: "127.0.0.1",
    port: 0,
    backend: "native",
  });
  const { port } = server.addrs[0] as Deno.NetAddr;
  const data = pattern(256 * 1024, 7);
  const clients = await Promise.all(
    Array.from({ length: 20 }, () =>
      createConnection(
        () => new RecordingProtocol(),
        { port, backend: "native" },
      )),
  );
  // The listener, each client and each accepted socket.
  await waitUntil(
    () => openFdCount() === before + 1 + 2 * clients.length,
    "every connection accepted",
  );
  for (const [transport] of clients) transport.write(data);
  const want = await sha256(data);
  for (const [, protocol] of clients) {
    await waitUntil(() => protocol.size >= data.length, "the echo");
    const got = new Uint8Array(data.length);
    let offset = 0;
    for (const chunk of protocol.chunks) {
      got.set(chunk, offset);
      offset += chunk.length;
    }
    assertEquals(await sha256(got), want);
  }
  for (const [transport] of clients) transport.close();
  await Promise.all(clients.map(([, protocol]) => protocol.lost.promise));
  server.close();
  server.closeClients();
  await within(server.waitClosed(), "server.waitClosed()");
  assertEquals(await settleFds(before), before);
  assertEquals(reactorFds().length, 2);
});

Deno.test('backend "native": a Unix socket server and client echo and report their paths', async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/native.sock`;
  try {
    const server = await createServer(() => new EchoProtocol(), {
      transport: "unix",
      path,
      backend: "native",
    });
    assertEquals(server.addrs[0], { transport: "unix", path });
    const [transport, protocol] = await createConnection(
      () => new RecordingProtocol(),
      { transport: "unix", path, backend: "native" },
    );
    assertEquals(transport.getExtraInfo("peername"), {
      transport: "unix",
      path,
    });
    transport.write(bytes("over unix"));
    await waitUntil(() => protocol.size >= 9, "the echo");
    assertEquals(text(protocol.chunks[0]!), "over unix");
    transport.close();
    await protocol.lost.promise;
    server.close();
    server.closeClients();
    await within(server.waitClosed(), "server.waitClosed()");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("NativeConn.write() to a peer that does not read sends part, then waits on EAGAIN until the peer reads", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  const accepted = listener.accept();
  const conn = await connectNative({
    transport: "tcp",
    hostname: "127.0.0.1",
    port,
  });
  const peer = await accepted;
  try {
    const data = pattern(64 * 1024 * 1024, 3);
    // The socket buffers hold far less than 64 MiB: the first send is partial.
    const first = await conn.write(data);
    assert(first > 0 && first < data.length, `first write sent ${first}`);
    let sent = first;
    // The next write meets EAGAIN and waits for EPOLLOUT.
    let settled = false;
    const pending = conn.write(data.subarray(sent)).then((n) => {
      settled = true;
      return n;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assertEquals(settled, false);
    // The peer reads: the wait ends and the rest goes out.
    const reading = readExactly(peer, data.length);
    sent += await within(pending, "the write after EAGAIN");
    while (sent < data.length) sent += await conn.write(data.subarray(sent));
    const got = await within(reading, "the peer's read");
    assertEquals(await sha256(got), await sha256(data));
  } finally {
    conn.close();
    peer.close();
    listener.close();
  }
});

/** Closes `conn` with SO_LINGER {on, 0 s}: Linux sends a reset, not a FIN. */
function resetClose(conn: NativeConn): void {
  const linger = new Uint8Array(new Int32Array([1, 0]).buffer);
  assertEquals(libc().setsockopt(conn.fd, 1, 13, linger, 8), 0);
  conn.close();
}

Deno.test('A transport on backend "native" whose peer resets gets connectionLost(ConnectionReset) and reports nothing', async () => {
  using exceptions = collectExceptions();
  const listener = await listenNative({
    transport: "tcp",
    hostname: "127.0.0.1",
    port: 0,
  });
  const { port } = listener.addr as Deno.NetAddr;
  const accepted = listener.accept();
  const [, protocol] = await createConnection(
    () => new RecordingProtocol(),
    { port, backend: "native" },
  );
  const peer = await accepted;
  listener.close();
  resetClose(peer);
  const error = await within(protocol.lost.promise, "connectionLost");
  assertInstanceOf(error, Deno.errors.ConnectionReset);
  assertEquals(protocol.events, ["connectionMade", "connectionLost"]);
  assertEquals(exceptions.contexts.length, 0);
});

Deno.test("NativeConn.write() to a reset peer rejects with BrokenPipe or ConnectionReset, without SIGPIPE", async () => {
  const listener = await listenNative({
    transport: "tcp",
    hostname: "127.0.0.1",
    port: 0,
  });
  const { port } = listener.addr as Deno.NetAddr;
  const accepted = listener.accept();
  const conn = await connectNative({
    transport: "tcp",
    hostname: "127.0.0.1",
    port,
  });
  const peer = await accepted;
  try {
    resetClose(peer);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const error = await assertRejects(async () => {
      for (let i = 0; i < 100; i++) await conn.write(pattern(65536));
    });
    assert(
      error instanceof Deno.errors.BrokenPipe ||
        error instanceof Deno.errors.ConnectionReset,
      `got ${error}`,
    );
  } finally {
    conn.close();
    listener.close();
  }
});

Deno.test("NativeListener.close() rejects a pending accept(); a second close() throws BadResource", async () => {
  const listener = await listenNative({
    transport: "tcp",
    hostname: "127.0.0.1",
    port: 0,
  });
  const pending = listener.accept();
  listener.close();
  await assertRejects(() => pending, Deno.errors.BadResource);
  let threw: unknown;
  try {
    listener.close();
  } catch (error) {
    threw = error;
  }
  assertInstanceOf(threw, Deno.errors.BadResource);
});

Deno.test('createConnection() with backend "native" to a closed port rejects with ConnectionRefused and leaks no descriptor', async () => {
  openReactor();
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = probe.addr;
  probe.close();
  const before = openFdCount();
  await assertRejects(
    () => createConnection(() => ({}), { port, backend: "native" }),
    Deno.errors.ConnectionRefused,
  );
  assertEquals(await settleFds(before), before);
});

Deno.test('createConnection() with backend "native" resolves a host name (localhost)', async () => {
  await using server = await createServer(() => new EchoProtocol(), {
    hostname: "127.0.0.1",
    port: 0,
    backend: "native",
  });
  const { port } = server.addrs[0] as Deno.NetAddr;
  const [transport, protocol] = await createConnection(
    () => new RecordingProtocol(),
    { hostname: "localhost", port, backend: "native" },
  );
  transport.write(bytes("name"));
  await waitUntil(() => protocol.size >= 4, "the echo");
  transport.close();
  await protocol.lost.promise;
});

Deno.test("A process whose native server and clients are closed exits by itself", async () => {
  const script = `
import { createConnection, createServer } from ${
    JSON.stringify(new URL("mod.ts", ROOT).href)
  };
const server = await createServer(() => ({
  connectionMade(t) { this.t = t; },
  dataReceived(d) { this.t.write(d); },
}), { hostname: "127.0.0.1", port: 0, backend: "native" });
const { port } = server.addrs[0];
const got = Promise.withResolvers();
const [transport] = await createConnection(() => ({
  dataReceived: (d) => got.resolve(new TextDecoder().decode(d)),
}), { port, backend: "native" });
transport.write(new TextEncoder().encode("bye"));
console.log(await got.promise);
transport.close();
server.close();
server.closeClients();
await server.waitClosed();
console.log("closed");
`;
  const started = Date.now();
  const result = await runCommand(Deno.execPath(), [
    "run",
    "--allow-net",
    "--allow-ffi",
    "--allow-read",
    "--no-lock",
    "--config",
    new URL("deno.json", ROOT).pathname,
    "-",
  ], { stdin: bytes(script) });
  assertEquals(result.stderr, "");
  assertEquals(result.stdout, "bye\nclosed\n");
  assertEquals(result.code, 0);
  // Bounded by runCommand's kill; a hang would take its 30 s.
  assert(Date.now() - started < 25_000, "the process did not exit by itself");
});

Deno.test('backend "native" without --allow-ffi throws NotCapable at the call; "auto" falls back to Deno\'s API', async () => {
  const script = `
import { createConnection, createServer } from ${
    JSON.stringify(new URL("mod.ts", ROOT).href)
  };
for (const call of [
  () => createServer(() => ({}), { hostname: "127.0.0.1", port: 0, backend: "native" }),
  () => createConnection(() => ({}), { port: 9, backend: "native" }),
]) {
  try {
    await call();
    console.log("resolved");
  } catch (error) {
    console.log(error.name + ": " + error.message);
  }
}
await using server = await createServer(() => ({}), { hostname: "127.0.0.1", port: 0, backend: "auto" });
const [transport] = await createConnection(() => ({}), { port: server.addrs[0].port, backend: "auto" });
console.log(transport.getExtraInfo("socket").constructor.name);
transport.close();
`;
  const result = await runCommand(Deno.execPath(), [
    "run",
    "--allow-net",
    "--allow-read",
    "--no-lock",
    "--config",
    new URL("deno.json", ROOT).pathname,
    "-",
  ], { stdin: bytes(script) });
  assertEquals(result.code, 0, result.stderr);
  const lines = result.stdout.trim().split("\n");
  assertEquals(lines.length, 3, result.stdout);
  assertEquals(
    lines[0],
    'NotCapable: Cannot create server as backend "native" requires FFI access, run again with the --allow-ffi flag',
  );
  assertEquals(
    lines[1],
    'NotCapable: Cannot create connection as backend "native" requires FFI access, run again with the --allow-ffi flag',
  );
  assertEquals(lines[2], "TcpConn");
});

Deno.test('backend "auto" picks the native reactor where FFI is permitted, and Deno\'s API for TLS; "deno" is Deno\'s API', async () => {
  assertEquals(Deno.permissions.querySync({ name: "ffi" }).state, "granted");
  for (
    const [backend, want] of [
      ["auto", "NativeConn"],
      ["native", "NativeConn"],
      ["deno", "TcpConn"],
      [undefined, "TcpConn"],
    ] as const
  ) {
    await using server = await createServer(() => ({}), {
      hostname: "127.0.0.1",
      port: 0,
      ...(backend ? { backend } : {}),
    });
    const accepted = Promise.withResolvers<unknown>();
    await using probe = await createServer(() => ({
      connectionMade: (t) => accepted.resolve(t.getExtraInfo("socket")),
    }), { hostname: "127.0.0.1", port: 0, ...(backend ? { backend } : {}) });
    const { port } = server.addrs[0] as Deno.NetAddr;
    const [transport] = await createConnection(() => ({}), {
      port,
      ...(backend ? { backend } : {}),
    });
    const socket = transport.getExtraInfo("socket") as object;
    assertEquals(socket.constructor.name, want, String(backend));
    transport.close();
    const raw = await Deno.connect({
      port: (probe.addrs[0] as Deno.NetAddr).port,
    });
    const served = await within(accepted.promise, "connectionMade");
    assertEquals((served as object).constructor.name, want, String(backend));
    raw.close();
  }
});

Deno.test({
  name: 'backend "auto" with tls serves over Deno\'s TLS API',
  ignore: opensslMissing() !== null,
  async fn() {
    const certs = await makeTestCerts();
    try {
      await using server = await createServer(() => ({}), {
        hostname: "127.0.0.1",
        port: 0,
        tls: { cert: certs.cert, key: certs.key },
        backend: "auto",
      });
      const { port } = server.addrs[0] as Deno.NetAddr;
      const [transport] = await createConnection(() => ({}), {
        port,
        tls: { caCerts: [certs.caCert] },
        backend: "auto",
      });
      const socket = transport.getExtraInfo("socket") as object;
      assertEquals(socket.constructor.name, "TlsConn");
      transport.close();
    } finally {
      await Deno.remove(certs.dir, { recursive: true });
    }
  },
});

Deno.test('backend "native" with tls, and a backend that is not one of the three, throw at the call', async () => {
  const tls = { cert: "x", key: "y" };
  await assertRejects(
    () =>
      createServer(() => ({}), {
        hostname: "127.0.0.1",
        port: 0,
        tls,
        backend: "native",
      }),
    TypeError,
    'Cannot create server as tls is not supported with backend "native": current value is an object',
  );
  await assertRejects(
    () => createConnection(() => ({}), { port: 1, tls: {}, backend: "native" }),
    TypeError,
    'Cannot create connection as tls is not supported with backend "native": current value is an object',
  );
  for (const bad of ["fast", 1, null, {}]) {
    const error = await assertRejects(
      () =>
        createServer(() => ({}), {
          port: 0,
          backend: bad as unknown as "native",
        }),
      TypeError,
    );
    assertStringIncludes(
      error.message,
      'Cannot create server as backend is not "native", "auto" or "deno": current value is',
    );
    await assertRejects(
      () =>
        createConnection(() => ({}), {
          port: 1,
          backend: bad as unknown as "native",
        }),
      TypeError,
      'Cannot create connection as backend is not "native", "auto" or "deno": current value is',
    );
  }
});

Deno.test('NativeConn as getExtraInfo("socket"): remoteAddr, localAddr, setNoDelay, setKeepAlive', async () => {
  await using server = await createServer(() => ({}), {
    hostname: "127.0.0.1",
    port: 0,
    backend: "native",
  });
  const { port } = server.addrs[0] as Deno.NetAddr;
  const [transport] = await createConnection(() => ({}), {
    port,
    backend: "native",
  });
  try {
    const socket = transport.getExtraInfo("socket") as NativeConn;
    assertInstanceOf(socket, NativeConn);
    assertEquals(socket.remoteAddr, {
      transport: "tcp",
      hostname: "127.0.0.1",
      port,
    });
    assertEquals(transport.getExtraInfo("sockname"), socket.localAddr);
    socket.setNoDelay(false);
    socket.setNoDelay();
    socket.setKeepAlive();
    socket.setKeepAlive(false);
  } finally {
    transport.close();
  }
});

Deno.test("Native peername and sockname: IPv4 and IPv6 addresses and ports, as Deno's own connection reports them", async (t) => {
  for (const hostname of ["127.0.0.1", "::1"]) {
    await t.step(hostname, async (t) => {
      let listener: Deno.Listener;
      try {
        listener = Deno.listen({ hostname, port: 0 });
      } catch (error) {
        console.log(`skipped: no ${hostname} loopback here (${error})`);
        return;
      }
      listener.close();
      await t.step("server side", async () => {
        const made = Promise.withResolvers<Transport>();
        await using server = await createServer(() => ({
          connectionMade: (transport: Transport) => made.resolve(transport),
        }), { hostname, port: 0, backend: "native" });
        const { port } = server.addrs[0] as Deno.NetAddr;
        const conn = await Deno.connect({ hostname, port });
        try {
          const transport = await made.promise;
          assertEquals(transport.getExtraInfo("peername"), conn.localAddr);
          assertEquals(transport.getExtraInfo("sockname"), conn.remoteAddr);
          transport.close();
        } finally {
          conn.close();
        }
      });
      await t.step("client side", async () => {
        const accepted = Deno.listen({ hostname, port: 0 });
        try {
          const { port } = accepted.addr as Deno.NetAddr;
          const [transport] = await createConnection(() => ({}), {
            hostname,
            port,
            backend: "native",
          });
          const conn = await accepted.accept();
          assertEquals(transport.getExtraInfo("peername"), conn.localAddr);
          assertEquals(transport.getExtraInfo("sockname"), conn.remoteAddr);
          transport.close();
          conn.close();
        } finally {
          accepted.close();
        }
      });
    });
  }
});

Deno.test("The native reactor does not starve timers while connections are busy", async () => {
  await using server = await createServer(() => new EchoProtocol(), {
    hostname: "127.0.0.1",
    port: 0,
    backend: "native",
  });
  const { port } = server.addrs[0] as Deno.NetAddr;
  const conn = await Deno.connect({ port });
  let stop = false;
  let rounds = 0;
  const load = (async () => {
    const data = pattern(1024);
    while (!stop) {
      await writeAll(conn, data);
      await readExactly(conn, data.length);
      rounds++;
    }
  })();
  let ticks = 0;
  await within(
    new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        if (++ticks === 20) {
          clearInterval(timer);
          resolve();
        }
      }, 5);
    }),
    "20 timer ticks during the load",
  );
  stop = true;
  await load;
  conn.close();
  assert(rounds > 0);
});

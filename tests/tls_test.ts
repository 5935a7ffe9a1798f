// Copyright 2026 the denio authors. MIT license.
// TLS: createServer/createConnection with `tls`, and startTls() (STARTTLS
// upgrades of live connections). Certificates are made at test time with the
// openssl command line tool; without it every test here is skipped.

import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
  assertStringIncludes,
} from "@std/assert";
import {
  createConnection,
  createServer,
  type Protocol,
  startTls,
  type StartTlsOptions,
  type Transport,
} from "../mod.ts";
import { makeSelfSignedCert, makeTestCerts } from "./_certs.ts";
import { withHandler } from "./_exceptions.ts";
import { peerMissing } from "./_peers.ts";

const certs = await makeTestCerts();
await Deno.remove(certs.dir, { recursive: true });

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Logs every callback; `dataReceived` bytes are kept. */
class Recorder implements Protocol {
  events: string[] = [];
  chunks: Uint8Array[] = [];
  transport: Transport | undefined;
  made = Promise.withResolvers<Transport>();
  lost = Promise.withResolvers<Error | null>();
  eof = Promise.withResolvers<void>();
  keepOpenOnEof = false;
  #waiters: { text: string; resolve: () => void }[] = [];

  connectionMade(transport: Transport): void {
    this.events.push("connectionMade");
    this.transport = transport;
    this.made.resolve(transport);
  }
  dataReceived(data: Uint8Array): void {
    if (this.events.at(-1) !== "dataReceived*") {
      this.events.push("dataReceived*");
    }
    this.chunks.push(data);
    if (this.#waiters.length === 0) return;
    const text = this.text();
    this.#waiters = this.#waiters.filter((waiter) => {
      if (!text.includes(waiter.text)) return true;
      waiter.resolve();
      return false;
    });
  }
  eofReceived(): boolean {
    this.events.push("eofReceived");
    this.eof.resolve();
    return this.keepOpenOnEof;
  }
  connectionLost(error: Error | null): void {
    this.events.push(`connectionLost(${error === null ? "null" : error.name})`);
    this.lost.resolve(error);
  }
  bytes(): Uint8Array {
    const total = this.chunks.reduce((sum, chunk) => sum + chunk.length, 0);
    const all = new Uint8Array(total);
    let offset = 0;
    for (const chunk of this.chunks) {
      all.set(chunk, offset);
      offset += chunk.length;
    }
    return all;
  }
  text(): string {
    return decoder.decode(this.bytes());
  }
  /** Resolves once the received text contains `text`. */
  received(text: string): Promise<void> {
    if (this.text().includes(text)) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waiters.push({ text, resolve });
    return promise;
  }
}

/** Echoes what it receives; on EOF closes (flushing the echo). */
class Echo extends Recorder {
  override dataReceived(data: Uint8Array): void {
    super.dataReceived(data);
    this.transport!.write(data.slice());
  }
}

function tlsServer(
  factory: () => Protocol,
  tls: { alpnProtocols?: string[]; handshakeTimeout?: number } = {},
) {
  return createServer(factory, {
    hostname: "127.0.0.1",
    port: 0,
    tls: { cert: certs.cert, key: certs.key, ...tls },
  });
}

function portOf(server: { addrs: Deno.Addr[] }): number {
  return (server.addrs[0] as Deno.NetAddr).port;
}

// ------------------------------------------------------- createConnection/createServer

Deno.test({
  name:
    "createConnection() with tls echoes through a createServer() TLS server",
  async fn() {
    const servers: Echo[] = [];
    await using server = await tlsServer(() => {
      const echo = new Echo();
      servers.push(echo);
      return echo;
    });
    const [transport, client] = await createConnection(() => new Recorder(), {
      hostname: "127.0.0.1",
      port: portOf(server),
      tls: { caCerts: [certs.caCert] },
    });
    assertEquals(transport.canWriteEof(), true);
    transport.write(encoder.encode("hello, "));
    transport.write(encoder.encode("tls"));
    await client.received("hello, tls");
    transport.writeEof();
    assertEquals(await client.lost.promise, null);
    assertEquals(client.text(), "hello, tls");
    assertEquals(client.events, [
      "connectionMade",
      "dataReceived*",
      "eofReceived",
      "connectionLost(null)",
    ]);
    await servers[0]!.lost.promise;
    assertEquals(servers[0]!.events, [
      "connectionMade",
      "dataReceived*",
      "eofReceived",
      "connectionLost(null)",
    ]);
  },
});

Deno.test({
  name: "TLS transports report peername, sockname, socket and alpnProtocol",
  async fn() {
    const serverSide = new Recorder();
    await using server = await tlsServer(() => serverSide, {
      alpnProtocols: ["h2", "denio/1"],
    });
    const [transport] = await createConnection(() => new Recorder(), {
      hostname: "127.0.0.1",
      port: portOf(server),
      tls: { caCerts: [certs.caCert], alpnProtocols: ["denio/1", "other"] },
    });
    const serverTransport = await serverSide.made.promise;
    assertEquals(transport.getExtraInfo("alpnProtocol"), "denio/1");
    assertEquals(serverTransport.getExtraInfo("alpnProtocol"), "denio/1");
    const peer = transport.getExtraInfo("peername") as Deno.NetAddr;
    assertEquals(peer.port, portOf(server));
    assertEquals(
      (serverTransport.getExtraInfo("peername") as Deno.NetAddr).port,
      (transport.getExtraInfo("sockname") as Deno.NetAddr).port,
    );
    assert(transport.getExtraInfo("socket") !== undefined);
    assertEquals(transport.getExtraInfo("peercert", "none"), "none");
    assertEquals(transport.getExtraInfo("cipher", "none"), "none");
    transport.close();
  },
});

Deno.test({
  name: "TLS without a common ALPN protocol gives alpnProtocol null",
  async fn() {
    await using server = await tlsServer(() => new Recorder());
    const [transport] = await createConnection(() => new Recorder(), {
      hostname: "127.0.0.1",
      port: portOf(server),
      tls: { caCerts: [certs.caCert], alpnProtocols: ["denio/1"] },
    });
    assertEquals(transport.getExtraInfo("alpnProtocol"), null);
    transport.close();
  },
});

Deno.test({
  name:
    "createConnection() with tls rejects a certificate that does not verify, and no protocol is made",
  async fn() {
    let serverProtocols = 0;
    let clientProtocols = 0;
    const server = await tlsServer(() => {
      serverProtocols++;
      return new Echo();
    });
    const port = portOf(server);
    const error = await assertRejects(() =>
      createConnection(() => {
        clientProtocols++;
        return new Recorder();
      }, {
        hostname: "127.0.0.1",
        port,
        tls: { caCerts: [certs.otherCaCert] },
      })
    );
    assertStringIncludes(String(error), "UnknownIssuer");
    const wrongName = await assertRejects(() =>
      createConnection(() => {
        clientProtocols++;
        return new Recorder();
      }, {
        hostname: "127.0.0.1",
        port,
        tls: { caCerts: [certs.caCert], hostname: "denio.example" },
      })
    );
    assertStringIncludes(String(wrongName), "not valid for name");
    // A good connection after the failed ones shows the server is fine.
    const [transport, client] = await createConnection(() => new Recorder(), {
      hostname: "127.0.0.1",
      port,
      tls: { caCerts: [certs.caCert] },
    });
    transport.write(encoder.encode("ping"));
    await client.received("ping");
    transport.close();
    await client.lost.promise;
    server.close();
    server.closeClients();
    await server.waitClosed();
    assertEquals(clientProtocols, 0);
    assertEquals(serverProtocols, 1);
  },
});

Deno.test({
  name:
    "createConnection() with tls times out a peer that never speaks TLS, after handshakeTimeout ms",
  async fn() {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    let made = 0;
    const connecting = createConnection(() => {
      made++;
      return new Recorder();
    }, {
      hostname: "127.0.0.1",
      port: (listener.addr as Deno.NetAddr).port,
      tls: { handshakeTimeout: 150 },
    });
    using _peer = await listener.accept();
    const error = await assertRejects(() => connecting, Deno.errors.TimedOut);
    assertEquals(error.message, "TLS handshake did not complete within 150 ms");
    assertEquals(made, 0);
  },
});

Deno.test({
  name:
    "createServer() with tls makes no protocol for a client that fails its handshake",
  async fn() {
    let made = 0;
    await using server = await tlsServer(() => {
      made++;
      return new Recorder();
    });
    using conn = await Deno.connect({ port: portOf(server) });
    await conn.write(encoder.encode("GET / HTTP/1.0\r\n\r\n"));
    // The server answers with an alert (or nothing) and closes.
    const buffer = new Uint8Array(1024);
    for (let i = 0; i < 100; i++) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) break;
      assert(i < 99, "the server did not close the connection");
    }
    assertEquals(made, 0);
  },
});

Deno.test({
  name: "TLS handshakeTimeout must be a positive number",
  async fn() {
    for (const bad of [0, -1, NaN]) {
      await assertRejects(
        () =>
          createConnection(() => ({}), {
            port: 1,
            tls: { handshakeTimeout: bad },
          }),
        RangeError,
        "handshakeTimeout is not positive",
      );
      await assertRejects(
        () =>
          createServer(() => ({}), {
            port: 0,
            tls: { cert: certs.cert, key: certs.key, handshakeTimeout: bad },
          }),
        RangeError,
        "handshakeTimeout is not positive",
      );
    }
    await assertRejects(
      () =>
        createConnection(() => ({}), {
          port: 1,
          tls: { handshakeTimeout: "1" as unknown as number },
        }),
      TypeError,
      "handshakeTimeout is not a number",
    );
  },
});

Deno.test({
  name:
    "TLS transports half-close: writeEof() sends close_notify and the peer can still answer",
  async fn() {
    const servers: Recorder[] = [];
    await using server = await tlsServer(() => {
      const recorder = new Recorder();
      recorder.keepOpenOnEof = true;
      servers.push(recorder);
      recorder.eof.promise.then(() => {
        recorder.transport!.write(encoder.encode(`got ${recorder.text()}`));
        recorder.transport!.close();
      });
      return recorder;
    });
    const [transport, client] = await createConnection(() => new Recorder(), {
      hostname: "127.0.0.1",
      port: portOf(server),
      tls: { caCerts: [certs.caCert] },
    });
    transport.write(encoder.encode("question"));
    transport.writeEof();
    assertEquals(await client.lost.promise, null);
    assertEquals(client.text(), "got question");
    assertEquals(client.events, [
      "connectionMade",
      "dataReceived*",
      "eofReceived",
      "connectionLost(null)",
    ]);
  },
});

Deno.test({
  name:
    "createConnection() with tls carries 4 MiB byte-exact to a BufferedProtocol",
  async fn() {
    await using server = await tlsServer(() => new Echo());
    const buffer = new Uint8Array(64 * 1024);
    const received: Uint8Array[] = [];
    const lost = Promise.withResolvers<Error | null>();
    const [transport] = await createConnection(() => ({
      getBuffer: () => buffer,
      bufferUpdated: (n: number) => received.push(buffer.slice(0, n)),
      connectionLost: lost.resolve,
    }), {
      hostname: "127.0.0.1",
      port: portOf(server),
      tls: { caCerts: [certs.caCert] },
    });
    const payload = new Uint8Array(4 * 1024 * 1024);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7 + 3) & 0xff;
    transport.write(payload);
    transport.writeEof();
    assertEquals(await lost.promise, null);
    const total = received.reduce((sum, chunk) => sum + chunk.length, 0);
    assertEquals(total, payload.length);
    let offset = 0;
    for (const chunk of received) {
      for (let i = 0; i < chunk.length; i++) {
        if (chunk[i] !== payload[offset + i]) {
          throw new Error(`byte ${offset + i} differs`);
        }
      }
      offset += chunk.length;
    }
  },
});

Deno.test({
  name:
    "createConnection() with tls rejects when its signal aborts the handshake",
  async fn() {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const controller = new AbortController();
    const connecting = createConnection(() => new Recorder(), {
      hostname: "127.0.0.1",
      port: (listener.addr as Deno.NetAddr).port,
      tls: {},
      signal: controller.signal,
    });
    using _peer = await listener.accept();
    controller.abort(new Error("stop"));
    await assertRejects(() => connecting, Error, "stop");
  },
});

Deno.test({
  name:
    "Server.closeClients() on a TLS server closes its clients with close_notify (clean EOF)",
  async fn() {
    const server = await tlsServer(() => new Echo());
    const [transport, client] = await createConnection(() => new Recorder(), {
      hostname: "127.0.0.1",
      port: portOf(server),
      tls: { caCerts: [certs.caCert] },
    });
    transport.write(encoder.encode("x"));
    await client.received("x");
    await server[Symbol.asyncDispose]();
    assertEquals(await client.lost.promise, null);
    assertEquals(client.events, [
      "connectionMade",
      "dataReceived*",
      "eofReceived",
      "connectionLost(null)",
    ]);
  },
});

// ------------------------------------------------------------------- startTls

/**
 * A STARTTLS line server: "STARTTLS\r\n" gets "OK\r\n" and the upgrade, in
 * the same tick; after the upgrade it greets with "WELCOME\r\n" and echoes.
 */
class StartTlsServer extends Recorder {
  upgraded = Promise.withResolvers<Transport>();
  options: Partial<StartTlsOptions> = {};
  sayOk = true;

  constructor() {
    super();
    this.upgraded.promise.catch(() => {});
  }

  override dataReceived(data: Uint8Array): void {
    if (
      this.transport !== undefined && decoder.decode(data) === "STARTTLS\r\n"
    ) {
      this.events.push("STARTTLS");
      const plain = this.transport;
      if (this.sayOk) plain.write(encoder.encode("OK\r\n"));
      startTls(plain, this, {
        serverSide: true,
        cert: certs.cert,
        key: certs.key,
        ...this.options,
      }).then((tls) => {
        this.events.push("upgraded");
        this.transport = tls;
        tls.write(encoder.encode("WELCOME\r\n"));
        this.upgraded.resolve(tls);
      }, (error) => {
        this.events.push(`upgrade failed`);
        this.upgraded.reject(error);
      });
      return;
    }
    super.dataReceived(data);
    this.transport!.write(data.slice());
  }
}

async function startTlsServer(
  configure: (server: StartTlsServer) => void = () => {},
) {
  const protocols: StartTlsServer[] = [];
  const server = await createServer(() => {
    const protocol = new StartTlsServer();
    configure(protocol);
    protocols.push(protocol);
    return protocol;
  }, { hostname: "127.0.0.1", port: 0 });
  return { server, protocols, port: portOf(server) };
}

/** Connects plain, says STARTTLS and waits for OK (without upgrading). */
async function sayStartTls(port: number) {
  const [plain, client] = await createConnection(() => new Recorder(), {
    hostname: "127.0.0.1",
    port,
  });
  plain.write(encoder.encode("STARTTLS\r\n"));
  await client.received("OK\r\n");
  client.chunks.length = 0;
  return { plain, client };
}

Deno.test({
  name:
    "startTls() upgrades both ends with a read in flight; bytes keep their order and connectionMade runs once",
  async fn() {
    const { server, protocols, port } = await startTlsServer();
    await using _server = server;
    const { plain, client } = await sayStartTls(port);
    // The client's read is in flight here; the server already upgrades.
    const tls = await startTls(plain, client, {
      hostname: "localhost",
      caCerts: [certs.caCert],
    });
    assert(tls !== plain);
    assertEquals(tls.getProtocol(), client);
    assertEquals(plain.isClosing(), true);
    tls.write(encoder.encode("secret 1,"));
    tls.write(encoder.encode(" secret 2"));
    await client.received("WELCOME\r\nsecret 1, secret 2");
    assertEquals(client.text(), "WELCOME\r\nsecret 1, secret 2");
    const serverSide = protocols[0]!;
    const serverTls = await serverSide.upgraded.promise;
    assertEquals(serverTls.getProtocol(), serverSide);
    assertEquals(serverSide.text(), "secret 1, secret 2");
    tls.close();
    assertEquals(await client.lost.promise, null);
    assertEquals(await serverSide.lost.promise, null);
    assertEquals(client.events, [
      "connectionMade",
      "dataReceived*",
      "connectionLost(null)",
    ]);
    assertEquals(serverSide.events, [
      "connectionMade",
      "STARTTLS",
      "upgraded",
      "dataReceived*",
      "eofReceived",
      "connectionLost(null)",
    ]);
  },
});

Deno.test({
  name: "startTls() called from dataReceived() upgrades before the next read",
  async fn() {
    const { server, protocols, port } = await startTlsServer();
    await using _server = server;
    const upgraded = Promise.withResolvers<Transport>();
    const client = new Recorder();
    client.dataReceived = function (data: Uint8Array) {
      Recorder.prototype.dataReceived.call(this, data);
      if (this.text() === "OK\r\n") {
        this.chunks.length = 0;
        startTls(this.transport!, this, { caCerts: [certs.caCert] }).then(
          upgraded.resolve,
          upgraded.reject,
        );
      }
    };
    const [plain] = await createConnection(() => client, {
      hostname: "127.0.0.1",
      port,
    });
    plain.write(encoder.encode("STARTTLS\r\n"));
    const tls = await upgraded.promise;
    await client.received("WELCOME\r\n");
    tls.write(encoder.encode("ping"));
    await client.received("ping");
    assertEquals(client.text(), "WELCOME\r\nping");
    tls.abort();
    assertEquals(await client.lost.promise, null);
    await protocols[0]!.lost.promise;
    assertEquals(client.events, [
      "connectionMade",
      "dataReceived*",
      "connectionLost(null)",
    ]);
  },
});

Deno.test({
  name: "startTls() works while reading is paused (no read in flight)",
  async fn() {
    const { server, port } = await startTlsServer();
    await using _server = server;
    const client = new Recorder();
    client.dataReceived = function (data: Uint8Array) {
      Recorder.prototype.dataReceived.call(this, data);
      this.transport!.pauseReading();
    };
    const [plain] = await createConnection(() => client, {
      hostname: "127.0.0.1",
      port,
    });
    plain.write(encoder.encode("STARTTLS\r\n"));
    await client.received("OK\r\n");
    assertEquals(plain.isReading(), false);
    await new Promise((resolve) => setTimeout(resolve, 10));
    client.chunks.length = 0;
    client.dataReceived = Recorder.prototype.dataReceived;
    const tls = await startTls(plain, client, { caCerts: [certs.caCert] });
    assertEquals(tls.isReading(), true);
    await client.received("WELCOME\r\n");
    tls.close();
    assertEquals(await client.lost.promise, null);
  },
});

Deno.test({
  name: "startTls() carries 4 MiB byte-exact both ways and close() drains it",
  async fn() {
    const { server, protocols, port } = await startTlsServer();
    await using _server = server;
    const { plain, client } = await sayStartTls(port);
    const tls = await startTls(plain, client, { caCerts: [certs.caCert] });
    await client.received("WELCOME\r\n");
    client.chunks.length = 0;
    const payload = new Uint8Array(4 * 1024 * 1024);
    for (let i = 0; i < payload.length; i += 65536) {
      crypto.getRandomValues(payload.subarray(i, i + 65536));
    }
    tls.write(payload);
    // The server echoes, then closes on EOF once its echo is flushed.
    tls.writeEof();
    assertEquals(await client.lost.promise, null);
    const echoed = client.bytes();
    assertEquals(echoed.length, payload.length);
    assert(echoed.every((byte, i) => byte === payload[i]), "bytes differ");
    const serverSide = protocols[0]!;
    assertEquals(await serverSide.lost.promise, null);
    assertEquals(serverSide.bytes().length, payload.length);
    assertEquals(client.events, [
      "connectionMade",
      "dataReceived*",
      "eofReceived",
      "connectionLost(null)",
    ]);
  },
});

Deno.test({
  name:
    "startTls() transport: close() flushes what was written before connectionLost()",
  async fn() {
    const { server, protocols, port } = await startTlsServer();
    await using _server = server;
    const { plain, client } = await sayStartTls(port);
    await startTls(plain, client, { caCerts: [certs.caCert] });
    await client.received("WELCOME\r\n");
    const serverSide = protocols[0]!;
    const serverTls = await serverSide.upgraded.promise;
    serverSide.chunks.length = 0;
    const last = new Uint8Array(256 * 1024).fill(7);
    serverTls.write(last);
    serverTls.close();
    assertEquals(await serverSide.lost.promise, null);
    await client.eof.promise;
    assertEquals(client.bytes().length, "WELCOME\r\n".length + last.length);
    assertEquals(await client.lost.promise, null);
  },
});

Deno.test({
  name: "startTls() negotiates ALPN on both sides",
  async fn() {
    const { server, protocols, port } = await startTlsServer((protocol) => {
      protocol.options = { alpnProtocols: ["smtp", "denio/1"] };
    });
    await using _server = server;
    const { plain, client } = await sayStartTls(port);
    const tls = await startTls(plain, client, {
      caCerts: [certs.caCert],
      alpnProtocols: ["denio/1"],
    });
    const serverTls = await protocols[0]!.upgraded.promise;
    assertEquals(tls.getExtraInfo("alpnProtocol"), "denio/1");
    assertEquals(serverTls.getExtraInfo("alpnProtocol"), "denio/1");
    assertEquals(tls.getExtraInfo("peername"), plain.getExtraInfo("peername"));
    assertEquals(tls.getExtraInfo("sockname"), plain.getExtraInfo("sockname"));
    assertEquals(tls.getExtraInfo("socket"), plain.getExtraInfo("socket"));
    assertEquals(tls.getExtraInfo("peercert", "absent"), "absent");
    tls.close();
    await client.lost.promise;
  },
});

Deno.test({
  name:
    "startTls() rejects a certificate that does not verify; neither protocol gets connectionMade or connectionLost again",
  async fn() {
    const { server, protocols, port } = await startTlsServer();
    await using _server = server;
    const { plain, client } = await sayStartTls(port);
    const error = await assertRejects(() =>
      startTls(plain, client, { caCerts: [certs.otherCaCert] })
    );
    assertStringIncludes(
      String(error),
      "invalid peer certificate: UnknownIssuer",
    );
    const serverSide = protocols[0]!;
    await assertRejects(() => serverSide.upgraded.promise);
    // Both connections are released; the server forgets its client.
    server.close();
    await server.waitClosed();
    assertEquals(client.events, ["connectionMade", "dataReceived*"]);
    assertEquals(serverSide.events, [
      "connectionMade",
      "STARTTLS",
      "upgrade failed",
    ]);
  },
});

Deno.test({
  name: "startTls() times out a peer that never answers the handshake",
  async fn() {
    const { server, protocols, port } = await startTlsServer((protocol) => {
      protocol.options = { handshakeTimeout: 150 };
    });
    await using _server = server;
    const { plain, client } = await sayStartTls(port);
    // The client never upgrades: the server's handshake times out.
    const error = await assertRejects(
      () => protocols[0]!.upgraded.promise,
      Deno.errors.TimedOut,
    );
    assertEquals(error.message, "TLS handshake did not complete within 150 ms");
    // The server closed the connection.
    assertEquals(await client.lost.promise, null);
    assertEquals(plain.isClosing(), true);
    server.close();
    await server.waitClosed();
  },
});

Deno.test({
  name: "startTls() checks its arguments and leaves the transport usable",
  async fn() {
    const servers: Echo[] = [];
    await using server = await createServer(() => {
      const echo = new Echo();
      servers.push(echo);
      return echo;
    }, { hostname: "127.0.0.1", port: 0 });
    const [plain, client] = await createConnection(() => new Recorder(), {
      hostname: "127.0.0.1",
      port: portOf(server),
    });
    await assertRejects(
      () => startTls({} as Transport, client, {}),
      TypeError,
      "transport is not a stream transport",
    );
    await assertRejects(
      () => startTls(plain, null as unknown as Protocol, {}),
      TypeError,
      "protocol is not an object",
    );
    await assertRejects(
      () => startTls(plain, client, undefined as unknown as StartTlsOptions),
      TypeError,
      "options is not an object",
    );
    await assertRejects(
      () => startTls(plain, client, { serverSide: true, cert: certs.cert }),
      TypeError,
      "key is not a PEM string",
    );
    await assertRejects(
      () => startTls(plain, client, { caCerts: "pem" as unknown as string[] }),
      TypeError,
      "caCerts is not an array of strings",
    );
    for (const bad of [0, -5, NaN]) {
      await assertRejects(
        () => startTls(plain, client, { handshakeTimeout: bad }),
        RangeError,
        "handshakeTimeout is not positive",
      );
    }
    // A key that is not a key fails before the connection is touched.
    await assertRejects(() =>
      startTls(plain, client, {
        serverSide: true,
        cert: certs.cert,
        key: "not a key",
      })
    );
    // So does a name Deno's TLS refuses, and the transport keeps reading.
    await assertRejects(
      () => startTls(plain, client, { hostname: "not a host name!" }),
      TypeError,
      "Invalid hostname",
    );
    assertEquals(plain.isClosing(), false);
    assertEquals(plain.isReading(), true);
    plain.write(encoder.encode("still plain"));
    await client.received("still plain");
    plain.close();
    assertEquals(await client.lost.promise, null);
  },
});

Deno.test({
  name: "startTls() rejects on a closing transport and after writeEof()",
  async fn() {
    await using server = await createServer(() => new Recorder(), {
      hostname: "127.0.0.1",
      port: 0,
    });
    const [closing, first] = await createConnection(() => new Recorder(), {
      hostname: "127.0.0.1",
      port: portOf(server),
    });
    closing.close();
    await assertRejects(
      () => startTls(closing, first, { caCerts: [certs.caCert] }),
      Error,
      "Cannot upgrade transport as it is closing",
    );
    assertEquals(await first.lost.promise, null);
    const [halfClosed, second] = await createConnection(() => new Recorder(), {
      hostname: "127.0.0.1",
      port: portOf(server),
    });
    halfClosed.writeEof();
    await assertRejects(
      () => startTls(halfClosed, second, { caCerts: [certs.caCert] }),
      Error,
      "writeEof() was called",
    );
    halfClosed.close();
    assertEquals(await second.lost.promise, null);
  },
});

Deno.test({
  name:
    "startTls() transport: abort() releases everything and both sides see connectionLost once",
  async fn() {
    const { server, protocols, port } = await startTlsServer();
    await using _server = server;
    const { plain, client } = await sayStartTls(port);
    const tls = await startTls(plain, client, { caCerts: [certs.caCert] });
    await client.received("WELCOME\r\n");
    tls.write(new Uint8Array(1024 * 1024));
    tls.abort();
    tls.abort();
    assertEquals(tls.getWriteBufferSize(), 0);
    assertEquals(await client.lost.promise, null);
    await protocols[0]!.lost.promise;
    assertEquals(client.events.filter((e) => e.startsWith("connectionLost")), [
      "connectionLost(null)",
    ]);
    assertEquals(
      protocols[0]!.events.filter((e) => e.startsWith("connectionLost")).length,
      1,
    );
  },
});

Deno.test({
  name:
    "Server.closeClients() and waitClosed() reach connections upgraded by startTls()",
  async fn() {
    const { server, protocols, port } = await startTlsServer();
    const { plain, client } = await sayStartTls(port);
    await startTls(plain, client, { caCerts: [certs.caCert] });
    await client.received("WELCOME\r\n");
    await protocols[0]!.upgraded.promise;
    // await using: close, closeClients (the upgraded transport), waitClosed.
    await server[Symbol.asyncDispose]();
    assertEquals(await protocols[0]!.lost.promise, null);
    assertEquals(await client.lost.promise, null);
  },
});

Deno.test({
  name:
    "startTls() is cancelled by close() on the old transport during the handshake",
  async fn() {
    const { server, protocols, port } = await startTlsServer();
    await using _server = server;
    const { plain, client } = await sayStartTls(port);
    // The client never upgrades. Once the server's plain transport is
    // detached (the handshake is running), close it.
    const serverPlain = await protocols[0]!.made.promise;
    for (let i = 0; i < 1000 && !serverPlain.isClosing(); i++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assertEquals(serverPlain.isClosing(), true);
    server.closeClients();
    const error = await assertRejects(() => protocols[0]!.upgraded.promise);
    assertStringIncludes(String(error), "closed during the upgrade");
    assertEquals(protocols[0]!.events, [
      "connectionMade",
      "STARTTLS",
      "upgrade failed",
    ]);
    assertEquals(await client.lost.promise, null);
    assertEquals(plain.isClosing(), true);
    server.close();
    await server.waitClosed();
  },
});

Deno.test({
  name:
    "startTls() on a transport closed right after the call rejects, and the protocol gets connectionLost from it",
  async fn() {
    await using server = await createServer(() => new Recorder(), {
      hostname: "127.0.0.1",
      port: 0,
    });
    const [plain, client] = await createConnection(() => new Recorder(), {
      hostname: "127.0.0.1",
      port: portOf(server),
    });
    const upgrading = startTls(plain, client, { caCerts: [certs.caCert] });
    plain.close();
    await assertRejects(() => upgrading, Error, "closing");
    assertEquals(await client.lost.promise, null);
    assertEquals(client.events, ["connectionMade", "connectionLost(null)"]);
  },
});

Deno.test({
  name:
    "startTls() reports no errors to the exception handler on a normal upgrade",
  async fn() {
    await withHandler(async (reports) => {
      const { server, port } = await startTlsServer();
      await using _server = server;
      const { plain, client } = await sayStartTls(port);
      const tls = await startTls(plain, client, { caCerts: [certs.caCert] });
      await client.received("WELCOME\r\n");
      tls.close();
      await client.lost.promise;
      assertEquals(reports, []);
    });
  },
});

Deno.test({
  name: "startTls() upgrades a Unix socket connection",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "denio_tls_unix_" });
    try {
      const path = `${dir}/s.sock`;
      const protocols: StartTlsServer[] = [];
      await using _server = await createServer(() => {
        const protocol = new StartTlsServer();
        protocols.push(protocol);
        return protocol;
      }, { transport: "unix", path });
      const [plain, client] = await createConnection(() => new Recorder(), {
        transport: "unix",
        path,
      });
      plain.write(encoder.encode("STARTTLS\r\n"));
      await client.received("OK\r\n");
      client.chunks.length = 0;
      const tls = await startTls(plain, client, {
        hostname: "localhost",
        caCerts: [certs.caCert],
      });
      assertInstanceOf(tls.getExtraInfo("peername"), Object);
      tls.write(encoder.encode("over unix"));
      await client.received("WELCOME\r\nover unix");
      tls.close();
      assertEquals(await client.lost.promise, null);
      await protocols[0]!.lost.promise;
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "startTls() transport half-closes: writeEof() reaches the peer as eofReceived and the peer can still answer",
  async fn() {
    const { server, protocols, port } = await startTlsServer((protocol) => {
      protocol.keepOpenOnEof = true;
      protocol.eof.promise.then(() => {
        protocol.transport!.write(encoder.encode("BYE\r\n"));
        protocol.transport!.close();
      });
    });
    await using _server = server;
    const { plain, client } = await sayStartTls(port);
    const tls = await startTls(plain, client, { caCerts: [certs.caCert] });
    assertEquals(tls.canWriteEof(), true);
    await client.received("WELCOME\r\n");
    tls.write(encoder.encode("last words"));
    tls.writeEof();
    assertEquals(await client.lost.promise, null);
    assertEquals(client.text(), "WELCOME\r\nlast wordsBYE\r\n");
    assertEquals(client.events, [
      "connectionMade",
      "dataReceived*",
      "eofReceived",
      "connectionLost(null)",
    ]);
    assertEquals(await protocols[0]!.lost.promise, null);
    assertEquals(protocols[0]!.events.slice(-2), [
      "eofReceived",
      "connectionLost(null)",
    ]);
  },
});

Deno.test({
  name:
    "startTls() rejects when the peer closes during the handshake, and the server forgets the connection",
  async fn() {
    const { server, protocols, port } = await startTlsServer();
    const { plain, client } = await sayStartTls(port);
    plain.close();
    await assertRejects(() => protocols[0]!.upgraded.promise);
    assertEquals(await client.lost.promise, null);
    server.close();
    await server.waitClosed();
    assertEquals(protocols[0]!.events, [
      "connectionMade",
      "STARTTLS",
      "upgrade failed",
    ]);
  },
});

Deno.test({
  name:
    "startTls() transport: a failure of the connection under the tunnel reaches connectionLost(error) once",
  async fn() {
    await withHandler(async (reports) => {
      const { server, port } = await startTlsServer();
      await using _server = server;
      const { plain, client } = await sayStartTls(port);
      const tls = await startTls(plain, client, { caCerts: [certs.caCert] });
      await client.received("WELCOME\r\n");
      // Pull the socket out from under the tunnel.
      (tls.getExtraInfo("socket") as Deno.Conn).close();
      const error = await client.lost.promise;
      assertInstanceOf(error, Error);
      assertEquals(tls.isClosing(), true);
      assertEquals(
        client.events.filter((event) => event.startsWith("connectionLost"))
          .length,
        1,
      );
      assert(reports.length <= 1, `reported ${reports.length} times`);
    });
  },
});

Deno.test({
  name:
    "startTls() on a transport made by startTls() nests TLS in TLS and closes cleanly on both sides",
  async fn() {
    const { server, protocols, port } = await startTlsServer();
    await using _server = server;
    const { plain, client } = await sayStartTls(port);
    const outer = await startTls(plain, client, { caCerts: [certs.caCert] });
    await client.received("WELCOME\r\n");
    client.chunks.length = 0;
    outer.write(encoder.encode("STARTTLS\r\n"));
    await client.received("OK\r\n");
    client.chunks.length = 0;
    const inner = await startTls(outer, client, { caCerts: [certs.caCert] });
    await client.received("WELCOME\r\n");
    inner.write(encoder.encode("twice wrapped"));
    await client.received("WELCOME\r\ntwice wrapped");
    inner.close();
    assertEquals(await client.lost.promise, null);
    assertEquals(await protocols[0]!.lost.promise, null);
    assertEquals(protocols[0]!.events, [
      "connectionMade",
      "STARTTLS",
      "upgraded",
      "STARTTLS",
      "upgraded",
      "dataReceived*",
      "eofReceived",
      "connectionLost(null)",
    ]);
    assertEquals(client.events, [
      "connectionMade",
      "dataReceived*",
      "connectionLost(null)",
    ]);
  },
});

// ------------------------------------------------------------------- examples

const ROOT = new URL("..", import.meta.url);

/** Reads a child's stdout until `pattern` shows up; returns all text so far. */
async function readUntil(
  reader: ReadableStreamDefaultReader<string>,
  pattern: RegExp,
  sofar: { text: string },
): Promise<string> {
  while (!pattern.test(sofar.text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`ended before ${pattern}: ${sofar.text}`);
    sofar.text += value;
  }
  return sofar.text;
}

/** Runs examples/starttls.ts in client+server mode and checks its dialogue. */
async function checkStartTlsExample(args: string[]): Promise<void> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-run=openssl",
      "--allow-read",
      "--allow-write",
      "examples/starttls.ts",
      ...args,
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  const out = decoder.decode(stdout);
  assertEquals(code, 0, `${out}\n${decoder.decode(stderr)}`);
  const client = out.split("\n").filter((line) => line.startsWith("client:"));
  assertEquals(client, [
    "client: <- 220 denio STARTTLS demo",
    "client: -> STARTTLS",
    "client: <- 220 go ahead",
    "client: connection upgraded to TLS",
    "client: -> HELLO secret",
    "client: <- 250 HELLO secret",
    "client: -> QUIT",
    "client: <- 221 bye",
    "client: connection closed",
  ]);
  assertStringIncludes(out, "server: connection upgraded to TLS");
  assertStringIncludes(out, "starttls example done");
}

Deno.test({
  name:
    "examples/starttls.ts: client and server upgrade with STARTTLS and the program exits by itself (its own openssl certificate)",
  ignore: peerMissing("openssl") !== null,
  async fn() {
    await checkStartTlsExample([]);
  },
});

Deno.test({
  name:
    "examples/starttls.ts --cert --key: client and server upgrade with STARTTLS using a given self-signed certificate",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "denio_starttls_test_" });
    try {
      const { cert, key } = await makeSelfSignedCert();
      await Deno.writeTextFile(`${dir}/cert.pem`, cert);
      await Deno.writeTextFile(`${dir}/key.pem`, key);
      await checkStartTlsExample([
        "--cert",
        `${dir}/cert.pem`,
        "--key",
        `${dir}/key.pem`,
      ]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "examples/tls_echo.ts echoes to `openssl s_client` and closes on SIGINT",
  ignore: peerMissing("openssl") !== null,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "denio_tls_echo_" });
    try {
      await Deno.writeTextFile(`${dir}/cert.pem`, certs.cert);
      await Deno.writeTextFile(`${dir}/key.pem`, certs.key);
      await Deno.writeTextFile(`${dir}/ca.pem`, certs.caCert);
      const server = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-net",
          "--allow-read",
          "examples/tls_echo.ts",
          "--cert",
          `${dir}/cert.pem`,
          "--key",
          `${dir}/key.pem`,
          "--port",
          "0",
        ],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(30_000),
      }).spawn();
      const serverErr = new Response(server.stderr).text();
      const serverOut = server.stdout.pipeThrough(new TextDecoderStream())
        .getReader();
      const serverText = { text: "" };
      try {
        await readUntil(
          serverOut,
          /listening on 127\.0\.0\.1:\d+\n/,
          serverText,
        );
        const port = serverText.text.match(/:(\d+)\n/)![1]!;
        const client = new Deno.Command("openssl", {
          args: [
            "s_client",
            "-connect",
            `127.0.0.1:${port}`,
            "-CAfile",
            `${dir}/ca.pem`,
            "-verify_return_error",
            "-quiet",
            "-no_ign_eof",
          ],
          stdin: "piped",
          stdout: "piped",
          stderr: "piped",
          signal: AbortSignal.timeout(30_000),
        }).spawn();
        const clientErr = new Response(client.stderr).text();
        const clientOut = client.stdout.pipeThrough(new TextDecoderStream())
          .getReader();
        const writer = client.stdin.getWriter();
        await writer.write(encoder.encode("hello over TLS\n"));
        const echoed = await readUntil(clientOut, /hello over TLS\n/, {
          text: "",
        });
        assertEquals(echoed, "hello over TLS\n");
        await writer.close();
        await clientOut.cancel();
        assertEquals((await client.status).code, 0, await clientErr);
        await clientErr;
        await readUntil(serverOut, /closed, 15 bytes echoed\n/, serverText);
      } finally {
        server.kill("SIGINT");
        await readUntil(serverOut, /tls echo server closed\n/, serverText)
          .catch(() => {});
        await serverOut.cancel();
        await serverErr;
        await server.status;
      }
      assertStringIncludes(serverText.text, "tls echo server closed");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// Copyright 2026 the denio authors. MIT license.
// A protocol that throws from each callback in turn: the exception handler
// gets exactly one context naming the callback (with the thrown error, the
// transport and the protocol), the transport is aborted and connectionLost
// gets the thrown error (connectionLost itself excepted), nothing becomes an
// unhandled rejection, and the server keeps serving.

import { assert, assertEquals, assertInstanceOf } from "@std/assert";
import {
  connectReadPipe,
  connectWritePipe,
  createConnection,
  createDatagramEndpoint,
  createServer,
  type DatagramProtocol,
  type DatagramTransport,
  type ExceptionContext,
  type Protocol,
  type ReadTransport,
  setExceptionHandler,
  startTls,
  subprocessExec,
  type SubprocessProtocol,
  type SubprocessTransport,
  type Transport,
} from "../mod.ts";
import {
  BOUND,
  errorName,
  faultBed,
  readAtLeast,
  recordContexts,
  sleep,
  trapUnhandled,
  waitFor,
  within,
} from "./_reliability_helpers.ts";
import { makeTestCerts } from "./_certs.ts";

/** A stream protocol (plain or buffered) that throws `thrown` from `name`. */
class Thrower {
  readonly events: string[] = [];
  readonly lost = Promise.withResolvers<Error | null>();
  transport: Transport | undefined;
  lostCalls = 0;
  readonly thrown: unknown;
  readonly #name: string;
  readonly #buffer = new Uint8Array(64 * 1024);

  constructor(name: string, thrown: unknown) {
    this.#name = name;
    this.thrown = thrown;
  }

  /** Logs `name` and throws if it is the chosen callback. */
  hit(name: string): void {
    if (this.events.at(-1) !== name || name === "connectionMade") {
      this.events.push(name);
    }
    if (name === this.#name) throw this.thrown;
  }

  connectionMade(transport: Transport): void {
    this.transport = transport;
    this.hit("connectionMade");
    if (this.#name === "pauseWriting" || this.#name === "resumeWriting") {
      // Two writes over the 64 KiB high watermark: pauseWriting now,
      // resumeWriting once the peer has read them.
      transport.write(new Uint8Array(64 * 1024));
      transport.write(new Uint8Array(64 * 1024));
    }
  }

  eofReceived(): boolean | void {
    this.hit("eofReceived");
  }

  pauseWriting(): void {
    this.hit("pauseWriting");
  }

  resumeWriting(): void {
    this.hit("resumeWriting");
  }

  connectionLost(error: Error | null): void {
    this.lostCalls++;
    this.lost.resolve(error);
    this.hit("connectionLost");
  }

  /** The plain-protocol callback. */
  dataReceived(_data: Uint8Array): void {
    this.hit("dataReceived");
  }

  /** For the buffered variant. */
  getBuffer(_sizeHint: number): Uint8Array {
    this.hit("getBuffer");
    return this.#buffer;
  }

  /** For the buffered variant. */
  bufferUpdated(_nbytes: number): void {
    this.hit("bufferUpdated");
  }
}

/** A {@linkcode Thrower} without dataReceived: a BufferedProtocol. */
function bufferedThrower(name: string, thrown: unknown): Thrower {
  const thrower = new Thrower(name, thrown);
  Object.defineProperty(thrower, "dataReceived", { value: undefined });
  return thrower;
}

/** Asserts the one context the exception handler got for `name`. */
function assertOneContext(
  contexts: ExceptionContext[],
  name: string,
  thrower: { thrown: unknown; transport?: unknown },
  protocol: unknown,
): void {
  assertEquals(
    contexts.length,
    1,
    `contexts: ${contexts.map((c) => c.message).join(" | ")}`,
  );
  const context = contexts[0]!;
  assert(
    context.message.includes(name),
    `message ${JSON.stringify(context.message)} does not name ${name}`,
  );
  assert(context.error === thrower.thrown, `error is ${String(context.error)}`);
  assert(context.transport === thrower.transport, "context.transport");
  assert(context.protocol === protocol, "context.protocol");
}

/** How a peer makes the server call each stream callback. */
const STREAM_CASES: {
  name: string;
  buffered?: boolean;
  provoke(conn: Deno.Conn): Promise<void>;
}[] = [
  { name: "connectionMade", provoke: async () => {} },
  {
    name: "dataReceived",
    provoke: async (conn) => void await conn.write(new Uint8Array([1, 2, 3])),
  },
  {
    name: "eofReceived",
    provoke: async (conn) => {
      await conn.write(new Uint8Array([1, 2, 3]));
      await conn.closeWrite();
    },
  },
  {
    // A readiness-based backend asks for a buffer once bytes are there.
    name: "getBuffer",
    buffered: true,
    provoke: async (conn) => void await conn.write(new Uint8Array([1])),
  },
  {
    name: "bufferUpdated",
    buffered: true,
    provoke: async (conn) => void await conn.write(new Uint8Array([1, 2, 3])),
  },
  { name: "pauseWriting", provoke: async () => {} },
  {
    name: "resumeWriting",
    // Read what the protocol wrote so its buffer drains.
    provoke: async (conn) => void await readAtLeast(conn, 1),
  },
];

/** Drains `conn` to its end (EOF or a reset), bounded. */
async function drain(conn: Deno.Conn): Promise<void> {
  await within(
    readAtLeast(conn, Infinity).catch(() => 0),
    BOUND,
    "the peer's end of stream",
  );
}

for (
  const [kind, { name, buffered, provoke }] of (["tcp", "tls"] as const)
    .flatMap((kind) => STREAM_CASES.map((c) => [kind, c] as const))
) {
  Deno.test({
    name: `StreamTransport (${kind}) reports a throwing ${
      buffered ? "BufferedProtocol" : "Protocol"
    }.${name}() once to the exception handler, aborts with connectionLost(thrown) and keeps the server serving`,
    fn: async () => {
      await using bed = await faultBed(kind);
      const thrown = new Error(`thrown by ${name}`);
      const thrower = buffered
        ? bufferedThrower(name, thrown)
        : new Thrower(name, thrown);
      bed.nextProtocol(thrower as Protocol);
      const conn = await bed.connectRaw();
      try {
        await provoke(conn);
        const error = await within(
          thrower.lost.promise,
          BOUND,
          "connectionLost",
        );
        assert(error === thrown, `connectionLost got ${errorName(error)}`);
        await drain(conn);
      } finally {
        conn.close();
      }
      assertEquals(thrower.lostCalls, 1);
      assertEquals(thrower.transport!.isClosing(), true);
      // Nothing after the throw but connectionLost.
      assertEquals(thrower.events.at(-2), name, thrower.events.join(" "));
      assertEquals(thrower.events.at(-1), "connectionLost");
      assertEquals(thrower.transport!.getWriteBufferSize(), 0);
      assertOneContext(bed.contexts, name, thrower, thrower);
      await bed.assertStillServing();
    },
  });
}

Deno.test(
  "StreamTransport reports a throwing Protocol.connectionLost() once to the exception handler and calls it only once",
  async () => {
    await using bed = await faultBed();
    const thrown = new Error("thrown by connectionLost");
    const thrower = new Thrower("connectionLost", thrown);
    bed.nextProtocol(thrower as Protocol);
    const conn = await bed.connectRaw();
    await conn.write(new Uint8Array([1]));
    conn.close();
    assertEquals(
      await within(thrower.lost.promise, BOUND, "connectionLost"),
      null,
    );
    await waitFor(() => bed.contexts.length > 0, "the context", BOUND);
    await sleep(10);
    assertEquals(thrower.lostCalls, 1);
    assertEquals(thrower.events, [
      "connectionMade",
      "dataReceived",
      "eofReceived",
      "connectionLost",
    ]);
    assertOneContext(bed.contexts, "connectionLost", thrower, thrower);
    await bed.assertStillServing();
  },
);

Deno.test(
  "StreamTransport turns a thrown non-Error into an Error for connectionLost, keeping the value as cause",
  async () => {
    await using bed = await faultBed();
    const thrower = new Thrower("dataReceived", "a plain string");
    bed.nextProtocol(thrower as Protocol);
    const conn = await bed.connectRaw();
    try {
      await conn.write(new Uint8Array([1]));
      const error = await within(thrower.lost.promise, BOUND, "connectionLost");
      assertInstanceOf(error, Error);
      assertEquals(error!.cause, "a plain string");
      await drain(conn);
    } finally {
      conn.close();
    }
    assertOneContext(bed.contexts, "dataReceived", thrower, thrower);
    await bed.assertStillServing();
  },
);

Deno.test(
  "createServer() reports a throwing protocol factory once, closes that connection and keeps serving",
  async () => {
    await using bed = await faultBed();
    const thrown = new Error("factory failed");
    bed.nextProtocol(() => {
      throw thrown;
    });
    const conn = await bed.connectRaw();
    try {
      await drain(conn);
    } finally {
      conn.close();
    }
    await waitFor(() => bed.contexts.length > 0, "the context", BOUND);
    assertEquals(bed.contexts.length, 1);
    assert(bed.contexts[0]!.message.includes("factory"));
    assert(bed.contexts[0]!.error === thrown);
    await bed.assertStillServing();
  },
);

Deno.test(
  "createServer() reports a protocol whose callback getters throw, closes that connection and keeps serving",
  async () => {
    await using bed = await faultBed();
    const thrown = new Error("getter failed");
    bed.nextProtocol(
      new Proxy({}, {
        get() {
          throw thrown;
        },
      }) as Protocol,
    );
    const conn = await bed.connectRaw();
    try {
      await drain(conn);
    } finally {
      conn.close();
    }
    await waitFor(() => bed.contexts.length > 0, "a context", BOUND);
    assertEquals(bed.contexts.length, 1);
    assert(bed.contexts[0]!.error === thrown);
    await bed.assertStillServing();
  },
);

Deno.test(
  "createConnection() with a protocol whose connectionMade() throws: one context, connectionLost(thrown), nothing leaked",
  async () => {
    await using bed = await faultBed();
    const thrown = new Error("client connectionMade failed");
    const thrower = new Thrower("connectionMade", thrown);
    let transport: Transport | undefined;
    try {
      [transport] = await within(
        createConnection(() => thrower, bed.target),
        BOUND,
        "createConnection()",
      );
    } catch (error) {
      assert(
        error === thrown,
        `createConnection rejected with ${String(error)}`,
      );
    }
    assert(
      await within(thrower.lost.promise, BOUND, "connectionLost") === thrown,
    );
    assertEquals(thrower.lostCalls, 1);
    if (transport !== undefined) assertEquals(transport.isClosing(), true);
    assertOneContext(bed.contexts, "connectionMade", thrower, thrower);
    await bed.assertStillServing();
  },
);

Deno.test(
  "An exception handler that throws does not take the process down: the transport is still aborted",
  async () => {
    await using bed = await faultBed();
    let calls = 0;
    const originalError = console.error;
    const printed: string[] = [];
    console.error = (...args: unknown[]) => printed.push(args.join(" "));
    try {
      setExceptionHandler(() => {
        calls++;
        throw new Error("the handler failed too");
      });
      const thrown = new Error("thrown by dataReceived");
      const thrower = new Thrower("dataReceived", thrown);
      bed.nextProtocol(thrower as Protocol);
      const conn = await bed.connectRaw();
      try {
        await conn.write(new Uint8Array([1]));
        assert(
          await within(thrower.lost.promise, BOUND, "connectionLost") ===
            thrown,
        );
        await drain(conn);
      } finally {
        conn.close();
      }
      assertEquals(calls, 1);
      // The default handler printed both errors instead.
      assert(printed.some((line) => line.includes("the handler failed too")));
      assert(printed.some((line) => line.includes("thrown by dataReceived")));
    } finally {
      console.error = originalError;
      setExceptionHandler((context) => bed.contexts.push(context));
    }
    await bed.assertStillServing();
  },
);

// ----------------------------------------------------------------- datagrams

for (const name of ["connectionMade", "datagramReceived"] as const) {
  Deno.test(
    `DatagramTransport reports a throwing DatagramProtocol.${name}() once and aborts with connectionLost(thrown)`,
    async () => {
      using unhandled = trapUnhandled();
      using recorder = recordContexts();
      const thrown = new Error(`thrown by ${name}`);
      const events: string[] = [];
      const lost = Promise.withResolvers<Error | null>();
      let lostCalls = 0;
      let endpoint: DatagramTransport | undefined;
      const protocol: DatagramProtocol = {
        connectionMade(transport) {
          endpoint = transport;
          events.push("connectionMade");
          if (name === "connectionMade") throw thrown;
        },
        datagramReceived() {
          events.push("datagramReceived");
          if (name === "datagramReceived") throw thrown;
        },
        connectionLost(error) {
          events.push("connectionLost");
          lostCalls++;
          lost.resolve(error);
        },
      };
      const [server] = await createDatagramEndpoint(() => protocol, {
        localAddr: { hostname: "127.0.0.1", port: 0 },
      });
      const addr = server.getExtraInfo("sockname") as Deno.NetAddr;
      // A second endpoint that echoes proves datagrams still flow afterwards.
      const echoed = Promise.withResolvers<string>();
      const [client] = await createDatagramEndpoint(() => ({
        datagramReceived(data: Uint8Array) {
          echoed.resolve(new TextDecoder().decode(data));
        },
      }), { localAddr: { hostname: "127.0.0.1", port: 0 } });
      try {
        if (name === "datagramReceived") {
          client.sendto(new Uint8Array([1]), addr);
        }
        const error = await within(lost.promise, BOUND, "connectionLost");
        assert(error === thrown, `connectionLost got ${errorName(error)}`);
        assertEquals(lostCalls, 1);
        assertEquals(events.at(-2), name);
        assertEquals(server.isClosing(), true);
        assertOneContext(
          recorder.contexts,
          name,
          { thrown, transport: endpoint },
          protocol,
        );
        // The other endpoint still works (sends to itself).
        client.sendto(
          new TextEncoder().encode("alive"),
          client.getExtraInfo("sockname") as Deno.NetAddr,
        );
        assertEquals(
          await within(echoed.promise, BOUND, "a datagram"),
          "alive",
        );
      } finally {
        server.abort();
        client.abort();
        await sleep(10);
      }
      assertEquals(unhandled.seen, []);
    },
  );
}

// ---------------------------------------------------------------- subprocess

for (
  const name of [
    "connectionMade",
    "pipeDataReceived",
    "pipeConnectionLost",
    "processExited",
  ] as const
) {
  Deno.test(
    `SubprocessTransport reports a throwing SubprocessProtocol.${name}() once, kills the child and ends with connectionLost(thrown)`,
    async () => {
      using unhandled = trapUnhandled();
      using recorder = recordContexts();
      const thrown = new Error(`thrown by ${name}`);
      const events: string[] = [];
      const lost = Promise.withResolvers<Error | null>();
      let lostCalls = 0;
      let transport: SubprocessTransport | undefined;
      function hit(event: string): void {
        if (events.at(-1) !== event) events.push(event);
        if (event === name) throw thrown;
      }
      const protocol: SubprocessProtocol = {
        connectionMade(t) {
          transport = t;
          hit("connectionMade");
        },
        pipeDataReceived() {
          hit("pipeDataReceived");
        },
        pipeConnectionLost() {
          hit("pipeConnectionLost");
        },
        processExited() {
          hit("processExited");
        },
        connectionLost(error) {
          events.push("connectionLost");
          lostCalls++;
          lost.resolve(error);
        },
      };
      // A child that prints, then waits for stdin to end (a long sleep
      // unless the transport kills it).
      await subprocessExec(() => protocol, Deno.execPath(), {
        args: [
          "eval",
          "console.log('hello'); for await (const _ of Deno.stdin.readable);",
        ],
      });
      if (name === "pipeConnectionLost" || name === "processExited") {
        // Let the child end on its own: close its stdin.
        (transport!.getPipeTransport(0) as Transport).close();
      }
      const error = await within(lost.promise, 30_000, "connectionLost");
      assert(error === thrown, `connectionLost got ${errorName(error)}`);
      assertEquals(lostCalls, 1);
      assert(transport!.getReturncode() !== null, "the child still runs");
      assertOneContext(
        recorder.contexts,
        name,
        { thrown, transport },
        protocol,
      );
      assertEquals(events.at(-1), "connectionLost");
      assertEquals(unhandled.seen, []);
    },
  );
}

Deno.test({
  name:
    "startTls(): a protocol that throws after the upgrade is reported once and gets one connectionLost(thrown)",
  async fn() {
    using unhandled = trapUnhandled();
    using recorder = recordContexts();
    const certs = await makeTestCerts();
    const thrown = new Error("thrown by dataReceived after STARTTLS");
    const serverLost = Promise.withResolvers<Error | null>();
    let serverLostCalls = 0;
    let upgraded: Transport | undefined;
    let serverProtocol: Protocol | undefined;
    try {
      const server = await createServer(() => {
        let transport: Transport;
        const protocol: Protocol = {
          connectionMade(t) {
            transport = t;
          },
          dataReceived(data) {
            if (upgraded !== undefined) throw thrown;
            if (new TextDecoder().decode(data) === "STARTTLS\r\n") {
              transport.write(new TextEncoder().encode("OK\r\n"));
              startTls(transport, protocol, {
                serverSide: true,
                cert: certs.cert,
                key: certs.key,
              }).then((t) => upgraded = t);
            }
          },
          connectionLost(error) {
            serverLostCalls++;
            serverLost.resolve(error);
          },
        };
        serverProtocol = protocol;
        return protocol;
      }, { hostname: "127.0.0.1", port: 0 });
      try {
        const { port } = server.addrs[0] as Deno.NetAddr;
        const ok = Promise.withResolvers<void>();
        const clientLost = Promise.withResolvers<Error | null>();
        const client: Protocol = {
          dataReceived() {
            ok.resolve();
          },
          connectionLost: clientLost.resolve,
        };
        const [plain] = await createConnection(() => client, {
          hostname: "127.0.0.1",
          port,
        });
        plain.write(new TextEncoder().encode("STARTTLS\r\n"));
        await within(ok.promise, BOUND, "OK");
        const tls = await within(
          startTls(plain, client, { caCerts: [certs.caCert] }),
          BOUND,
          "the client's upgrade",
        );
        tls.write(new TextEncoder().encode("boom"));
        assert(
          await within(serverLost.promise, BOUND, "connectionLost") === thrown,
        );
        await within(clientLost.promise, BOUND, "the client's end");
        assertEquals(serverLostCalls, 1);
        assertOneContext(
          recorder.contexts,
          "dataReceived",
          { thrown, transport: upgraded },
          serverProtocol,
        );
      } finally {
        server.close();
        server.abortClients();
        await within(server.waitClosed(), BOUND, "the server to close");
      }
    } finally {
      await Deno.remove(certs.dir, { recursive: true });
    }
    assertEquals(unhandled.seen, []);
  },
});

// ------------------------------------------------------------ async callbacks

Deno.test(
  "An async Protocol.dataReceived() that rejects is fatal like a throw: one context, connectionLost(error), no unhandled rejection",
  async () => {
    await using bed = await faultBed();
    const thrown = new Error("rejected by an async dataReceived");
    const lost = Promise.withResolvers<Error | null>();
    let transport: Transport | undefined;
    let lostCalls = 0;
    const protocol: Protocol = {
      connectionMade(t) {
        transport = t;
      },
      async dataReceived() {
        await null;
        throw thrown;
      },
      connectionLost(error) {
        lostCalls++;
        lost.resolve(error);
      },
    };
    bed.nextProtocol(protocol);
    const conn = await bed.connectRaw();
    try {
      await conn.write(new Uint8Array([1]));
      assert(await within(lost.promise, BOUND, "connectionLost") === thrown);
      await drain(conn);
    } finally {
      conn.close();
    }
    assertEquals(lostCalls, 1);
    assertOneContext(
      bed.contexts,
      "dataReceived",
      { thrown, transport },
      protocol,
    );
    await bed.assertStillServing();
  },
);

Deno.test(
  "An async SubprocessProtocol.pipeDataReceived() that rejects is fatal like a throw",
  async () => {
    using unhandled = trapUnhandled();
    using recorder = recordContexts();
    const thrown = new Error("rejected by an async pipeDataReceived");
    const lost = Promise.withResolvers<Error | null>();
    let transport: SubprocessTransport | undefined;
    const protocol: SubprocessProtocol = {
      connectionMade(t) {
        transport = t;
      },
      async pipeDataReceived() {
        await null;
        throw thrown;
      },
      connectionLost: lost.resolve,
    };
    await subprocessExec(() => protocol, Deno.execPath(), {
      args: [
        "eval",
        "console.log('hi'); await new Promise((r) => setTimeout(r, 30000));",
      ],
      stdin: "null",
    });
    assert(await within(lost.promise, BOUND, "connectionLost") === thrown);
    assertOneContext(recorder.contexts, "pipeDataReceived", {
      thrown,
      transport,
    }, protocol);
    assertEquals(unhandled.seen, []);
  },
);

// ------------------------------------------------- connectionLost elsewhere

Deno.test(
  "DatagramTransport reports a throwing DatagramProtocol.connectionLost() once and calls it once",
  async () => {
    using unhandled = trapUnhandled();
    using recorder = recordContexts();
    const thrown = new Error("thrown by connectionLost");
    let calls = 0;
    let endpoint: DatagramTransport | undefined;
    const protocol: DatagramProtocol = {
      connectionMade(t) {
        endpoint = t;
      },
      connectionLost() {
        calls++;
        throw thrown;
      },
    };
    const [transport] = await createDatagramEndpoint(() => protocol, {
      localAddr: { hostname: "127.0.0.1", port: 0 },
    });
    transport.close();
    await waitFor(() => recorder.contexts.length > 0, "the context", BOUND);
    await sleep(10);
    assertEquals(calls, 1);
    assertOneContext(
      recorder.contexts,
      "connectionLost",
      { thrown, transport: endpoint },
      protocol,
    );
    assertEquals(unhandled.seen, []);
  },
);

Deno.test(
  "SubprocessTransport reports a throwing SubprocessProtocol.connectionLost() once and calls it once",
  async () => {
    using unhandled = trapUnhandled();
    using recorder = recordContexts();
    const thrown = new Error("thrown by connectionLost");
    let calls = 0;
    let transport: SubprocessTransport | undefined;
    const protocol: SubprocessProtocol = {
      connectionMade(t) {
        transport = t;
      },
      connectionLost() {
        calls++;
        throw thrown;
      },
    };
    await subprocessExec(() => protocol, "true", { stdin: "null" });
    await waitFor(() => recorder.contexts.length > 0, "the context", BOUND);
    await sleep(10);
    assertEquals(calls, 1);
    assertEquals(transport!.getReturncode(), 0);
    assertOneContext(
      recorder.contexts,
      "connectionLost",
      { thrown, transport },
      protocol,
    );
    assertEquals(unhandled.seen, []);
  },
);

// --------------------------------------------------------------------- pipes

Deno.test(
  "connectReadPipe(): a throwing Protocol.dataReceived() is reported once, the pipe is closed and connectionLost(thrown) follows",
  async () => {
    using unhandled = trapUnhandled();
    using recorder = recordContexts();
    const thrown = new Error("thrown by dataReceived");
    let cancelled = false;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(new Uint8Array([1, 2, 3]));
      },
      cancel() {
        cancelled = true;
      },
    });
    const lost = Promise.withResolvers<Error | null>();
    let lostCalls = 0;
    let pipeTransport: ReadTransport | undefined;
    const protocol: Protocol = {
      connectionMade(t) {
        pipeTransport = t;
      },
      dataReceived() {
        throw thrown;
      },
      connectionLost(error) {
        lostCalls++;
        lost.resolve(error);
      },
    };
    await connectReadPipe(() => protocol, stream);
    assert(await within(lost.promise, BOUND, "connectionLost") === thrown);
    await waitFor(() => cancelled, "the stream to be cancelled", BOUND);
    assertEquals(lostCalls, 1);
    assertOneContext(
      recorder.contexts,
      "dataReceived",
      { thrown, transport: pipeTransport },
      protocol,
    );
    assertEquals(unhandled.seen, []);
  },
);

Deno.test(
  "connectWritePipe(): a throwing Protocol.pauseWriting() is reported once, the pipe is released and connectionLost(thrown) follows",
  async () => {
    using unhandled = trapUnhandled();
    using recorder = recordContexts();
    const thrown = new Error("thrown by pauseWriting");
    let aborted: unknown;
    // A slow sink, so the buffer grows past the high watermark at once.
    const stream = new WritableStream<Uint8Array>({
      write: () => sleep(20),
      abort(reason) {
        aborted = reason ?? "aborted";
      },
      close() {
        aborted = "closed";
      },
    });
    const lost = Promise.withResolvers<Error | null>();
    const protocol = {
      pauseWriting() {
        throw thrown;
      },
      connectionLost: lost.resolve,
    };
    const [transport] = await connectWritePipe(() => protocol, stream);
    transport.write(new Uint8Array(128 * 1024));
    assert(await within(lost.promise, BOUND, "connectionLost") === thrown);
    assertEquals(transport.isClosing(), true);
    assertEquals(transport.getWriteBufferSize(), 0);
    assertOneContext(
      recorder.contexts,
      "pauseWriting",
      { thrown, transport },
      protocol,
    );
    await waitFor(() => aborted !== undefined, "the stream to end", BOUND);
    assertEquals(unhandled.seen, []);
  },
);

// Copyright 2026 the denio authors. MIT license.
// Bad input at every public entry of mod.ts: wrong types give a TypeError,
// values out of range a RangeError, both at the call and worded
// "Cannot X as Y: current value is Z"; misuse of a closed or half-closed
// transport is clear too. Without --allow-net / --allow-run a program gets
// Deno's permission error at the call and never hangs.

import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertMatch,
} from "@std/assert";
import {
  callExceptionHandler,
  connectReadPipe,
  connectWritePipe,
  ContentLengthProtocol,
  createConnection,
  createDatagramEndpoint,
  createServer,
  type DatagramTransport,
  LengthPrefixedProtocol,
  LineProtocol,
  openConnection,
  type Server,
  setExceptionHandler,
  startServer,
  startTls,
  StreamReader,
  StreamReaderProtocol,
  StreamWriter,
  subprocessExec,
  subprocessShell,
  type SubprocessTransport,
  toWebStreams,
  type Transport,
  WebStreamProtocol,
} from "../mod.ts";
import {
  BOUND,
  Recording,
  sleep,
  trapUnhandled,
  within,
} from "./_reliability_helpers.ts";

const MESSAGE_FORM = /^Cannot \S.* as \S.*: current value is \S.*$/s;

type ErrorClass =
  | TypeErrorConstructor
  | RangeErrorConstructor
  | ErrorConstructor
  | (new (...args: never[]) => Error);

/** One bad call and the error it must give. */
interface Case {
  name: string;
  call: () => unknown;
  error: ErrorClass;
}

/** Runs `call`, awaiting a promise it returns; resolves to what it threw. */
async function thrownBy(call: () => unknown): Promise<unknown> {
  try {
    const result = call();
    if (result instanceof Promise) {
      const value = await within(result, BOUND, "the call to settle");
      return { resolved: value };
    }
    return { returned: result };
  } catch (error) {
    return error;
  }
}

/** Asserts each case throws (or rejects with) its error class, in the house wording. */
async function checkCases(t: Deno.TestContext, cases: Case[]): Promise<void> {
  for (const { name, call, error: expected } of cases) {
    await t.step(name, async () => {
      const error = await thrownBy(call);
      assertInstanceOf(
        error,
        expected,
        `expected ${expected.name}, got ${
          error instanceof Error
            ? `${error.constructor.name}: ${error.message}`
            : JSON.stringify(error)
        }`,
      );
      const message = (error as Error).message;
      if (expected === TypeError || expected === RangeError) {
        assertMatch(message, MESSAGE_FORM);
      } else {
        assertMatch(message, /^Cannot \S/);
      }
      assert(!message.endsWith("."), `trailing period: ${message}`);
    });
  }
}

function noop() {
  return {};
}

const bytes = new Uint8Array([1, 2, 3]);

// ------------------------------------------------------------ entry points

Deno.test("setExceptionHandler() and callExceptionHandler() reject bad arguments with a TypeError", async (t) => {
  await checkCases(t, [
    {
      name: "setExceptionHandler(42)",
      call: () => setExceptionHandler(42 as never),
      error: TypeError,
    },
    {
      name: 'setExceptionHandler("f")',
      call: () => setExceptionHandler("f" as never),
      error: TypeError,
    },
    {
      name: "setExceptionHandler(undefined)",
      call: () => setExceptionHandler(undefined as never),
      error: TypeError,
    },
    {
      name: "callExceptionHandler(null)",
      call: () => callExceptionHandler(null as never),
      error: TypeError,
    },
    {
      name: "callExceptionHandler({})",
      call: () => callExceptionHandler({} as never),
      error: TypeError,
    },
    {
      name: "callExceptionHandler({ message: 1 })",
      call: () => callExceptionHandler({ message: 1 } as never),
      error: TypeError,
    },
  ]);
});

Deno.test("createConnection() rejects bad arguments with a TypeError or RangeError before connecting", async (t) => {
  using unhandled = trapUnhandled();
  const port = 9; // never reached: every case fails its checks first
  await checkCases(t, [
    {
      name: "protocolFactory null",
      call: () => createConnection(null as never, { port }),
      error: TypeError,
    },
    {
      name: "options null",
      call: () => createConnection(noop, null as never),
      error: TypeError,
    },
    {
      name: 'options "x"',
      call: () => createConnection(noop, "x" as never),
      error: TypeError,
    },
    {
      name: "port missing",
      call: () => createConnection(noop, {}),
      error: TypeError,
    },
    {
      name: 'port "80"',
      call: () => createConnection(noop, { port: "80" as never }),
      error: TypeError,
    },
    {
      name: "port -1",
      call: () => createConnection(noop, { port: -1 }),
      error: RangeError,
    },
    {
      name: "port 0",
      call: () => createConnection(noop, { port: 0 }),
      error: RangeError,
    },
    {
      name: "port 65536",
      call: () => createConnection(noop, { port: 65536 }),
      error: RangeError,
    },
    {
      name: "port NaN",
      call: () => createConnection(noop, { port: NaN }),
      error: RangeError,
    },
    {
      name: "port 1.5",
      call: () => createConnection(noop, { port: 1.5 }),
      error: RangeError,
    },
    {
      name: "port Infinity",
      call: () => createConnection(noop, { port: Infinity }),
      error: RangeError,
    },
    {
      name: "hostname 42",
      call: () => createConnection(noop, { hostname: 42 as never, port }),
      error: TypeError,
    },
    {
      name: 'transport "sctp"',
      call: () => createConnection(noop, { transport: "sctp" as never, port }),
      error: TypeError,
    },
    {
      name: "unix without path",
      call: () => createConnection(noop, { transport: "unix" }),
      error: TypeError,
    },
    {
      name: 'unix path ""',
      call: () => createConnection(noop, { transport: "unix", path: "" }),
      error: TypeError,
    },
    {
      name: 'signal "x"',
      call: () => createConnection(noop, { port, signal: "x" as never }),
      error: TypeError,
    },
    {
      name: "tls.handshakeTimeout -1",
      call: () =>
        createConnection(noop, { port, tls: { handshakeTimeout: -1 } }),
      error: RangeError,
    },
    {
      name: "tls.handshakeTimeout NaN",
      call: () =>
        createConnection(noop, { port, tls: { handshakeTimeout: NaN } }),
      error: RangeError,
    },
    {
      name: 'tls.handshakeTimeout "1"',
      call: () =>
        createConnection(noop, {
          port,
          tls: { handshakeTimeout: "1" as never },
        }),
      error: TypeError,
    },
  ]);
  assertEquals(unhandled.seen, []);
});

Deno.test("createServer() rejects bad arguments with a TypeError or RangeError and opens nothing", async (t) => {
  using unhandled = trapUnhandled();
  const dir = Deno.makeTempDirSync();
  try {
    await checkCases(t, [
      {
        name: "protocolFactory null",
        call: () => createServer(null as never, { port: 0 }),
        error: TypeError,
      },
      {
        name: "options null",
        call: () => createServer(noop, null as never),
        error: TypeError,
      },
      {
        name: "port -1",
        call: () => createServer(noop, { port: -1 }),
        error: RangeError,
      },
      {
        name: "port 65536",
        call: () => createServer(noop, { port: 65536 }),
        error: RangeError,
      },
      {
        name: "port NaN",
        call: () => createServer(noop, { port: NaN }),
        error: RangeError,
      },
      {
        name: 'port "0"',
        call: () => createServer(noop, { port: "0" as never }),
        error: TypeError,
      },
      {
        name: "hostname 1",
        call: () => createServer(noop, { hostname: 1 as never }),
        error: TypeError,
      },
      {
        name: 'transport "udp"',
        call: () => createServer(noop, { transport: "udp" as never }),
        error: TypeError,
      },
      {
        name: "unix without path",
        call: () => createServer(noop, { transport: "unix" }),
        error: TypeError,
      },
      {
        name: 'startServing "yes"',
        call: () =>
          createServer(noop, { port: 0, startServing: "yes" as never }),
        error: TypeError,
      },
      {
        name: "signal {}",
        call: () => createServer(noop, { port: 0, signal: {} as never }),
        error: TypeError,
      },
      {
        name: "tls.cert 1",
        call: () =>
          createServer(noop, { port: 0, tls: { cert: 1 as never, key: "k" } }),
        error: TypeError,
      },
      {
        name: "tls.handshakeTimeout 0",
        call: () =>
          createServer(noop, {
            port: 0,
            tls: { cert: "c", key: "k", handshakeTimeout: 0 },
          }),
        error: RangeError,
      },
      {
        name: "unix with tls",
        call: () =>
          createServer(noop, {
            transport: "unix",
            path: `${dir}/s.sock`,
            tls: { cert: "c", key: "k" },
          }),
        error: TypeError,
      },
    ]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  assertEquals(unhandled.seen, []);
});

Deno.test("Server.startServing() and serveForever() on a closed server fail clearly", async (t) => {
  const server = await createServer(noop, { hostname: "127.0.0.1", port: 0 });
  server.close();
  await checkCases(t, [
    {
      name: "startServing() after close()",
      call: () => server.startServing(),
      error: Error,
    },
    {
      name: "serveForever() after close()",
      call: () => server.serveForever(),
      error: Error,
    },
  ]);
  await server.waitClosed();
});

/** A connected pair: our client transport and the server. */
async function connectedPair(): Promise<
  { server: Server; transport: Transport; client: Recording } & AsyncDisposable
> {
  const server = await createServer(() => new Recording(), {
    hostname: "127.0.0.1",
    port: 0,
  });
  const { port } = server.addrs[0] as Deno.NetAddr;
  const [transport, client] = await createConnection(() => new Recording(), {
    hostname: "127.0.0.1",
    port,
  });
  return {
    server,
    transport,
    client,
    async [Symbol.asyncDispose]() {
      transport.abort();
      await within(client.lost.promise, BOUND, "the client to close");
      server.close();
      server.abortClients();
      await within(server.waitClosed(), BOUND, "the server to close");
    },
  };
}

Deno.test("Transport methods reject bad arguments with a TypeError or RangeError and stay usable", async (t) => {
  using unhandled = trapUnhandled();
  await using pair = await connectedPair();
  const { transport } = pair;
  await checkCases(t, [
    {
      name: 'write("text")',
      call: () => transport.write("text" as never),
      error: TypeError,
    },
    {
      name: "write(null)",
      call: () => transport.write(null as never),
      error: TypeError,
    },
    {
      name: "write(ArrayBuffer)",
      call: () => transport.write(new ArrayBuffer(2) as never),
      error: TypeError,
    },
    {
      name: "write([1, 2])",
      call: () => transport.write([1, 2] as never),
      error: TypeError,
    },
    {
      name: "write(DataView)",
      call: () => transport.write(new DataView(new ArrayBuffer(2)) as never),
      error: TypeError,
    },
    {
      name: "writelines(null)",
      call: () => transport.writelines(null as never),
      error: TypeError,
    },
    {
      name: 'writelines("abc")',
      call: () => transport.writelines("abc" as never),
      error: TypeError,
    },
    {
      name: "writelines([bytes, 1])",
      call: () => transport.writelines([bytes, 1 as never]),
      error: TypeError,
    },
    {
      name: "setWriteBufferLimits(5)",
      call: () => transport.setWriteBufferLimits(5 as never),
      error: TypeError,
    },
    {
      name: "setWriteBufferLimits({ high: -1 })",
      call: () => transport.setWriteBufferLimits({ high: -1 }),
      error: RangeError,
    },
    {
      name: "setWriteBufferLimits({ low: -1 })",
      call: () => transport.setWriteBufferLimits({ low: -1 }),
      error: RangeError,
    },
    {
      name: "setWriteBufferLimits({ high: NaN })",
      call: () => transport.setWriteBufferLimits({ high: NaN }),
      error: RangeError,
    },
    {
      name: 'setWriteBufferLimits({ high: "1" })',
      call: () => transport.setWriteBufferLimits({ high: "1" as never }),
      error: TypeError,
    },
    {
      name: "setWriteBufferLimits({ high: 1, low: 2 })",
      call: () => transport.setWriteBufferLimits({ high: 1, low: 2 }),
      error: RangeError,
    },
    {
      name: "setProtocol(null)",
      call: () => transport.setProtocol(null as never),
      error: TypeError,
    },
    {
      name: 'setProtocol("p")',
      call: () => transport.setProtocol("p" as never),
      error: TypeError,
    },
  ]);
  await t.step(
    "the limits and the protocol are unchanged by the failed calls",
    () => {
      assertEquals(transport.getWriteBufferLimits(), {
        high: 65536,
        low: 16384,
      });
      assert(transport.getProtocol() === pair.client);
      assertEquals(transport.getWriteBufferSize(), 0);
      assertEquals(transport.isClosing(), false);
    },
  );
  assertEquals(unhandled.seen, []);
});

Deno.test("Transport.write() after writeEof() throws; after the connection is lost it drops data without throwing", async (t) => {
  using unhandled = trapUnhandled();
  await using pair = await connectedPair();
  const { transport, client } = pair;
  transport.writeEof();
  await checkCases(t, [
    {
      name: "write() after writeEof()",
      call: () => transport.write(bytes),
      error: Error,
    },
    {
      name: "writelines() after writeEof()",
      call: () => transport.writelines([bytes]),
      error: Error,
    },
  ]);
  await t.step("writeEof() twice is a no-op", () => transport.writeEof());
  transport.abort();
  await within(client.lost.promise, BOUND, "connectionLost");
  await t.step("calls on a lost transport do not throw", () => {
    transport.close();
    transport.abort();
    transport.pauseReading();
    transport.resumeReading();
    assertEquals(transport.isReading(), false);
    assertEquals(transport.getWriteBufferSize(), 0);
  });
  assertEquals(unhandled.seen, []);
});

Deno.test("Transport.write() on a closed transport drops the data without throwing (asyncio)", async () => {
  await using pair = await connectedPair();
  const { transport, client } = pair;
  transport.close();
  await within(client.lost.promise, BOUND, "connectionLost");
  const warn = console.warn;
  const warnings: string[] = [];
  console.warn = (...args: unknown[]) => warnings.push(args.join(" "));
  try {
    for (let i = 0; i < 10; i++) transport.write(bytes);
    transport.writelines([bytes]);
  } finally {
    console.warn = warn;
  }
  assertEquals(transport.getWriteBufferSize(), 0);
  assertEquals(warnings.length, 1, "one warning after repeated writes");
  assertEquals(client.lostCalls, 1);
});

Deno.test("createDatagramEndpoint() and DatagramTransport.sendto() reject bad arguments", async (t) => {
  using unhandled = trapUnhandled();
  await checkCases(t, [
    {
      name: "protocolFactory null",
      call: () => createDatagramEndpoint(null as never, {}),
      error: TypeError,
    },
    {
      name: "options 5",
      call: () => createDatagramEndpoint(noop, 5 as never),
      error: TypeError,
    },
    {
      name: "localAddr port -1",
      call: () =>
        createDatagramEndpoint(noop, {
          localAddr: { hostname: "127.0.0.1", port: -1 },
        }),
      error: RangeError,
    },
    {
      name: "localAddr port NaN",
      call: () =>
        createDatagramEndpoint(noop, {
          localAddr: { hostname: "127.0.0.1", port: NaN },
        }),
      error: RangeError,
    },
    {
      name: 'localAddr port "1"',
      call: () =>
        createDatagramEndpoint(noop, {
          localAddr: { hostname: "127.0.0.1", port: "1" as never },
        }),
      error: TypeError,
    },
    {
      name: "localAddr hostname 1",
      call: () =>
        createDatagramEndpoint(noop, {
          localAddr: { hostname: 1 as never, port: 0 },
        }),
      error: TypeError,
    },
    {
      name: "remoteAddr port 70000",
      call: () =>
        createDatagramEndpoint(noop, {
          remoteAddr: { hostname: "127.0.0.1", port: 70000 },
        }),
      error: RangeError,
    },
    {
      name: 'transport "tcp"',
      call: () => createDatagramEndpoint(noop, { transport: "tcp" as never }),
      error: TypeError,
    },
    {
      name: "signal 1",
      call: () => createDatagramEndpoint(noop, { signal: 1 as never }),
      error: TypeError,
    },
  ]);
  let endpoint: DatagramTransport | undefined;
  try {
    [endpoint] = await createDatagramEndpoint(noop, {
      localAddr: { hostname: "127.0.0.1", port: 0 },
    });
    const to: Deno.NetAddr = {
      transport: "udp",
      hostname: "127.0.0.1",
      port: 9,
    };
    const ep = endpoint;
    await checkCases(t, [
      {
        name: 'sendto("x", addr)',
        call: () => ep.sendto("x" as never, to),
        error: TypeError,
      },
      {
        name: "sendto(bytes, 42)",
        call: () => ep.sendto(bytes, 42 as never),
        error: TypeError,
      },
      {
        name: "sendto(bytes, port -1)",
        call: () => ep.sendto(bytes, { ...to, port: -1 }),
        error: RangeError,
      },
      {
        name: "sendto(bytes, port 65536)",
        call: () => ep.sendto(bytes, { ...to, port: 65536 }),
        error: RangeError,
      },
      {
        name: "setProtocol(null)",
        call: () => ep.setProtocol(null as never),
        error: TypeError,
      },
    ]);
    assertEquals(endpoint.getWriteBufferSize(), 0);
  } finally {
    endpoint?.abort();
    await sleep(10);
  }
  assertEquals(unhandled.seen, []);
});

Deno.test("subprocessExec() and subprocessShell() reject bad arguments; a missing program is NotFound", async (t) => {
  using unhandled = trapUnhandled();
  await checkCases(t, [
    {
      name: "protocolFactory null",
      call: () => subprocessExec(null as never, "true"),
      error: TypeError,
    },
    {
      name: "command 42",
      call: () => subprocessExec(noop, 42 as never),
      error: TypeError,
    },
    {
      name: 'command ""',
      call: () => subprocessExec(noop, ""),
      error: TypeError,
    },
    {
      name: 'args "x"',
      call: () => subprocessExec(noop, "true", { args: "x" as never }),
      error: TypeError,
    },
    {
      name: "args [1]",
      call: () => subprocessExec(noop, "true", { args: [1 as never] }),
      error: TypeError,
    },
    {
      name: 'stdin "pipe"',
      call: () => subprocessExec(noop, "true", { stdin: "pipe" as never }),
      error: TypeError,
    },
    {
      name: "env { A: 1 }",
      call: () => subprocessExec(noop, "true", { env: { A: 1 as never } }),
      error: TypeError,
    },
    {
      name: "options 5",
      call: () => subprocessExec(noop, "true", 5 as never),
      error: TypeError,
    },
    {
      name: "shell command null",
      call: () => subprocessShell(noop, null as never),
      error: TypeError,
    },
    {
      name: "shell with args",
      call: () => subprocessShell(noop, "true", { args: ["x"] }),
      error: TypeError,
    },
  ]);
  await t.step(
    "a program that does not exist rejects with NotFound",
    async () => {
      const error = await thrownBy(() =>
        subprocessExec(noop, "/nonexistent/denio-no-such-program")
      );
      assertInstanceOf(error, Deno.errors.NotFound);
    },
  );
  const done = Promise.withResolvers<Error | null>();
  const [child] = await subprocessExec(
    () => ({ connectionLost: done.resolve }),
    "true",
    { stdin: "null", stdout: "null", stderr: "null" },
  ) as [SubprocessTransport, unknown];
  await checkCases(t, [
    {
      name: "getPipeTransport(3)",
      call: () => child.getPipeTransport(3 as never),
      error: RangeError,
    },
    {
      name: "getPipeTransport(-1)",
      call: () => child.getPipeTransport(-1 as never),
      error: RangeError,
    },
    {
      name: "sendSignal(9)",
      call: () => child.sendSignal(9 as never),
      error: TypeError,
    },
    {
      name: "setProtocol(null)",
      call: () => child.setProtocol(null as never),
      error: TypeError,
    },
  ]);
  await within(done.promise, BOUND, "the child to exit");
  await checkCases(t, [
    {
      name: "kill() after exit",
      call: () => child.kill(),
      error: Deno.errors.NotFound,
    },
    {
      name: "terminate() after exit",
      call: () => child.terminate(),
      error: Deno.errors.NotFound,
    },
  ]);
  assertEquals(unhandled.seen, []);
});

Deno.test("connectReadPipe() and connectWritePipe() reject what is not a pipe", async (t) => {
  const locked = new ReadableStream<Uint8Array>();
  const reader = locked.getReader();
  try {
    await checkCases(t, [
      {
        name: "read: factory null",
        call: () => connectReadPipe(null as never, new ReadableStream()),
        error: TypeError,
      },
      {
        name: "read: pipe null",
        call: () => connectReadPipe(noop, null as never),
        error: TypeError,
      },
      {
        name: "read: pipe {}",
        call: () => connectReadPipe(noop, {} as never),
        error: TypeError,
      },
      {
        name: "read: a WritableStream",
        call: () => connectReadPipe(noop, new WritableStream() as never),
        error: TypeError,
      },
      {
        name: "read: a locked stream",
        call: () => connectReadPipe(noop, locked),
        error: TypeError,
      },
      {
        name: "write: pipe 42",
        call: () => connectWritePipe(noop, 42 as never),
        error: TypeError,
      },
      {
        name: "write: a ReadableStream",
        call: () => connectWritePipe(noop, new ReadableStream() as never),
        error: TypeError,
      },
    ]);
  } finally {
    reader.releaseLock();
    await locked.cancel();
  }
});

Deno.test("startTls() rejects bad arguments without touching the transport", async (t) => {
  await using pair = await connectedPair();
  const { transport, client } = pair;
  await checkCases(t, [
    {
      name: "transport {}",
      call: () => startTls({} as never, client, {}),
      error: TypeError,
    },
    {
      name: "protocol null",
      call: () => startTls(transport, null as never, {}),
      error: TypeError,
    },
    {
      name: "options null",
      call: () => startTls(transport, client, null as never),
      error: TypeError,
    },
    {
      name: "handshakeTimeout -1",
      call: () => startTls(transport, client, { handshakeTimeout: -1 }),
      error: RangeError,
    },
    {
      name: "caCerts 'x'",
      call: () => startTls(transport, client, { caCerts: "x" as never }),
      error: TypeError,
    },
    {
      name: "serverSide without cert",
      call: () => startTls(transport, client, { serverSide: true }),
      error: TypeError,
    },
  ]);
  await t.step("the plain transport is still open", () => {
    assertEquals(transport.isClosing(), false);
  });
});

Deno.test("StreamReader, StreamWriter, openConnection() and startServer() reject bad arguments", async (t) => {
  using unhandled = trapUnhandled();
  const reader = new StreamReader();
  await checkCases(t, [
    {
      name: "StreamReader({ limit: 0 })",
      call: () => new StreamReader({ limit: 0 }),
      error: RangeError,
    },
    {
      name: "StreamReader({ limit: -1 })",
      call: () => new StreamReader({ limit: -1 }),
      error: RangeError,
    },
    {
      name: "StreamReader({ limit: NaN })",
      call: () => new StreamReader({ limit: NaN }),
      error: RangeError,
    },
    {
      name: 'StreamReader({ limit: "1" })',
      call: () => new StreamReader({ limit: "1" as never }),
      error: TypeError,
    },
    {
      name: 'feedData("x")',
      call: () => reader.feedData("x" as never),
      error: TypeError,
    },
    {
      name: 'read("x")',
      call: () => reader.read("x" as never),
      error: TypeError,
    },
    { name: "read(1.5)", call: () => reader.read(1.5), error: RangeError },
    {
      name: "readexactly(-1)",
      call: () => reader.readexactly(-1),
      error: RangeError,
    },
    {
      name: "readexactly(NaN)",
      call: () => reader.readexactly(NaN),
      error: RangeError,
    },
    {
      name: "readuntil(empty separator)",
      call: () => reader.readuntil(new Uint8Array(0)),
      error: RangeError,
    },
    {
      name: "readuntil(42)",
      call: () => reader.readuntil(42 as never),
      error: TypeError,
    },
    {
      name: "StreamReaderProtocol(null)",
      call: () => new StreamReaderProtocol(null as never),
      error: TypeError,
    },
    {
      name: "StreamWriter(null, protocol)",
      call: () =>
        new StreamWriter(null as never, new StreamReaderProtocol(reader)),
      error: TypeError,
    },
    {
      name: "openConnection(null)",
      call: () => openConnection(null as never),
      error: TypeError,
    },
    {
      name: "openConnection({ port: 0 })",
      call: () => openConnection({ port: 0 }),
      error: RangeError,
    },
    {
      name: "openConnection({ port: 1, limit: -1 })",
      call: () => openConnection({ port: 1, limit: -1 }),
      error: RangeError,
    },
    {
      name: "startServer(null, {})",
      call: () => startServer(null as never, {}),
      error: TypeError,
    },
    {
      name: "startServer(f, { port: -1 })",
      call: () => startServer(() => {}, { port: -1 }),
      error: RangeError,
    },
    {
      name: "startServer(f, { limit: 0 })",
      call: () => startServer(() => {}, { port: 0, limit: 0 }),
      error: RangeError,
    },
  ]);
  reader.feedEof();
  assertEquals(unhandled.seen, []);
});

Deno.test("StreamWriter methods reject bad arguments", async (t) => {
  const server = await startServer((_reader, writer) => writer.close(), {
    hostname: "127.0.0.1",
    port: 0,
  });
  try {
    const { port } = server.addrs[0] as Deno.NetAddr;
    const [reader, writer] = await openConnection({
      hostname: "127.0.0.1",
      port,
    });
    await checkCases(t, [
      {
        name: 'write("x")',
        call: () => writer.write("x" as never),
        error: TypeError,
      },
      {
        name: "writelines([1])",
        call: () => writer.writelines([1 as never]),
        error: TypeError,
      },
      {
        name: "writelines(5)",
        call: () => writer.writelines(5 as never),
        error: TypeError,
      },
    ]);
    assertEquals((await reader.read()).length, 0);
    writer.close();
    await within(writer.waitClosed(), BOUND, "the writer to close");
  } finally {
    server.close();
    server.abortClients();
    await within(server.waitClosed(), BOUND, "the server to close");
  }
});

Deno.test("The framing protocols reject bad options and bad frames", async (t) => {
  const lines = new LineProtocol();
  const frames = new LengthPrefixedProtocol({}, { headerSize: 1 });
  await checkCases(t, [
    {
      name: "LineProtocol(5)",
      call: () => new LineProtocol(5 as never),
      error: TypeError,
    },
    {
      name: "LineProtocol maxLineLength -1",
      call: () => new LineProtocol({}, { maxLineLength: -1 }),
      error: RangeError,
    },
    {
      name: "LineProtocol maxLineLength NaN",
      call: () => new LineProtocol({}, { maxLineLength: NaN }),
      error: RangeError,
    },
    {
      name: 'LineProtocol delimiter ""',
      call: () => new LineProtocol({}, { delimiter: "" }),
      error: RangeError,
    },
    {
      name: "LineProtocol delimiter 5",
      call: () => new LineProtocol({}, { delimiter: 5 as never }),
      error: TypeError,
    },
    {
      name: "LineProtocol writeTransport {}",
      call: () => new LineProtocol({}, { writeTransport: {} as never }),
      error: TypeError,
    },
    {
      name: "sendLine(5)",
      call: () => lines.sendLine(5 as never),
      error: TypeError,
    },
    {
      name: "expectBytes(-1)",
      call: () => lines.expectBytes(-1),
      error: RangeError,
    },
    {
      name: "expectBytes(NaN)",
      call: () => lines.expectBytes(NaN),
      error: RangeError,
    },
    {
      name: "feed('x')",
      call: () => lines.feed("x" as never),
      error: TypeError,
    },
    {
      name: "LengthPrefixedProtocol headerSize 3",
      call: () => new LengthPrefixedProtocol({}, { headerSize: 3 as never }),
      error: RangeError,
    },
    {
      name: "LengthPrefixedProtocol maxFrameSize -1",
      call: () => new LengthPrefixedProtocol({}, { maxFrameSize: -1 }),
      error: RangeError,
    },
    {
      name: "sendFrame(5)",
      call: () => frames.sendFrame(5 as never),
      error: TypeError,
    },
    {
      name: "sendFrame(300 bytes) with a 1-byte header",
      call: () => frames.sendFrame(new Uint8Array(300)),
      error: RangeError,
    },
    {
      name: "ContentLengthProtocol maxBodySize -1",
      call: () => new ContentLengthProtocol({}, { maxBodySize: -1 }),
      error: RangeError,
    },
    {
      name: "ContentLengthProtocol maxHeaderSize NaN",
      call: () => new ContentLengthProtocol({}, { maxHeaderSize: NaN }),
      error: RangeError,
    },
  ]);
});

Deno.test("toWebStreams() and WebStreamProtocol reject bad arguments", async (t) => {
  await using pair = await connectedPair();
  await checkCases(t, [
    {
      name: "toWebStreams(null)",
      call: () => toWebStreams(null as never),
      error: TypeError,
    },
    {
      name: "toWebStreams({})",
      call: () => toWebStreams({} as never),
      error: TypeError,
    },
    {
      name: "readableHighWaterMark -1",
      call: () => toWebStreams(pair.transport, { readableHighWaterMark: -1 }),
      error: RangeError,
    },
    {
      name: "WebStreamProtocol readableHighWaterMark NaN",
      call: () => new WebStreamProtocol({ readableHighWaterMark: NaN }),
      error: RangeError,
    },
    {
      name: 'WebStreamProtocol readableHighWaterMark "1"',
      call: () =>
        new WebStreamProtocol({ readableHighWaterMark: "1" as never }),
      error: TypeError,
    },
  ]);
  await t.step("the transport was left alone", () => {
    assert(pair.transport.getProtocol() === pair.client);
    assertEquals(pair.transport.isClosing(), false);
  });
});

// ------------------------------------------------------------- permissions

const PERMISSION_SCRIPT = `
import * as denio from ${
  JSON.stringify(new URL("../mod.ts", import.meta.url).href)
};
const results = {};
async function attempt(name, call) {
  try {
    const value = await call();
    results[name] = "succeeded";
    try { value?.[0]?.abort?.(); value?.[0]?.close?.(); value?.close?.(); } catch {}
  } catch (error) {
    results[name] = error?.constructor?.name ?? String(error);
  }
}
await attempt("createServer", () => denio.createServer(() => ({}), { hostname: "127.0.0.1", port: 0 }));
await attempt("createConnection", () => denio.createConnection(() => ({}), { hostname: "127.0.0.1", port: 9 }));
await attempt("createServer unix", () => denio.createServer(() => ({}), { transport: "unix", path: "/tmp/denio-no-permission.sock" }));
await attempt("createConnection unix", () => denio.createConnection(() => ({}), { transport: "unix", path: "/tmp/denio-no-permission.sock" }));
await attempt("createDatagramEndpoint", () => denio.createDatagramEndpoint(() => ({}), { localAddr: { hostname: "127.0.0.1", port: 0 } }));
await attempt("openConnection", () => denio.openConnection({ hostname: "127.0.0.1", port: 9 }));
await attempt("startServer", () => denio.startServer(() => {}, { hostname: "127.0.0.1", port: 0 }));
await attempt("subprocessExec", () => denio.subprocessExec(() => ({}), "true"));
await attempt("subprocessShell", () => denio.subprocessShell(() => ({}), "true"));
console.log(JSON.stringify(results));
`;

for (const flags of [[], ["--unstable-net"]]) {
  Deno.test(`Without --allow-net and --allow-run every entry point fails with Deno's permission error, and nothing hangs (${flags.join(" ") || "no unstable flags"})`, async () => {
    const dir = Deno.makeTempDirSync();
    const script = `${dir}/no_permissions.mjs`;
    Deno.writeTextFileSync(script, PERMISSION_SCRIPT);
    try {
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--no-prompt", "--no-config", ...flags, script],
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(30_000),
      }).output();
      const stderr = new TextDecoder().decode(output.stderr);
      assertEquals(output.code, 0, `the child failed: ${stderr}`);
      const results = JSON.parse(new TextDecoder().decode(output.stdout));
      for (const [name, result] of Object.entries(results)) {
        assert(
          result === "NotCapable" || result === "PermissionDenied",
          `${name}: ${result}`,
        );
      }
      assertEquals(Object.keys(results).length, 9);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  });
}

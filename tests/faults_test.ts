// Copyright 2026 the denio authors. MIT license.
// Peers that misbehave: resets in the middle of a write, half-close then
// reset, vanishing while reads are paused, connect-and-close at once,
// stalling, and a server closed with clients attached. After each fault the
// server keeps serving (a bystander connection and a fresh connection both
// still echo), the faulty transport ends with exactly one connectionLost
// naming the cause, and nothing becomes an unhandled rejection.

import { assert, assertEquals, assertMatch, assertRejects } from "@std/assert";
import {
  type ConnectOptions,
  createConnection,
  createServer,
  subprocessExec,
  type SubprocessProtocol,
  type Transport,
} from "../mod.ts";
import {
  assertFlowOnly,
  BIG,
  BOUND,
  concat,
  echoOnce,
  errorName,
  type FaultBed,
  faultBed,
  firehose,
  isPeerGoneError,
  newEchoStats,
  readAtLeast,
  recordContexts,
  Recording,
  sleep,
  TrackedEcho,
  trapUnhandled,
  waitFor,
  within,
} from "./_reliability_helpers.ts";
import { peerMissing } from "./_peers.ts";

/** Asserts a faulty transport ended with one connectionLost(peer-gone error) and no context. */
async function assertLostToPeer(bed: FaultBed, recording: Recording) {
  const error = await within(recording.lost.promise, BOUND, "connectionLost");
  assert(
    isPeerGoneError(error),
    `connectionLost got ${
      errorName(error)
    }, expected ConnectionReset or BrokenPipe`,
  );
  assertEquals(recording.lostCalls, 1);
  assertEquals(recording.events.at(-1), "connectionLost");
  assertEquals(recording.events[0], "connectionMade");
  // asyncio reports a vanished peer to connectionLost only (debug log).
  assertEquals(bed.contexts, []);
}

for (const kind of ["tcp", "unix", "tls"] as const) {
  Deno.test({
    name:
      `StreamTransport (${kind}) ends with connectionLost(ConnectionReset or BrokenPipe) when the peer resets in the middle of a write, and the server keeps serving`,
    fn: async () => {
      await using bed = await faultBed(kind);
      const recording = new Recording(firehose(BIG));
      bed.nextProtocol(recording);
      const conn = await bed.connectRaw();
      // The peer reads a little of the write, then closes with unread data:
      // the kernel answers the rest with a reset.
      assert(await readAtLeast(conn, 1) > 0);
      conn.close();
      await assertLostToPeer(bed, recording);
      assert(recording.events.includes("pauseWriting"));
      assertEquals(recording.transport!.getWriteBufferSize(), 0);
      await bed.assertStillServing();
    },
  });
}

Deno.test(
  "StreamTransport ends with connectionLost(peer-gone error) when the peer half-closes and then resets during our reply",
  async () => {
    await using bed = await faultBed();
    const hose = firehose(BIG);
    const recording = new Recording({
      pauseWriting: hose.pauseWriting!,
      resumeWriting: hose.resumeWriting!,
      eofReceived(this: Recording) {
        // Keep the write side open and answer with a lot of data.
        hose.start(this.transport!);
        return true;
      },
    });
    bed.nextProtocol(recording);
    const conn = await bed.connectRaw();
    await conn.write(new TextEncoder().encode("request"));
    await conn.closeWrite();
    assert(await readAtLeast(conn, 128 * 1024) > 0);
    conn.close();
    await assertLostToPeer(bed, recording);
    assertEquals(recording.events.slice(0, 4), [
      "connectionMade",
      "dataReceived",
      "eofReceived",
      "pauseWriting",
    ]);
    assertEquals(recording.bytes, "request".length);
    await bed.assertStillServing();
  },
);

Deno.test(
  "StreamTransport paused with pauseReading() still ends with connectionLost(peer-gone error) when the peer vanishes during a write",
  async () => {
    await using bed = await faultBed();
    const hose = firehose(BIG);
    const recording = new Recording({
      ...hose,
      connectionMade(transport: Transport) {
        transport.pauseReading();
        hose.start(transport);
      },
    });
    bed.nextProtocol(recording);
    const conn = await bed.connectRaw();
    await conn.write(new Uint8Array(1000));
    assert(await readAtLeast(conn, 1) > 0);
    conn.close();
    await assertLostToPeer(bed, recording);
    // Reading stayed paused: nothing was delivered, not even EOF.
    assertFlowOnly(recording.events);
    await bed.assertStillServing();
  },
);

Deno.test(
  "StreamTransport paused with pauseReading() holds the data and EOF of a vanished peer until resumeReading(), then closes cleanly",
  async () => {
    await using bed = await faultBed();
    const recording = new Recording({
      connectionMade(transport: Transport) {
        transport.write(new Uint8Array(100));
        transport.pauseReading();
      },
    });
    bed.nextProtocol(recording);
    const conn = await bed.connectRaw();
    await conn.write(new Uint8Array(10));
    // The peer closes without reading our 100 bytes (a reset on Linux).
    await sleep(20);
    conn.close();
    await bed.assertStillServing();
    assertEquals(recording.events, ["connectionMade"]);
    recording.transport!.resumeReading();
    const error = await within(recording.lost.promise, BOUND, "connectionLost");
    // Linux delivers the bytes that arrived before the reset, then EOF.
    assert(
      error === null || isPeerGoneError(error),
      `connectionLost got ${errorName(error)}`,
    );
    assertEquals(recording.lostCalls, 1);
    assertEquals(recording.events[0], "connectionMade");
    assertEquals(recording.events.at(-1), "connectionLost");
    assert(recording.bytes <= 10);
    assertEquals(bed.contexts, []);
  },
);

Deno.test(
  "StreamTransport.close() while reading is paused ends with connectionLost(null) after the peer vanished",
  async () => {
    await using bed = await faultBed();
    const recording = new Recording({
      connectionMade(transport: Transport) {
        transport.pauseReading();
      },
    });
    bed.nextProtocol(recording);
    const conn = await bed.connectRaw();
    await conn.write(new Uint8Array(10));
    conn.close();
    await waitFor(() => recording.transport !== undefined, "connectionMade");
    await sleep(20);
    recording.transport!.close();
    assertEquals(
      await within(recording.lost.promise, BOUND, "connectionLost"),
      null,
    );
    assertEquals(recording.events, ["connectionMade", "connectionLost"]);
    assertEquals(bed.contexts, []);
    await bed.assertStillServing();
  },
);

const CHURN = 60;

Deno.test(
  `createServer() gives connectionMade and one connectionLost(null) to ${CHURN} peers each of which connects and closes at once`,
  async () => {
    await using bed = await faultBed();
    const made = bed.stats.made;
    const lost = bed.stats.lost;
    for (let i = 0; i < CHURN; i++) {
      const conn = await bed.connectRaw();
      conn.close();
    }
    await waitFor(
      () => bed.stats.lost === lost + CHURN && bed.stats.made === made + CHURN,
      "every churned connection to be lost",
      BOUND,
    );
    assertEquals(bed.stats.errors.slice(-CHURN), Array(CHURN).fill(null));
    assertEquals(bed.contexts, []);
    await bed.assertStillServing();
  },
);

for (const how of ["close", "abort"] as const) {
  Deno.test(
    `createConnection() then Transport.${how}() at once, ${CHURN} times: each side gets exactly one connectionLost(null)`,
    async () => {
      await using bed = await faultBed();
      const base = bed.stats.lost;
      const clients: Recording[] = [];
      for (let i = 0; i < CHURN; i++) {
        const [transport, client] = await createConnection(
          () => new Recording(),
          bed.target,
        );
        transport.write(new Uint8Array(100));
        transport[how]();
        clients.push(client);
      }
      const errors = await within(
        Promise.all(clients.map((c) => c.lost.promise)),
        BOUND,
        "every client's connectionLost",
      );
      assertEquals(errors, Array(CHURN).fill(null));
      await waitFor(
        () => bed.stats.lost === base + CHURN,
        "every server transport to be lost",
        BOUND,
      );
      for (const client of clients) assertEquals(client.lostCalls, 1);
      // A close() flushes first; abort() drops the 100 bytes.
      const errorsOnServer = bed.stats.errors.slice(-CHURN);
      assert(
        errorsOnServer.every((e) => e === null || isPeerGoneError(e)),
        `server side: ${errorsOnServer.map(errorName).join(", ")}`,
      );
      assertEquals(bed.contexts, []);
      await bed.assertStillServing();
    },
  );
}

Deno.test(
  "createConnection() with a signal aborted at once rejects or resolves, and leaks nothing",
  async () => {
    await using bed = await faultBed();
    let rejected = 0;
    for (let i = 0; i < 20; i++) {
      const controller = new AbortController();
      const attempt = createConnection(() => new Recording(), {
        ...bed.target,
        signal: controller.signal,
      });
      controller.abort();
      try {
        const [transport] = await attempt;
        transport.abort();
      } catch (error) {
        rejected++;
        assert(
          error instanceof DOMException || error instanceof Error,
          `rejected with ${String(error)}`,
        );
      }
    }
    console.log(`${rejected} of 20 aborted connects rejected`);
    assertEquals(bed.contexts, []);
    await bed.assertStillServing();
  },
);

Deno.test(
  "StreamTransport stalled by a peer that never reads: flow control pauses the writer, then abort() ends it with connectionLost(null)",
  async () => {
    await using bed = await faultBed();
    let maxBuffer = 0;
    let stallTimer: ReturnType<typeof setTimeout> | undefined;
    // Write without end; once paused for 100 ms straight, give up on the peer.
    const hose = firehose(Infinity, (transport) => {
      maxBuffer = Math.max(maxBuffer, transport.getWriteBufferSize());
      stallTimer = setTimeout(() => transport.abort(), 100);
    });
    const recording = new Recording({
      ...hose,
      resumeWriting() {
        clearTimeout(stallTimer);
        hose.resumeWriting!();
      },
    });
    bed.nextProtocol(recording);
    const conn = await bed.connectRaw();
    try {
      assertEquals(
        await within(recording.lost.promise, BOUND, "connectionLost"),
        null,
      );
      assertFlowOnly(recording.events);
      assertEquals(recording.events.at(-2), "pauseWriting");
      assert(maxBuffer <= 64 * 1024 + 64 * 1024, `buffer reached ${maxBuffer}`);
      assertEquals(recording.transport!.getWriteBufferSize(), 0);
      // The stalled peer sees some data, then the end of the stream.
      const got = await readAtLeast(conn, Infinity).catch((error) => {
        assert(isPeerGoneError(error), errorName(error));
        return -1;
      });
      assert(got !== 0);
    } finally {
      conn.close();
    }
    assertEquals(bed.contexts, []);
    await bed.assertStillServing();
  },
);

/** An echo client that records what comes back. */
async function echoClient(target: ConnectOptions): Promise<Recording> {
  const [, client] = await createConnection(
    () => new Recording({}, true),
    target,
  );
  return client;
}

async function assertEchoes(client: Recording, message: string) {
  const before = client.bytes;
  client.transport!.write(new TextEncoder().encode(message));
  await waitFor(
    () => client.bytes >= before + message.length,
    "an echo",
    BOUND,
  );
  const text = new TextDecoder().decode(concat(client.chunks));
  assert(text.endsWith(message), `got ${JSON.stringify(text)}`);
}

Deno.test(
  "Server.close() with clients attached keeps them echoing; closeClients() then ends both sides with connectionLost(null)",
  async () => {
    using unhandled = trapUnhandled();
    using recorder = recordContexts();
    const stats = newEchoStats();
    const server = await createServer(() => new TrackedEcho(stats), {
      hostname: "127.0.0.1",
      port: 0,
    });
    const { port } = server.addrs[0] as Deno.NetAddr;
    const target = { hostname: "127.0.0.1", port };
    const clients = await Promise.all([1, 2, 3].map(() => echoClient(target)));
    server.close();
    assertEquals(server.isServing(), false);
    assertEquals(server.addrs, []);
    for (const [i, client] of clients.entries()) {
      await assertEchoes(client, `after close ${i}`);
    }
    await assertRejects(
      () => Deno.connect(target),
      Deno.errors.ConnectionRefused,
    );
    let waited = false;
    const closed = server.waitClosed().then(() => waited = true);
    await sleep(10);
    assertEquals(waited, false, "waitClosed() resolved with clients attached");
    server.closeClients();
    await within(closed, BOUND, "waitClosed()");
    const errors = await within(
      Promise.all(clients.map((c) => c.lost.promise)),
      BOUND,
      "the clients' connectionLost",
    );
    assertEquals(errors, [null, null, null]);
    for (const client of clients) {
      assertEquals(client.events, [
        "connectionMade",
        "dataReceived",
        "eofReceived",
        "connectionLost",
      ]);
    }
    assertEquals(stats.lost, 3);
    assertEquals(stats.errors, [null, null, null]);
    assertEquals(recorder.contexts, []);
    assertEquals(unhandled.seen, []);
  },
);

Deno.test(
  "Server.abortClients() during a client's upload ends the client with connectionLost(peer-gone error) and the server with null",
  async () => {
    using unhandled = trapUnhandled();
    using recorder = recordContexts();
    const serverSide: Recording[] = [];
    const server = await createServer(() => {
      const r = new Recording({
        connectionMade(transport: Transport) {
          // Never read: the upload stays in the kernel buffers.
          transport.pauseReading();
        },
      });
      serverSide.push(r);
      return r;
    }, { hostname: "127.0.0.1", port: 0 });
    const { port } = server.addrs[0] as Deno.NetAddr;
    const client = new Recording(firehose(BIG));
    await createConnection(() => client, { hostname: "127.0.0.1", port });
    await waitFor(
      () => client.events.includes("pauseWriting"),
      "the upload to fill the buffers",
      BOUND,
    );
    server.close();
    server.abortClients();
    await within(server.waitClosed(), BOUND, "waitClosed()");
    const error = await within(client.lost.promise, BOUND, "connectionLost");
    assert(isPeerGoneError(error), `client got ${errorName(error)}`);
    assertEquals(client.lostCalls, 1);
    assertEquals(serverSide.length, 1);
    assertEquals(await serverSide[0]!.lost.promise, null);
    assertEquals(serverSide[0]!.events, ["connectionMade", "connectionLost"]);
    assertEquals(recorder.contexts, []);
    assertEquals(unhandled.seen, []);
  },
);

// ---------------------------------------------------------------- subprocess

/** A subprocess protocol that logs its callbacks (data collapsed per fd). */
function subprocessRecorder() {
  const events: string[] = [];
  const lost = Promise.withResolvers<Error | null>();
  let lostCalls = 0;
  let paused = false;
  const stdoutBytes = { n: 0 };
  const protocol: SubprocessProtocol = {
    connectionMade() {
      events.push("connectionMade");
    },
    pipeDataReceived(fd, data) {
      if (fd === 1) stdoutBytes.n += data.length;
      const name = `pipeDataReceived(${fd})`;
      if (!events.includes(name)) events.push(name);
    },
    pipeConnectionLost(fd, error) {
      events.push(
        `pipeConnectionLost(${fd}, ${
          error === null ? "null" : error.constructor.name
        })`,
      );
    },
    processExited() {
      events.push("processExited");
    },
    pauseWriting() {
      paused = true;
      events.push("pauseWriting");
    },
    resumeWriting() {
      events.push("resumeWriting");
    },
    connectionLost(error) {
      lostCalls++;
      events.push("connectionLost");
      lost.resolve(error);
    },
  };
  return {
    protocol,
    events,
    lost: lost.promise,
    stdoutBytes,
    lostCalls: () => lostCalls,
    paused: () => paused,
  };
}

/** A child that floods stdout and stderr and never reads stdin. */
const FLOODER = [
  "eval",
  `const block = new Uint8Array(65536).fill(120);
   const out = Deno.stdout.writable.getWriter();
   const err = Deno.stderr.writable.getWriter();
   for (;;) { await Promise.all([out.write(block), err.write(block.subarray(0, 1024))]); }`,
];

for (const ending of ["kill", "close"] as const) {
  Deno.test(
    `SubprocessTransport.${ending}() of a child whose stdin and stdout pipes are full ends with every pipe lost once and connectionLost(null)`,
    async () => {
      using unhandled = trapUnhandled();
      using recorder = recordContexts();
      const r = subprocessRecorder();
      const [transport] = await subprocessExec(
        () => r.protocol,
        Deno.execPath(),
        { args: FLOODER },
      );
      const stdin = transport.getPipeTransport(0) as Transport;
      const stdout = transport.getPipeTransport(1) as Transport;
      // Fill our side: stop reading its stdout, write to its stdin until
      // flow control says stop.
      stdout.pauseReading();
      const block = new Uint8Array(64 * 1024);
      for (let i = 0; i < 64 && !r.paused(); i++) stdin.write(block);
      assert(r.paused(), "stdin never filled");
      await sleep(100);
      const before = r.stdoutBytes.n;
      await sleep(50);
      assertEquals(r.stdoutBytes.n, before, "stdout is paused");
      if (ending === "kill") {
        transport.kill();
        // The paused stdout holds its EOF (as asyncio): resume to drain it.
        await waitFor(() => transport.getReturncode() !== null, "the exit");
        stdout.resumeReading();
      } else {
        transport.close();
      }
      assertEquals(
        await within(r.lost, BOUND, "connectionLost"),
        null,
        r.events.join(" "),
      );
      assertEquals(r.lostCalls(), 1);
      // What stdin still buffered could not be written: asyncio's
      // BrokenPipeError, reported to pipeConnectionLost only.
      assert(
        r.events.includes("pipeConnectionLost(0, BrokenPipe)"),
        r.events.join(" "),
      );
      if (ending === "kill") {
        assertEquals(transport.getReturncode(), -9);
      } else {
        // close() closes the pipes before it kills: the child may die of
        // its broken stdout first.
        assert(transport.getReturncode() !== null);
      }
      for (const fd of [0, 1, 2]) {
        assertEquals(
          r.events.filter((e) => e.startsWith(`pipeConnectionLost(${fd},`))
            .length,
          1,
          `pipe ${fd}: ${r.events.join(" ")}`,
        );
      }
      assertEquals(r.events.filter((e) => e === "processExited").length, 1);
      assertEquals(r.events[0], "connectionMade");
      assertEquals(r.events.at(-1), "connectionLost");
      assertEquals(stdin.getWriteBufferSize(), 0);
      assertEquals(recorder.contexts, []);
      assertEquals(unhandled.seen, []);
    },
  );
}

// ------------------------------------------------------ descriptor exhaustion

const EMFILE_SERVER = `
import { createServer, setExceptionHandler } from ${
  JSON.stringify(new URL("../mod.ts", import.meta.url).href)
};
// Deno opens a socket pair of its own ~500 ms after start and panics if that
// fails: let it happen before the descriptors run out.
await new Promise((resolve) => setTimeout(resolve, 1500));
const messages = [];
setExceptionHandler((context) => messages.push(context.message));
let served = 0;
const server = await createServer(() => {
  let transport;
  return {
    connectionMade(t) { transport = t; served++; },
    dataReceived(data) { transport.write(data); },
  };
}, { hostname: "127.0.0.1", port: 0 });
console.log(JSON.stringify({ port: server.addrs[0].port }));
for await (const _ of Deno.stdin.readable);
server.close();
server.abortClients();
await server.waitClosed();
console.log(JSON.stringify({ served, messages }));
`;

const shMissing = peerMissing("sh", ["-c", "ulimit -n 64"]);

Deno.test({
  name:
    "Server keeps accepting after running out of file descriptors (EMFILE): the exception handler is told, accept retries, a fresh client is served",
  ignore: shMissing !== null,
  async fn() {
    using unhandled = trapUnhandled();
    const dir = Deno.makeTempDirSync();
    const script = `${dir}/emfile_server.mjs`;
    Deno.writeTextFileSync(script, EMFILE_SERVER);
    const child = new Deno.Command("sh", {
      args: [
        "-c",
        `ulimit -n 48 && exec "$0" run -A --no-config "$1"`,
        Deno.execPath(),
        script,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(60_000),
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    async function nextLine(): Promise<string> {
      while (!text.includes("\n")) {
        const { value, done } = await within(
          lines.read(),
          30_000,
          "the child's output",
        );
        if (done) throw new Error(`the child ended: ${text}`);
        text += value;
      }
      const line = text.slice(0, text.indexOf("\n"));
      text = text.slice(line.length + 1);
      return line;
    }
    const conns: Deno.Conn[] = [];
    try {
      const { port } = JSON.parse(await nextLine());
      // Twice what the child can accept: some wait in the listen backlog.
      for (let i = 0; i < 50; i++) {
        conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
      }
      // The first one was accepted before the descriptors ran out.
      await conns[0]!.write(new Uint8Array([42]));
      const one = new Uint8Array(1);
      assertEquals(await within(conns[0]!.read(one), BOUND, "an echo"), 1);
      await sleep(1200); // at least one failed accept and one retry
      for (const conn of conns.splice(0)) conn.close();
      await sleep(2200); // the backlog is accepted (and ends) on later retries
      const fresh = await echoOnce(port, "after EMFILE");
      assertEquals(fresh, { text: "after EMFILE", error: null });
      await child.stdin.close();
      const report = JSON.parse(await nextLine());
      assert(report.served >= 20, `served ${report.served}`);
      assert(report.messages.length >= 1, "no accept error was reported");
      for (const message of report.messages) {
        assertMatch(message, /^Error accepting a connection; retrying/);
      }
      const status = await child.status;
      assertEquals(status.code, 0);
    } finally {
      for (const conn of conns) conn.close();
      await lines.cancel().catch(() => {});
      await child.stderr.cancel().catch(() => {});
      try {
        child.kill();
      } catch {
        // Exited already.
      }
      await child.status;
      Deno.removeSync(dir, { recursive: true });
    }
    assertEquals(unhandled.seen, []);
  },
});

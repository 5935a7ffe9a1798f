// Copyright 2026 the denio authors. MIT license.
// Load and slow-consumer reliability: many concurrent connections with
// checksummed echoes (every byte accounted for, connectionLost exactly once,
// file descriptors back to where they started), and a slow reader against a
// flow-controlled writer (the write buffer and RSS stay bounded).
//
// DENIO_LOAD_CONNECTIONS (default 1000) and DENIO_LOAD_BYTES (default 1 MiB
// per connection: about 5 s on two idle cores) scale the load test down for a
// slower machine, e.g. DENIO_LOAD_BYTES=65536; DENIO_TLS_LOAD_CONNECTIONS
// (default 500) and DENIO_TLS_LOAD_BYTES (default 256 KiB) the TLS one.

import { assert, assertEquals } from "@std/assert";
import {
  type ConnectOptions,
  createConnection,
  createServer,
  type Protocol,
  type ServeOptions,
  startServer,
  type Transport,
  WebStreamProtocol,
} from "../mod.ts";
import {
  canCountFds,
  Checksum,
  echoOnce,
  envInt,
  mulberry32,
  newEchoStats,
  openFdCount,
  openFileLimit,
  randomBytes,
  recordContexts,
  rss,
  settleFds,
  sleep,
  TrackedEcho,
  trapUnhandled,
  waitFor,
} from "./_reliability_helpers.ts";
import { makeTestCerts } from "./_certs.ts";

const CONNECTIONS = envInt("DENIO_LOAD_CONNECTIONS", 1000);
const BYTES_PER_CONNECTION = envInt("DENIO_LOAD_BYTES", 1024 * 1024);
const WRITE_CHUNK = 64 * 1024;
const CONNECT_BATCH = 100;

// Each connection needs two descriptors (client and server side) in this
// process, plus headroom for the runtime.
const FD_LIMIT = openFileLimit();
const FDS_NEEDED = 2 * CONNECTIONS + 256;
const loadSkip = FD_LIMIT === undefined
  ? "cannot read the open-file limit from /proc/self/limits"
  : FD_LIMIT < FDS_NEEDED
  ? `ulimit -n is ${FD_LIMIT}, the load test needs ${FDS_NEEDED} (raise it with \`ulimit -n ${FDS_NEEDED}\`)`
  : !canCountFds()
  ? "cannot list /proc/self/fd to count open descriptors"
  : undefined;
if (loadSkip !== undefined) console.log(`skipping the load test: ${loadSkip}`);

/**
 * Sends `length` bytes of `payload` from `offset` through flow control
 * (pausing on pauseWriting, going on from resumeWriting), half-closes, and
 * checksums what comes back.
 */
class LoadClient implements Protocol {
  transport: Transport | undefined;
  readonly sent = new Checksum();
  readonly received = new Checksum();
  readonly lost = Promise.withResolvers<Error | null>();
  lostCalls = 0;
  maxBuffer = 0;
  #payload: Uint8Array;
  #offset: number;
  #end: number;
  #paused = false;

  constructor(payload: Uint8Array, offset: number, length: number) {
    this.#payload = payload;
    this.#offset = offset;
    this.#end = offset + length;
  }

  connectionMade(transport: Transport): void {
    this.transport = transport;
  }

  start(): void {
    this.#pump();
  }

  #pump(): void {
    const transport = this.transport!;
    while (!this.#paused && this.#offset < this.#end) {
      const chunk = this.#payload.subarray(
        this.#offset,
        Math.min(this.#end, this.#offset + WRITE_CHUNK),
      );
      this.#offset += chunk.length;
      this.sent.update(chunk);
      transport.write(chunk);
      this.maxBuffer = Math.max(this.maxBuffer, transport.getWriteBufferSize());
    }
    if (this.#offset >= this.#end && !this.#paused) transport.writeEof();
  }

  pauseWriting(): void {
    this.#paused = true;
  }

  resumeWriting(): void {
    this.#paused = false;
    this.#pump();
  }

  dataReceived(data: Uint8Array): void {
    this.received.update(data);
  }

  connectionLost(error: Error | null): void {
    this.lostCalls++;
    this.lost.resolve(error);
  }
}

/** The fd count once it holds still for 5 readings 20 ms apart (bounded). */
async function stableFdCount(): Promise<number> {
  let count = openFdCount();
  for (let same = 0, tries = 0; same < 5 && tries < 100; tries++) {
    await sleep(20);
    const now = openFdCount();
    same = now === count ? same + 1 : 0;
    count = now;
  }
  return count;
}

/**
 * Opens `connections` clients to one echo server, all at once, then sends
 * `bytes` through each and checks every byte, every connectionLost and the
 * open descriptors.
 */
async function runLoad(
  connections: number,
  bytes: number,
  serve: ServeOptions,
  connect: ConnectOptions,
): Promise<void> {
  using unhandled = trapUnhandled();
  using recorder = recordContexts();
  const stats = newEchoStats();
  const server = await createServer(() => new TrackedEcho(stats), serve);
  const target: ConnectOptions = serve.transport === "unix"
    ? connect
    : { ...connect, port: (server.addrs[0] as Deno.NetAddr).port };
  // Warm up lazily created runtime resources before taking the baseline.
  assertEquals((await echoOnce(target)).text, "ping");
  await waitFor(() => stats.lost === 1, "the warm-up connection to close");
  const baseline = await stableFdCount();

  const payload = randomBytes(mulberry32(1), 2 * 1024 * 1024);
  const clients: LoadClient[] = [];
  const transports: Transport[] = [];
  const started = Date.now();
  try {
    for (let i = 0; i < connections; i += CONNECT_BATCH) {
      const batch = await Promise.all(
        Array.from(
          { length: Math.min(CONNECT_BATCH, connections - i) },
          (_, j) =>
            createConnection(
              () =>
                new LoadClient(
                  payload,
                  ((i + j) * 9973) % (1024 * 1024),
                  bytes,
                ),
              target,
            ),
        ),
      );
      for (const [transport, client] of batch) {
        transports.push(transport);
        clients.push(client);
      }
    }
    // All connections are open at once before any byte moves.
    await waitFor(
      () => stats.made === connections + 1,
      "the server to accept every connection",
      60_000,
    );
    const connected = Date.now();
    for (const client of clients) client.start();
    const errors = await Promise.all(clients.map((c) => c.lost.promise));
    const done = Date.now();
    console.log(
      `load: ${connections} connections x ${bytes} bytes; connect ${
        connected - started
      } ms, echo ${done - connected} ms`,
    );

    for (const [i, client] of clients.entries()) {
      assertEquals(errors[i], null, `client ${i} lost with an error`);
      assertEquals(client.sent.bytes, bytes);
      assertEquals(
        client.received.bytes,
        bytes,
        `client ${i} received ${client.received.bytes} bytes`,
      );
      assertEquals(
        client.received.digest(),
        client.sent.digest(),
        `client ${i} checksum`,
      );
      assert(
        client.maxBuffer <= 64 * 1024 + WRITE_CHUNK,
        `client ${i} write buffer reached ${client.maxBuffer}`,
      );
    }
  } finally {
    for (const transport of transports) transport.abort();
    server.close();
    server.abortClients();
    await server.waitClosed();
  }
  await sleep(0);
  for (const [i, client] of clients.entries()) {
    assertEquals(client.lostCalls, 1, `client ${i} connectionLost calls`);
  }
  assertEquals(stats.made, connections + 1);
  assertEquals(stats.lost, connections + 1);
  assertEquals(stats.doubleLost, 0);
  assertEquals(stats.afterLost, 0);
  assertEquals(stats.bytesIn, connections * bytes + 4);
  assertEquals(stats.errors.filter((e) => e !== null), []);
  // The listener is closed now, so one descriptor fewer than the baseline.
  // (Deno releases a TLS socket in the background after close(): up to
  // ~0.5 s after waitClosed() for 1000 connections, hence the long wait.)
  const after = await settleFds(baseline - 1, 500);
  assertEquals(after, baseline - 1, "open file descriptors after the load");
  assertEquals(recorder.contexts, []);
  assertEquals(unhandled.seen, []);
}

Deno.test({
  name:
    `createServer() echoes ${CONNECTIONS} concurrent connections of ${BYTES_PER_CONNECTION} bytes with every byte, connectionLost and descriptor accounted for`,
  ignore: loadSkip !== undefined,
  fn: () =>
    runLoad(CONNECTIONS, BYTES_PER_CONNECTION, {
      hostname: "127.0.0.1",
      port: 0,
    }, { hostname: "127.0.0.1" }),
});

const UNIX_CONNECTIONS = Math.min(CONNECTIONS, 500);

Deno.test({
  name:
    `createServer() over a Unix socket echoes ${UNIX_CONNECTIONS} concurrent connections of ${BYTES_PER_CONNECTION} bytes with every byte accounted for`,
  ignore: loadSkip !== undefined,
  async fn() {
    const dir = Deno.makeTempDirSync();
    try {
      const path = `${dir}/load.sock`;
      await runLoad(UNIX_CONNECTIONS, BYTES_PER_CONNECTION, {
        transport: "unix",
        path,
      }, { transport: "unix", path });
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

const TLS_CONNECTIONS = envInt("DENIO_TLS_LOAD_CONNECTIONS", 500);
const TLS_BYTES = envInt("DENIO_TLS_LOAD_BYTES", 256 * 1024);

Deno.test({
  name:
    `createServer() with TLS echoes ${TLS_CONNECTIONS} concurrent connections of ${TLS_BYTES} bytes with every byte accounted for`,
  ignore: loadSkip !== undefined,
  async fn() {
    const certs = await makeTestCerts();
    try {
      await runLoad(TLS_CONNECTIONS, TLS_BYTES, {
        hostname: "127.0.0.1",
        port: 0,
        tls: { cert: certs.cert, key: certs.key },
      }, { hostname: "127.0.0.1", tls: { caCerts: [certs.caCert] } });
    } finally {
      await Deno.remove(certs.dir, { recursive: true });
    }
  },
});

// ------------------------------------------------------------ slow consumers

const FIREHOSE_BYTES = envInt("DENIO_SLOW_BYTES", 100 * 1024 * 1024);
const FIREHOSE_CHUNK = 64 * 1024;
const SLOW_READS = 400;
/**
 * RSS may grow this much while 100 MiB go through. Generous: the process also
 * holds the in-process client's receive buffers until V8 collects them, which
 * after the rest of the suite has run was seen to reach 64 MiB. The write
 * buffer assertion is the exact check; this one catches runaway growth.
 */
const RSS_GROWTH_LIMIT = 96 * 1024 * 1024;

/** What a {@linkcode Firehose} saw. */
interface FirehoseStats {
  sum: Checksum;
  maxBuffer: number;
  pauses: number;
  resumes: number;
  maxRss: number;
  high: number;
  lost: PromiseWithResolvers<Error | null>;
}

/**
 * Writes `total` bytes from connectionMade on, as fast as flow control lets
 * it (stops at pauseWriting, goes on from resumeWriting), then closes.
 */
class Firehose implements Protocol {
  #transport: Transport | undefined;
  #source: Uint8Array;
  #total: number;
  #sent = 0;
  #paused = false;
  #stats: FirehoseStats;
  #limits: { high?: number; low?: number } | undefined;

  constructor(
    source: Uint8Array,
    total: number,
    stats: FirehoseStats,
    limits?: { high?: number; low?: number },
  ) {
    this.#source = source;
    this.#total = total;
    this.#stats = stats;
    this.#limits = limits;
  }

  connectionMade(transport: Transport): void {
    this.#transport = transport;
    if (this.#limits) transport.setWriteBufferLimits(this.#limits);
    this.#stats.high = transport.getWriteBufferLimits().high;
    this.#pump();
  }

  #pump(): void {
    const transport = this.#transport!;
    while (!this.#paused && this.#sent < this.#total) {
      const offset = this.#sent % (this.#source.length - FIREHOSE_CHUNK);
      const size = Math.min(FIREHOSE_CHUNK, this.#total - this.#sent);
      const chunk = this.#source.subarray(offset, offset + size);
      this.#sent += size;
      this.#stats.sum.update(chunk);
      transport.write(chunk);
      const buffered = transport.getWriteBufferSize();
      if (buffered > this.#stats.maxBuffer) this.#stats.maxBuffer = buffered;
      if ((this.#sent / FIREHOSE_CHUNK) % 16 === 0) {
        this.#stats.maxRss = Math.max(this.#stats.maxRss, rss());
      }
    }
    if (this.#sent >= this.#total) transport.close();
  }

  pauseWriting(): void {
    this.#stats.pauses++;
    this.#paused = true;
  }

  resumeWriting(): void {
    this.#stats.resumes++;
    this.#paused = false;
    this.#pump();
  }

  connectionLost(error: Error | null): void {
    this.#stats.lost.resolve(error);
  }
}

function newFirehoseStats(): FirehoseStats {
  return {
    sum: new Checksum(),
    maxBuffer: 0,
    pauses: 0,
    resumes: 0,
    maxRss: 0,
    high: 0,
    lost: Promise.withResolvers<Error | null>(),
  };
}

/** Reads `conn` 1 byte per millisecond `SLOW_READS` times, then fast to EOF. */
async function slowThenFastRead(conn: Deno.Conn): Promise<Checksum> {
  const sum = new Checksum();
  const one = new Uint8Array(1);
  for (let i = 0; i < SLOW_READS; i++) {
    const n = await conn.read(one);
    if (n === null) return sum;
    sum.update(one.subarray(0, n));
    await sleep(1);
  }
  const buffer = new Uint8Array(256 * 1024);
  while (true) {
    const n = await conn.read(buffer);
    if (n === null) return sum;
    sum.update(buffer.subarray(0, n));
  }
}

for (
  const limits of [undefined, { high: 16 * 1024 }, { high: 1024 * 1024 }]
) {
  const label = limits === undefined
    ? "default watermarks"
    : `high = ${limits.high}`;
  Deno.test(
    `Transport.write() keeps the buffer under the high watermark (${label}) and RSS bounded while a 1-byte-per-ms reader takes ${
      FIREHOSE_BYTES >> 20
    } MiB`,
    async () => {
      using unhandled = trapUnhandled();
      using recorder = recordContexts();
      const source = randomBytes(mulberry32(2), 1024 * 1024);
      const stats = newFirehoseStats();
      await using server = await createServer(
        () => new Firehose(source, FIREHOSE_BYTES, stats, limits),
        { hostname: "127.0.0.1", port: 0 },
      );
      const { port } = server.addrs[0] as Deno.NetAddr;
      const startRss = rss();
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      let received: Checksum;
      try {
        received = await slowThenFastRead(conn);
      } finally {
        conn.close();
      }
      assertEquals(await stats.lost.promise, null);
      assertEquals(received.bytes, FIREHOSE_BYTES);
      assertEquals(received.digest(), stats.sum.digest());
      // Flow control really engaged (otherwise the bounds prove nothing).
      assert(stats.pauses >= 1, `pauseWriting was never called`);
      assertEquals(stats.resumes, stats.pauses);
      assert(
        stats.maxBuffer <= stats.high + FIREHOSE_CHUNK,
        `write buffer reached ${stats.maxBuffer} (high ${stats.high} + one write ${FIREHOSE_CHUNK})`,
      );
      const growth = stats.maxRss - startRss;
      assert(
        growth < RSS_GROWTH_LIMIT,
        `RSS grew by ${growth} bytes (limit ${RSS_GROWTH_LIMIT})`,
      );
      assertEquals(recorder.contexts, []);
      assertEquals(unhandled.seen, []);
    },
  );
}

Deno.test(
  `Transport.pauseReading() on a slow client keeps the server's write buffer bounded over ${
    FIREHOSE_BYTES >> 20
  } MiB`,
  async () => {
    using unhandled = trapUnhandled();
    using recorder = recordContexts();
    const source = randomBytes(mulberry32(3), 1024 * 1024);
    const stats = newFirehoseStats();
    await using server = await createServer(
      () => new Firehose(source, FIREHOSE_BYTES, stats),
      { hostname: "127.0.0.1", port: 0 },
    );
    const { port } = server.addrs[0] as Deno.NetAddr;
    const startRss = rss();
    const received = new Checksum();
    const lost = Promise.withResolvers<Error | null>();
    let deliveries = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let client: Transport | undefined;
    await createConnection(() => ({
      connectionMade(t: Transport) {
        client = t;
      },
      dataReceived(data: Uint8Array) {
        received.update(data);
        // The first deliveries are small reads with pauses between them.
        if (++deliveries <= 200) {
          client!.pauseReading();
          timer = setTimeout(() => client!.resumeReading(), 1);
        }
      },
      connectionLost(error: Error | null) {
        clearTimeout(timer);
        lost.resolve(error);
      },
    }), { hostname: "127.0.0.1", port });
    assertEquals(await lost.promise, null);
    assertEquals(await stats.lost.promise, null);
    assertEquals(received.bytes, FIREHOSE_BYTES);
    assertEquals(received.digest(), stats.sum.digest());
    assert(stats.pauses >= 1, `pauseWriting was never called`);
    assert(
      stats.maxBuffer <= stats.high + FIREHOSE_CHUNK,
      `write buffer reached ${stats.maxBuffer}`,
    );
    const growth = stats.maxRss - startRss;
    assert(growth < RSS_GROWTH_LIMIT, `RSS grew by ${growth} bytes`);
    assertEquals(recorder.contexts, []);
    assertEquals(unhandled.seen, []);
  },
);

Deno.test(
  `StreamWriter.drain() keeps the buffer under the high watermark and RSS bounded while a 1-byte-per-ms reader takes ${
    FIREHOSE_BYTES >> 20
  } MiB`,
  async () => {
    using unhandled = trapUnhandled();
    using recorder = recordContexts();
    const source = randomBytes(mulberry32(4), 1024 * 1024);
    const sent = new Checksum();
    let maxBuffer = 0;
    let maxRss = 0;
    let high = 0;
    const done = Promise.withResolvers<void>();
    const server = await startServer(async (_reader, writer) => {
      try {
        high = writer.transport.getWriteBufferLimits().high;
        for (
          let offset = 0;
          offset < FIREHOSE_BYTES;
          offset += FIREHOSE_CHUNK
        ) {
          const at = offset % (source.length - FIREHOSE_CHUNK);
          const chunk = source.subarray(at, at + FIREHOSE_CHUNK);
          sent.update(chunk);
          writer.write(chunk);
          maxBuffer = Math.max(
            maxBuffer,
            writer.transport.getWriteBufferSize(),
          );
          await writer.drain();
          if ((offset / FIREHOSE_CHUNK) % 16 === 0) {
            maxRss = Math.max(maxRss, rss());
          }
        }
        writer.close();
        await writer.waitClosed();
        done.resolve();
      } catch (error) {
        done.reject(error);
      }
    }, { hostname: "127.0.0.1", port: 0 });
    try {
      const { port } = server.addrs[0] as Deno.NetAddr;
      const startRss = rss();
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      let received: Checksum;
      try {
        received = await slowThenFastRead(conn);
      } finally {
        conn.close();
      }
      await done.promise;
      assertEquals(received.bytes, FIREHOSE_BYTES);
      assertEquals(received.digest(), sent.digest());
      assert(
        maxBuffer <= high + FIREHOSE_CHUNK,
        `write buffer reached ${maxBuffer} (high ${high})`,
      );
      const growth = maxRss - startRss;
      assert(growth < RSS_GROWTH_LIMIT, `RSS grew by ${growth} bytes`);
    } finally {
      server.close();
      server.abortClients();
      await server.waitClosed();
    }
    assertEquals(recorder.contexts, []);
    assertEquals(unhandled.seen, []);
  },
);

Deno.test(
  `WebStreamProtocol.writable piped from a ReadableStream keeps the transport buffer bounded while a 1-byte-per-ms reader takes ${
    FIREHOSE_BYTES >> 20
  } MiB`,
  async () => {
    using unhandled = trapUnhandled();
    using recorder = recordContexts();
    const source = randomBytes(mulberry32(5), 1024 * 1024);
    const sent = new Checksum();
    let maxBuffer = 0;
    let maxRss = 0;
    let high = 0;
    const piped = Promise.withResolvers<void>();
    const server = await createServer(() => {
      const protocol = new WebStreamProtocol();
      let offset = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          const transport = protocol.transport;
          if (transport !== null) {
            high = transport.getWriteBufferLimits().high;
            maxBuffer = Math.max(maxBuffer, transport.getWriteBufferSize());
          }
          if (offset >= FIREHOSE_BYTES) {
            controller.close();
            return;
          }
          const at = offset % (source.length - FIREHOSE_CHUNK);
          const chunk = source.subarray(at, at + FIREHOSE_CHUNK);
          sent.update(chunk);
          controller.enqueue(chunk);
          if ((offset / FIREHOSE_CHUNK) % 16 === 0) {
            maxRss = Math.max(maxRss, rss());
          }
          offset += FIREHOSE_CHUNK;
        },
      }, { highWaterMark: 0 });
      stream.pipeTo(protocol.writable).then(piped.resolve, piped.reject);
      return protocol;
    }, { hostname: "127.0.0.1", port: 0 });
    try {
      const { port } = server.addrs[0] as Deno.NetAddr;
      const startRss = rss();
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      let received: Checksum;
      try {
        received = await slowThenFastRead(conn);
      } finally {
        conn.close();
      }
      await piped.promise;
      assertEquals(received.bytes, FIREHOSE_BYTES);
      assertEquals(received.digest(), sent.digest());
      assert(high > 0);
      assert(
        maxBuffer <= high + FIREHOSE_CHUNK,
        `write buffer reached ${maxBuffer} (high ${high})`,
      );
      const growth = maxRss - startRss;
      assert(growth < RSS_GROWTH_LIMIT, `RSS grew by ${growth} bytes`);
    } finally {
      server.close();
      server.abortClients();
      await server.waitClosed();
    }
    assertEquals(recorder.contexts, []);
    assertEquals(unhandled.seen, []);
  },
);

Deno.test(
  `WebStreamProtocol.readable read slowly pushes back through TCP: the sending server's buffer stays bounded over ${
    FIREHOSE_BYTES >> 20
  } MiB`,
  async () => {
    using unhandled = trapUnhandled();
    using recorder = recordContexts();
    const source = randomBytes(mulberry32(6), 1024 * 1024);
    const stats = newFirehoseStats();
    await using server = await createServer(
      () => new Firehose(source, FIREHOSE_BYTES, stats),
      { hostname: "127.0.0.1", port: 0 },
    );
    const { port } = server.addrs[0] as Deno.NetAddr;
    const startRss = rss();
    const [, client] = await createConnection(
      () => new WebStreamProtocol({ readableHighWaterMark: 16 * 1024 }),
      { hostname: "127.0.0.1", port },
    );
    const received = new Checksum();
    const reader = client.readable.getReader();
    for (let reads = 0;; reads++) {
      const { value, done } = await reader.read();
      if (done) break;
      received.update(value);
      if (reads < 300) await sleep(1);
    }
    await client.writable.close().catch(() => {});
    assertEquals(await stats.lost.promise, null);
    assertEquals(received.bytes, FIREHOSE_BYTES);
    assertEquals(received.digest(), stats.sum.digest());
    assert(stats.pauses >= 1, "pauseWriting was never called");
    assert(
      stats.maxBuffer <= stats.high + FIREHOSE_CHUNK,
      `write buffer reached ${stats.maxBuffer}`,
    );
    const growth = stats.maxRss - startRss;
    assert(growth < RSS_GROWTH_LIMIT, `RSS grew by ${growth} bytes`);
    assertEquals(recorder.contexts, []);
    assertEquals(unhandled.seen, []);
  },
);

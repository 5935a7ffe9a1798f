// Copyright 2026 the denio authors. MIT license.
import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
  assertStrictEquals,
  assertThrows,
} from "@std/assert";
import { delay } from "@std/async/delay";
import {
  IncompleteReadError,
  LimitOverrunError,
  openConnection,
  startServer,
  StreamReader,
  StreamReaderProtocol,
  StreamWriter,
} from "../protocols/streams.ts";
import {
  type ExceptionContext,
  setExceptionHandler,
} from "../transports/exception_handler.ts";
import type { ReadTransport } from "../mod.ts";
import { makeTestCerts } from "./_certs.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (text: string) => encoder.encode(text);
const text = (data: Uint8Array) => decoder.decode(data);

/** A small seeded PRNG (mulberry32), so failures reproduce. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomBytes(n: number, seed: number): Uint8Array {
  const next = random(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(next() * 256);
  return out;
}

/** Lets queued microtasks (a waiting read's continuation) run. */
async function turns(n = 8): Promise<void> {
  for (let i = 0; i < n; i++) await null;
}

/** A read transport that records pause/resume calls. */
class RecordingReadTransport implements ReadTransport {
  log: string[] = [];
  #reading = true;
  getExtraInfo(_name: string, defaultValue?: unknown): unknown {
    return defaultValue;
  }
  isClosing(): boolean {
    return false;
  }
  close(): void {}
  setProtocol(): void {}
  getProtocol(): never {
    throw new Error("not used");
  }
  isReading(): boolean {
    return this.#reading;
  }
  pauseReading(): void {
    this.log.push("pauseReading");
    this.#reading = false;
  }
  resumeReading(): void {
    this.log.push("resumeReading");
    this.#reading = true;
  }
  setIdleTimeout(): void {}
}

// The message every chunking test reads, and the reads it is cut into.
const MESSAGE = bytes(
  "GET / HTTP/1.1\r\nHost: x\r\n\r\nline one\nline two\n12345" +
    "tail\u00e9\u20ac!\nlast line without newline",
);

async function readScript(reader: StreamReader): Promise<string[]> {
  const out: string[] = [];
  out.push(text(await reader.readuntil("\r\n\r\n")));
  out.push(text(await reader.readline()));
  out.push(text(await reader.readuntil(new Uint8Array([0x0a]))));
  out.push(text(await reader.readexactly(5)));
  out.push(text(await reader.readuntil("\u20ac")));
  out.push(text(await reader.readline()));
  out.push(text(await reader.readline())); // partial line at EOF
  out.push(text(await reader.readline())); // then empty
  out.push(String(reader.atEof()));
  return out;
}

const EXPECTED_SCRIPT = [
  "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
  "line one\n",
  "line two\n",
  "12345",
  "tail\u00e9\u20ac",
  "!\n",
  "last line without newline",
  "",
  "true",
];

/** Feeds `chunks` one at a time, letting the reads run in between. */
async function feedAndRead(chunks: Uint8Array[]): Promise<string[]> {
  const reader = new StreamReader();
  const result = readScript(reader);
  for (const chunk of chunks) {
    reader.feedData(chunk);
    await turns();
  }
  reader.feedEof();
  return await result;
}

// ---------------------------------------------------------------- reader unit tests

Deno.test("StreamReader reads every message when fed byte by byte", async () => {
  const chunks = Array.from(MESSAGE, (_, i) => MESSAGE.subarray(i, i + 1));
  assertEquals(await feedAndRead(chunks), EXPECTED_SCRIPT);
});

Deno.test("StreamReader reads every message when split in two at every boundary", async () => {
  for (let i = 0; i <= MESSAGE.length; i++) {
    const chunks = [MESSAGE.subarray(0, i), MESSAGE.subarray(i)];
    assertEquals(await feedAndRead(chunks), EXPECTED_SCRIPT, `split at ${i}`);
  }
});

Deno.test("StreamReader reads every message under random chunkings", async () => {
  const next = random(42);
  for (let round = 0; round < 200; round++) {
    const chunks: Uint8Array[] = [];
    for (let at = 0; at < MESSAGE.length;) {
      const size = 1 + Math.floor(next() * 12);
      chunks.push(MESSAGE.slice(at, at + size));
      at += size;
    }
    assertEquals(await feedAndRead(chunks), EXPECTED_SCRIPT, `round ${round}`);
  }
});

Deno.test("StreamReader.readexactly() across chunks returns byte-exact data", async () => {
  const data = randomBytes(100_000, 7);
  const next = random(8);
  const reader = new StreamReader();
  for (let at = 0; at < data.length;) {
    const size = 1 + Math.floor(next() * 5000);
    reader.feedData(data.slice(at, at + size));
    at += size;
  }
  reader.feedEof();
  const parts: Uint8Array[] = [];
  for (let left = data.length; left > 0;) {
    const n = Math.min(left, 1 + Math.floor(next() * 9000));
    parts.push(await reader.readexactly(n));
    left -= n;
  }
  const joined = new Uint8Array(data.length);
  let offset = 0;
  for (const part of parts) {
    joined.set(part, offset);
    offset += part.length;
  }
  assertEquals(joined, data);
  assert(reader.atEof());
});

Deno.test("StreamReader.read(n) returns at most n buffered bytes and empty bytes at EOF", async () => {
  const reader = new StreamReader();
  reader.feedData(bytes("abc"));
  reader.feedData(bytes("defg"));
  assertEquals(text(await reader.read(5)), "abcde");
  assertEquals(text(await reader.read(5)), "fg");
  assertEquals(await reader.read(0), new Uint8Array());
  const pending = reader.read(10);
  await turns();
  reader.feedData(bytes("h"));
  assertEquals(text(await pending), "h");
  reader.feedEof();
  assertEquals(await reader.read(10), new Uint8Array());
  assert(reader.atEof());
});

Deno.test("StreamReader.read() with no argument reads until EOF", async () => {
  const reader = new StreamReader({ limit: 4 });
  const all = reader.read();
  for (const part of ["0123", "4567", "89"]) {
    reader.feedData(bytes(part));
    await turns();
  }
  reader.feedEof();
  assertEquals(text(await all), "0123456789");
  assertEquals(await reader.read(), new Uint8Array());
});

Deno.test("StreamReader.readexactly() at EOF mid-message throws IncompleteReadError with partial and expected", async () => {
  const reader = new StreamReader();
  reader.feedData(bytes("12"));
  const pending = reader.readexactly(5);
  await turns();
  reader.feedData(bytes("3"));
  await turns();
  reader.feedEof();
  const error = await assertRejects(() => pending, IncompleteReadError);
  assertEquals(error.name, "IncompleteReadError");
  assertEquals(text(error.partial), "123");
  assertEquals(error.expected, 5);
  assertEquals(
    error.message,
    "Cannot read 5 bytes as the stream ended first: current value is 3 bytes read",
  );
  assert(reader.atEof());
  assertEquals(await reader.readexactly(0), new Uint8Array());
});

Deno.test("StreamReader.readuntil() at EOF throws IncompleteReadError with expected null", async () => {
  const reader = new StreamReader();
  reader.feedData(bytes("no separator"));
  reader.feedEof();
  const error = await assertRejects(
    () => reader.readuntil("\r\n"),
    IncompleteReadError,
  );
  assertEquals(text(error.partial), "no separator");
  assertEquals(error.expected, null);
  assert(reader.atEof());
});

Deno.test("StreamReader.readuntil() finds a separator that arrived together with EOF", async () => {
  const reader = new StreamReader();
  const pending = reader.readuntil("||");
  reader.feedData(bytes("a|"));
  await turns();
  reader.feedData(bytes("|b"));
  reader.feedEof();
  assertEquals(text(await pending), "a||");
  assertEquals(text(await reader.readline()), "b");
});

Deno.test("StreamReader.readline() at EOF returns the partial line, then empty bytes", async () => {
  const reader = new StreamReader();
  reader.feedData(bytes("partial"));
  reader.feedEof();
  assert(!reader.atEof());
  assertEquals(text(await reader.readline()), "partial");
  assert(reader.atEof());
  assertEquals(await reader.readline(), new Uint8Array());
});

Deno.test("StreamReader.readuntil() throws LimitOverrunError and keeps the data when no separator is within the limit", async () => {
  const reader = new StreamReader({ limit: 4 });
  reader.feedData(bytes("abcdefgh"));
  const error = await assertRejects(
    () => reader.readuntil(),
    LimitOverrunError,
  );
  assertEquals(error.name, "LimitOverrunError");
  assertEquals(error.consumed, 8);
  // asyncio leaves the data in the buffer after readuntil().
  assertEquals(text(await reader.readexactly(8)), "abcdefgh");

  // A two-byte separator may start in the last byte: consumed is one less.
  reader.feedData(bytes("abcdefg\r"));
  const crlf = await assertRejects(
    () => reader.readuntil("\r\n"),
    LimitOverrunError,
  );
  assertEquals(crlf.consumed, 7);
});

Deno.test("StreamReader.readuntil() throws LimitOverrunError when the data before the separator is longer than the limit", async () => {
  const reader = new StreamReader({ limit: 4 });
  reader.feedData(bytes("abcd\nabcde\n"));
  // Exactly `limit` bytes before the separator is fine.
  assertEquals(text(await reader.readuntil()), "abcd\n");
  const error = await assertRejects(
    () => reader.readuntil(),
    LimitOverrunError,
  );
  assertEquals(error.consumed, 5);
  assertEquals(text(await reader.readexactly(6)), "abcde\n");
});

Deno.test("StreamReader.readuntil() waits across chunks until the limit is overrun", async () => {
  const reader = new StreamReader({ limit: 6 });
  const pending = reader.readuntil();
  reader.feedData(bytes("abc"));
  await turns();
  reader.feedData(bytes("def"));
  await turns();
  reader.feedData(bytes("g"));
  const error = await assertRejects(() => pending, LimitOverrunError);
  assertEquals(error.consumed, 7);
});

Deno.test("StreamReader.readline() discards an overlong line and goes on with the next", async () => {
  const reader = new StreamReader({ limit: 4 });
  reader.feedData(bytes("abcdefgh\nok\n"));
  const error = await assertRejects(() => reader.readline(), LimitOverrunError);
  assertEquals(error.consumed, 8);
  assertEquals(text(await reader.readline()), "ok\n");

  // Without a newline in the buffer, the whole buffer is dropped.
  reader.feedData(bytes("abcdefgh"));
  await assertRejects(() => reader.readline(), LimitOverrunError);
  reader.feedData(bytes("ij\n"));
  assertEquals(text(await reader.readline()), "ij\n");
});

Deno.test("StreamReader.readuntil() checks its separator", async () => {
  const reader = new StreamReader();
  await assertRejects(
    () => reader.readuntil(""),
    RangeError,
    "Cannot read until separator as separator is empty: current value is 0 bytes",
  );
  await assertRejects(() => reader.readuntil(new Uint8Array()), RangeError);
  await assertRejects(
    // deno-lint-ignore no-explicit-any
    () => reader.readuntil(10 as any),
    TypeError,
    "Cannot read until separator as separator is not a string or Uint8Array: current value is 10",
  );
});

Deno.test("StreamReader checks limit and read sizes", async () => {
  assertThrows(() => new StreamReader({ limit: 0 }), RangeError);
  assertThrows(() => new StreamReader({ limit: 1.5 }), RangeError);
  assertThrows(
    // deno-lint-ignore no-explicit-any
    () => new StreamReader({ limit: "1" as any }),
    TypeError,
    'Cannot create stream reader as limit is not a number: current value is "1"',
  );
  assertEquals(new StreamReader().limit, 64 * 1024);
  const reader = new StreamReader();
  await assertRejects(
    () => reader.readexactly(-1),
    RangeError,
    "Cannot read exactly from stream as n is not an integer of 0 or more: current value is -1",
  );
  // deno-lint-ignore no-explicit-any
  await assertRejects(() => reader.read("1" as any), TypeError);
  await assertRejects(() => reader.read(0.5), RangeError);
  // deno-lint-ignore no-explicit-any
  assertThrows(() => reader.feedData("x" as any), TypeError);
});

Deno.test("StreamReader.feedData() after feedEof() throws", () => {
  const reader = new StreamReader();
  reader.feedEof();
  assertThrows(
    () => reader.feedData(bytes("x")),
    Error,
    "Cannot feed data to stream reader as EOF was fed",
  );
});

Deno.test("StreamReader rejects a second read while one waits for data", async () => {
  const reader = new StreamReader();
  const first = reader.readline();
  await assertRejects(
    () => reader.read(),
    Error,
    "Cannot call read() as another read is already waiting for data",
  );
  await assertRejects(() => reader.readexactly(1), Error, "readexactly()");
  reader.feedData(bytes("line\n"));
  assertEquals(text(await first), "line\n");
  // Once the first read is done, the next one may wait.
  const second = reader.read();
  reader.feedEof();
  assertEquals(await second, new Uint8Array());
});

Deno.test("StreamReader.setException() rejects the waiting read and every later one", async () => {
  const reader = new StreamReader();
  const pending = reader.readexactly(4);
  await turns();
  const boom = new Error("boom");
  reader.setException(boom);
  assertStrictEquals(await assertRejects(() => pending), boom);
  assertStrictEquals(reader.exception(), boom);
  assertStrictEquals(await assertRejects(() => reader.readline()), boom);
  assertStrictEquals(await assertRejects(() => reader.read(1)), boom);
});

Deno.test("StreamReader pauses the transport above 2 * limit and resumes at limit", async () => {
  const transport = new RecordingReadTransport();
  const reader = new StreamReader({ limit: 10 });
  reader.setTransport(transport);
  assertThrows(() => reader.setTransport(transport), Error);
  reader.feedData(new Uint8Array(20));
  assertEquals(transport.log, []);
  reader.feedData(new Uint8Array(1)); // 21 > 2 * limit
  assertEquals(transport.log, ["pauseReading"]);
  assert(!transport.isReading());
  reader.feedData(new Uint8Array(5)); // no second pause
  await reader.readexactly(15); // 11 left: still above limit
  assertEquals(transport.log, ["pauseReading"]);
  await reader.read(1); // 10 left: resume
  assertEquals(transport.log, ["pauseReading", "resumeReading"]);
  assert(transport.isReading());

  // A read that needs more than is buffered resumes a paused transport.
  reader.feedData(new Uint8Array(30));
  assertEquals(transport.log.at(-1), "pauseReading");
  const big = reader.readexactly(50);
  await turns();
  assertEquals(transport.log.at(-1), "resumeReading");
  reader.feedData(new Uint8Array(30)); // 70 > 20: paused again
  assertEquals((await big).length, 50); // 20 left, still above limit
  assertEquals(transport.log.at(-1), "pauseReading");
  await reader.read(10);
  assertEquals(transport.log, [
    "pauseReading",
    "resumeReading",
    "pauseReading",
    "resumeReading",
    "pauseReading",
    "resumeReading",
  ]);
});

Deno.test("StreamReader async iteration yields each line until EOF", async () => {
  const reader = new StreamReader();
  const lines: string[] = [];
  const done = (async () => {
    for await (const line of reader) lines.push(text(line));
  })();
  reader.feedData(bytes("a\nb"));
  await turns();
  reader.feedData(bytes("c\n\nd"));
  reader.feedEof();
  await done;
  assertEquals(lines, ["a\n", "bc\n", "\n", "d"]);
});

// ---------------------------------------------------------------- sockets

// A test CA and a server certificate it signed (SANs: localhost, 127.0.0.1),
// valid until 2126, made with openssl (prime256v1).
const TLS_CA = `-----BEGIN CERTIFICATE-----
MIIBlzCCAT2gAwIBAgIUeNimqs638+sk/kImm1kXFalbCV0wCgYIKoZIzj0EAwIw
IDEeMBwGA1UEAwwVZGVuaW8gc3RyZWFtcyB0ZXN0IENBMCAXDTI2MTEyMjAzMDEw
M1oYDzIxMjYxMDI5MDMwMTAzWjAgMR4wHAYDVQQDDBVkZW5pbyBzdHJlYW1zIHRl
c3QgQ0EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATbCxuDxN3b5wY4dQHm1UNp
3S2bE8lQ0xO1U1R7Jj5eXSw2ToWoDUI6vnDBldpRO3kwhPc/UH+Dei4HRxhnNWR/
o1MwUTAdBgNVHQ4EFgQUwTSFakUHTQStPcl9wtxUxgu3sREwHwYDVR0jBBgwFoAU
wTSFakUHTQStPcl9wtxUxgu3sREwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQD
AgNIADBFAiA1maV77vCXQJaT0cUCPhnW5RNL0wFvsppNGSJVvo8fygIhALuDViKe
8VgpEvlvfI1SybzD5U+ScvYwI792fGda6hz2
-----END CERTIFICATE-----
`;
const TLS_CERT = `-----BEGIN CERTIFICATE-----
MIIBxTCCAWugAwIBAgIUZizvJ7Kz6GTLNsB511G+XtltsDcwCgYIKoZIzj0EAwIw
IDEeMBwGA1UEAwwVZGVuaW8gc3RyZWFtcyB0ZXN0IENBMCAXDTI2MTEyMjAzMDEw
M1oYDzIxMjYxMDI5MDMwMTAzWjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAATE/5B00Gi/WxkvVuQcZl8sdUhw5UlCwLRNfjz6
MeJP/JrBe9il1mFzdspEmNJTu+6SaOuxXyWIjpDya6XfJyUuo4GMMIGJMBoGA1Ud
EQQTMBGCCWxvY2FsaG9zdIcEfwAAATAJBgNVHRMEAjAAMAsGA1UdDwQEAwIHgDAT
BgNVHSUEDDAKBggrBgEFBQcDATAdBgNVHQ4EFgQU7LAytlhHBTwMmCPWHhfk5Q4f
uEYwHwYDVR0jBBgwFoAUwTSFakUHTQStPcl9wtxUxgu3sREwCgYIKoZIzj0EAwID
SAAwRQIgD3AFKGvGwyl/Dn5JMd04L5pp8Zw1VkZO8vt9ow8zPZgCIQDD45cHEmoZ
/q6NE1H5fByNHkC4Nju/KLiRtv4cpt/3wQ==
-----END CERTIFICATE-----
`;
const TLS_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgzQJlFsGQbWbm9kLb
FNaKk6nK2FhwURFt+FhQm/TbO7ahRANCAATE/5B00Gi/WxkvVuQcZl8sdUhw5UlC
wLRNfjz6MeJP/JrBe9il1mFzdspEmNJTu+6SaOuxXyWIjpDya6XfJyUu
-----END PRIVATE KEY-----
`;

async function withServer<T>(
  handler: Parameters<typeof startServer>[0],
  body: (port: number) => Promise<T>,
  limit?: number,
): Promise<T> {
  await using server = await startServer(handler, {
    hostname: "127.0.0.1",
    port: 0,
    ...(limit === undefined ? {} : { limit }),
  });
  return await body((server.addrs[0] as Deno.NetAddr).port);
}

async function echoLines(reader: StreamReader, writer: StreamWriter) {
  for await (const line of reader) {
    writer.write(line);
    await writer.drain();
  }
  writer.close();
}

Deno.test("openConnection() and startServer() exchange lines over TCP", async () => {
  await withServer(echoLines, async (port) => {
    const [reader, writer] = await openConnection({ port });
    assertEquals((writer.getExtraInfo("peername") as Deno.NetAddr).port, port);
    assertEquals(writer.getExtraInfo("nope", 7), 7);
    assertInstanceOf(writer.transport.getProtocol(), StreamReaderProtocol);
    for (const line of ["one\n", "two\n", "three\n"]) {
      writer.write(bytes(line));
      await writer.drain();
      assertEquals(text(await reader.readline()), line);
    }
    assert(writer.canWriteEof());
    writer.writeEof();
    // The server's loop sees EOF and closes: the client reads EOF.
    assertEquals(await reader.read(), new Uint8Array());
    assert(reader.atEof());
    writer.close();
    assert(writer.isClosing());
    await writer.waitClosed();
  });
});

Deno.test("openConnection() and startServer() exchange lines over a Unix socket", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/streams.sock`;
  try {
    await using _server = await startServer(echoLines, {
      transport: "unix",
      path,
    });
    const [reader, writer] = await openConnection({ transport: "unix", path });
    writer.writelines([bytes("al"), bytes("pha\nbe"), bytes("ta\n")]);
    assertEquals(text(await reader.readline()), "alpha\n");
    assertEquals(text(await reader.readline()), "beta\n");
    await writer[Symbol.asyncDispose]();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openConnection() and startServer() exchange data over TLS", async () => {
  await using server = await startServer(async (reader, writer) => {
    const body = await reader.readexactly(100_000);
    writer.write(body);
    await writer.drain();
    writer.close();
  }, {
    hostname: "127.0.0.1",
    port: 0,
    tls: { cert: TLS_CERT, key: TLS_KEY },
  });
  const { port } = server.addrs[0] as Deno.NetAddr;
  const [reader, writer] = await openConnection({
    port,
    tls: { hostname: "localhost", caCerts: [TLS_CA] },
  });
  const data = randomBytes(100_000, 3);
  writer.write(data);
  await writer.drain();
  assertEquals(await reader.readexactly(100_000), data);
  assertEquals(await reader.read(), new Uint8Array());
  await writer[Symbol.asyncDispose]();
});

Deno.test("StreamReader pauses reading on the transport while more than 2 * limit is buffered", async () => {
  const data = randomBytes(256 * 1024, 11);
  const gotAll = Promise.withResolvers<void>();
  await withServer(async (_reader, writer) => {
    writer.write(data);
    await writer.drain();
    await gotAll.promise;
    writer.close();
  }, async (port) => {
    const [reader, writer] = await openConnection({ port, limit: 1024 });
    const transport = writer.transport;
    for (let i = 0; i < 400 && transport.isReading(); i++) await delay(5);
    assert(!transport.isReading(), "reading was never paused");
    // Consuming everything resumes reading, and nothing was lost.
    assertEquals(await reader.readexactly(data.length), data);
    assert(transport.isReading());
    gotAll.resolve();
    assertEquals(await reader.read(), new Uint8Array());
    await writer[Symbol.asyncDispose]();
  }, 1024);
});

Deno.test("StreamWriter.drain() waits while the transport is paused and resolves once it drains", async () => {
  const size = 16 * 1024 * 1024;
  const startReading = Promise.withResolvers<void>();
  const received = Promise.withResolvers<number>();
  await withServer(async (reader, writer) => {
    await startReading.promise;
    const body = await reader.readexactly(size);
    received.resolve(body.length);
    writer.close();
  }, async (port) => {
    const [reader, writer] = await openConnection({ port });
    writer.write(new Uint8Array(size)); // pauseWriting, synchronously
    let drained = false;
    const drain = writer.drain().then(() => drained = true);
    await delay(20);
    // The server reads nothing yet and the kernel cannot take 16 MiB.
    const { high } = writer.transport.getWriteBufferLimits();
    assert(writer.transport.getWriteBufferSize() > high);
    assert(!drained, "drain() resolved while the transport was paused");
    startReading.resolve();
    await drain;
    assertEquals(await received.promise, size);
    // Not paused: drain() resolves at once.
    await writer.drain();
    assertEquals(await reader.read(), new Uint8Array());
    await writer[Symbol.asyncDispose]();
  });
});

Deno.test("StreamWriter.drain() rejects when the connection is lost while it waits", async () => {
  const size = 16 * 1024 * 1024;
  const abort = Promise.withResolvers<void>();
  await withServer(async (_reader, writer) => {
    await abort.promise;
    writer.transport.abort();
  }, async (port) => {
    const [reader, writer] = await openConnection({ port });
    writer.write(new Uint8Array(size));
    const drain = writer.drain();
    abort.resolve();
    const error = await assertRejects(() => drain);
    assert(
      error instanceof Deno.errors.ConnectionReset ||
        error instanceof Deno.errors.BrokenPipe,
      `unexpected ${error}`,
    );
    await assertRejects(() => writer.waitClosed());
    // The reader reports the same error.
    assertStrictEquals(await assertRejects(() => reader.read()), error);
    await writer[Symbol.asyncDispose]();
  });
});

Deno.test("StreamWriter.drain() rejects after the writer is closed", async () => {
  await withServer(() => {}, async (port) => {
    const [reader, writer] = await openConnection({ port });
    writer.close();
    await writer.waitClosed();
    await assertRejects(
      () => writer.drain(),
      Deno.errors.ConnectionReset,
      "Connection lost",
    );
    assert(reader.atEof());
    // Writes after the close are dropped without an error, as asyncio.
    writer.write(bytes("dropped"));
  });
});

Deno.test("StreamWriter.drain() rejects once the peer is gone", async () => {
  await withServer(
    (_reader, writer) => writer.transport.abort(),
    async (port) => {
      const [reader, writer] = await openConnection({ port });
      assertEquals(await reader.read(), new Uint8Array()); // the peer's FIN
      let error: unknown = null;
      const chunk = new Uint8Array(64 * 1024);
      for (let i = 0; i < 200 && error === null; i++) {
        writer.write(chunk);
        try {
          await writer.drain();
        } catch (caught) {
          error = caught;
        }
        await delay(5);
      }
      assert(
        error instanceof Deno.errors.ConnectionReset ||
          error instanceof Deno.errors.BrokenPipe,
        `unexpected ${error}`,
      );
      await writer[Symbol.asyncDispose]();
    },
  );
});

Deno.test("StreamWriter with await using closes the connection at the end of the scope", async () => {
  const seen = Promise.withResolvers<string>();
  await withServer(async (reader, writer) => {
    seen.resolve(text(await reader.read()));
    writer.close();
  }, async (port) => {
    let outer: StreamWriter;
    {
      const [, writer] = await openConnection({ port });
      await using scoped = writer;
      outer = scoped;
      scoped.write(bytes("bye"));
    }
    assert(outer.isClosing());
    assertEquals(await seen.promise, "bye");
    await outer.waitClosed();
  });
});

Deno.test("startServer() reports a failing handler to the exception handler and closes the connection", async () => {
  const contexts: ExceptionContext[] = [];
  setExceptionHandler((context) => contexts.push(context));
  try {
    const boom = new Error("handler failed");
    await withServer(async (reader) => {
      await reader.readline();
      throw boom;
    }, async (port) => {
      const [reader, writer] = await openConnection({ port });
      writer.write(bytes("go\n"));
      assertEquals(await reader.read(), new Uint8Array());
      assertEquals(contexts.length, 1);
      assertEquals(
        contexts[0]!.message,
        "Unhandled error in the client connected callback",
      );
      assertStrictEquals(contexts[0]!.error, boom);
      await writer[Symbol.asyncDispose]();
    });
  } finally {
    setExceptionHandler(null);
  }
});

Deno.test("openConnection() and startServer() check their arguments", async () => {
  await assertRejects(
    // deno-lint-ignore no-explicit-any
    () => startServer("nope" as any, { port: 0 }),
    TypeError,
    'Cannot start server as handler is not a function: current value is "nope"',
  );
  await assertRejects(
    () => startServer(() => {}, { port: 0, limit: 0 }),
    RangeError,
    "Cannot start server as limit is not a positive integer: current value is 0",
  );
  await assertRejects(
    // deno-lint-ignore no-explicit-any
    () => openConnection(null as any),
    TypeError,
    "Cannot open connection as options is not an object: current value is null",
  );
  await assertRejects(
    () => openConnection({ port: 1, limit: -5 }),
    RangeError,
  );
  assertThrows(
    // deno-lint-ignore no-explicit-any
    () => new StreamReaderProtocol({} as any),
    TypeError,
  );
  assertThrows(
    // deno-lint-ignore no-explicit-any
    () => new StreamWriter({} as any, {} as any),
    TypeError,
  );
});

// ---------------------------------------------------------------- readuntil with several separators

// Several separators: the match that ends first wins.
const MULTI = bytes("a\r\nbb\ncc;;d;;;e\r\n\r\nSEPfx\nend");
const MULTI_SEPARATORS = ["\r\n", "\n", ";;", bytes("SEP")];
const MULTI_EXPECTED = [
  "a\r\n",
  "bb\n",
  "cc;;",
  "d;;",
  ";e\r\n",
  "\r\n",
  "SEP",
  "fx\n",
  "IncompleteReadError:end",
];

async function readMulti(reader: StreamReader): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < 20; i++) {
    try {
      out.push(text(await reader.readuntil(MULTI_SEPARATORS)));
    } catch (error) {
      if (!(error instanceof IncompleteReadError)) throw error;
      assertStrictEquals(error.expected, null);
      out.push(`IncompleteReadError:${text(error.partial)}`);
      return out;
    }
  }
  throw new Error("the stream never ended");
}

Deno.test("StreamReader.readuntil() with an array stops at the match that ends first, split at every boundary", async () => {
  for (let i = 0; i <= MULTI.length; i++) {
    for (let j = i; j <= MULTI.length; j++) {
      const reader = new StreamReader();
      const result = readMulti(reader);
      for (const chunk of [MULTI.subarray(0, i), MULTI.subarray(i, j)]) {
        reader.feedData(chunk);
        await turns();
      }
      reader.feedData(MULTI.subarray(j));
      await turns();
      reader.feedEof();
      assertEquals(await result, MULTI_EXPECTED, `split at ${i} and ${j}`);
    }
  }
});

Deno.test("StreamReader.readuntil() with an array prefers an earlier end over an earlier start", async () => {
  const reader = new StreamReader();
  reader.feedData(bytes("xxSEPARATORyy;zz;"));
  // The long "SEPARATOR" ends before the first ";": it wins.
  assertEquals(text(await reader.readuntil(["SEPARATOR", ";"])), "xxSEPARATOR");
  // ";" ends at byte 3, "z;" only at byte 6.
  assertEquals(text(await reader.readuntil(["z;", ";"])), "yy;");
  reader.feedData(bytes("abcdef"));
  // "bcdef" starts before "ef" but ends at the same byte: same result.
  assertEquals(text(await reader.readuntil(["bcdef", "ef"])), "zz;abcdef");
});

Deno.test("StreamReader.readuntil() with an array counts the shortest of matches that end together for the limit", async () => {
  // "ab" and "b" both end at byte 4: the shorter one matched, so the data
  // before it is "xxa" (3 bytes), over the limit of 2, as CPython 3.13.
  for (const separators of [["ab", "b"], ["b", "ab"]]) {
    const reader = new StreamReader({ limit: 2 });
    reader.feedData(bytes("xxab"));
    const error = await assertRejects(
      () => reader.readuntil(separators),
      LimitOverrunError,
    );
    assertEquals(error.consumed, 3);
    // The data stays buffered.
    assertEquals(text(await reader.readuntil("ab")), "xxab");
  }
  // With "ab" alone the data before it fits.
  const reader = new StreamReader({ limit: 2 });
  reader.feedData(bytes("xxab"));
  assertEquals(text(await reader.readuntil(["ab"])), "xxab");
});

Deno.test("StreamReader.readuntil() with an array throws LimitOverrunError past the limit, keeping the longest separator's tail", async () => {
  const reader = new StreamReader({ limit: 4 });
  const pending = assertRejects(
    () => reader.readuntil(["\n", "END"]),
    LimitOverrunError,
  );
  reader.feedData(bytes("abc"));
  await turns();
  reader.feedData(bytes("defg"));
  const error = await pending;
  // 7 bytes buffered; "END" could still start at byte 5.
  assertEquals(error.consumed, 5);
  // The data stays buffered.
  assertEquals(text(await reader.readexactly(7)), "abcdefg");
  // Fewer bytes than the longest separator: still searched, then EOF.
  reader.feedData(bytes("EN"));
  reader.feedEof();
  const incomplete = await assertRejects(
    () => reader.readuntil(["\n", "END"]),
    IncompleteReadError,
  );
  assertEquals(text(incomplete.partial), "EN");
  assert(reader.atEof());
});

Deno.test("StreamReader.readuntil() checks an array of separators", async () => {
  const reader = new StreamReader();
  await assertRejects(
    () => reader.readuntil([]),
    RangeError,
    "Cannot read until separator as the separator array is empty: current value is 0 separators",
  );
  await assertRejects(
    () => reader.readuntil(["\n", ""]),
    RangeError,
    "Cannot read until separator as separator is empty: current value is 0 bytes",
  );
  await assertRejects(
    // deno-lint-ignore no-explicit-any
    () => reader.readuntil(["\n", 10 as any]),
    TypeError,
    "Cannot read until separator as separator is not a string or Uint8Array: current value is 10",
  );
  // Nothing was consumed by the failed calls.
  reader.feedData(bytes("ok\n"));
  assertEquals(text(await reader.readuntil(["\n"])), "ok\n");
});

// ---------------------------------------------------------------- StreamWriter.startTls()

const certs = await makeTestCerts();
await Deno.remove(certs.dir, { recursive: true });

Deno.test({
  name:
    "StreamWriter.startTls() upgrades both ends in place, keeping buffered plain bytes and flow control",
  async fn() {
    const size = 512 * 1024;
    const serverDone = Promise.withResolvers<void>();
    await using server = await startServer(async (reader, writer) => {
      try {
        // "OK" and a plain line in one write, then the upgrade.
        writer.write(bytes("OK\nplain\n"));
        const plain = writer.transport;
        await writer.startTls({
          serverSide: true,
          cert: certs.cert,
          key: certs.key,
        });
        assert(writer.transport !== plain);
        assertEquals(text(await reader.readline()), "hello over tls\n");
        writer.write(bytes("HELLO OVER TLS\n"));
        // A large body: the reader pauses and resumes the TLS transport.
        const body = await reader.readexactly(size);
        writer.write(body);
        await writer.drain();
        assertEquals(await reader.read(), new Uint8Array());
        writer.close();
        serverDone.resolve();
      } catch (error) {
        serverDone.reject(error);
        throw error;
      }
    }, { hostname: "127.0.0.1", port: 0, limit: 4096 });
    const { port } = server.addrs[0] as Deno.NetAddr;

    const [reader, writer] = await openConnection({ port, limit: 4096 });
    assertEquals(text(await reader.readline()), "OK\n");
    const plain = writer.transport;
    await writer.startTls({ caCerts: [certs.caCert], hostname: "localhost" });
    assert(writer.transport !== plain);
    assertEquals(writer.getExtraInfo("alpnProtocol"), null);
    // The plain line buffered before the upgrade comes first.
    assertEquals(text(await reader.readline()), "plain\n");
    writer.write(bytes("hello over tls\n"));
    await writer.drain();
    assertEquals(text(await reader.readline()), "HELLO OVER TLS\n");
    const body = randomBytes(size, 7);
    writer.write(body);
    await writer.drain();
    writer.writeEof();
    assertEquals(await reader.readexactly(size), body);
    assertEquals(await reader.read(), new Uint8Array());
    await serverDone.promise;
    await writer[Symbol.asyncDispose]();
  },
});

Deno.test({
  name:
    "StreamWriter.startTls() rejects when the handshake fails, and reads and waitClosed() reject too",
  async fn() {
    const serverResult = Promise.withResolvers<unknown>();
    await using server = await startServer(async (reader, writer) => {
      writer.write(bytes("OK\n"));
      try {
        // serverSide defaults to true for a startServer client.
        await writer.startTls({ cert: certs.cert, key: certs.key });
        serverResult.resolve("upgraded");
      } catch (error) {
        serverResult.resolve(error);
        await assertRejects(() => reader.read());
        await assertRejects(() => writer.waitClosed());
      }
    }, { hostname: "127.0.0.1", port: 0 });
    const { port } = server.addrs[0] as Deno.NetAddr;

    const [reader, writer] = await openConnection({ port });
    assertEquals(text(await reader.readline()), "OK\n");
    // A CA that did not sign the server certificate.
    const error = await assertRejects(() =>
      writer.startTls({ caCerts: [certs.otherCaCert], hostname: "localhost" })
    );
    assertInstanceOf(error, Error);
    assert(writer.isClosing());
    assertStrictEquals(await assertRejects(() => reader.read()), error);
    assertStrictEquals(
      await assertRejects(() => writer.waitClosed()),
      error,
    );
    await assertRejects(() => writer.drain());
    assertInstanceOf(await serverResult.promise, Error);
    await writer[Symbol.asyncDispose]();
  },
});

Deno.test({
  name:
    "StreamWriter.startTls() with bad options throws and leaves the plain connection working",
  async fn() {
    await withServer(echoLines, async (port) => {
      const [reader, writer] = await openConnection({ port });
      await assertRejects(
        () => writer.startTls({ serverSide: true }),
        TypeError,
      );
      // deno-lint-ignore no-explicit-any
      await assertRejects(() => writer.startTls(null as any), TypeError);
      assert(!writer.isClosing());
      writer.write(bytes("still plain\n"));
      assertEquals(text(await reader.readline()), "still plain\n");
      await writer[Symbol.asyncDispose]();
    });
  },
});

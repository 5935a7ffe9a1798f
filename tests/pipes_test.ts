// Copyright 2026 the denio authors. MIT license.
import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
  assertStrictEquals,
} from "@std/assert";
import {
  type BaseProtocol,
  type BufferedProtocol,
  connectReadPipe,
  connectWritePipe,
  type ReadTransport,
  type WriteTransport,
} from "../mod.ts";
import {
  byteSource,
  captureExceptions,
  concat,
  pattern,
  StreamRecorder,
  ticks,
  within,
} from "./_pipe_helpers.ts";

const encoder = new TextEncoder();

/** A write-pipe protocol that records its callbacks. */
class WriteRecorder implements BaseProtocol {
  events: string[] = [];
  transport: WriteTransport | undefined;
  readonly lost: PromiseWithResolvers<Error | null> = Promise.withResolvers<
    Error | null
  >();
  onPause: (() => void) | undefined;
  onResume: (() => void) | undefined;

  connectionMade(transport: WriteTransport): void {
    this.transport = transport;
    this.events.push("connectionMade");
  }
  pauseWriting(): void {
    this.events.push("pauseWriting");
    this.onPause?.();
  }
  resumeWriting(): void {
    this.events.push("resumeWriting");
    this.onResume?.();
  }
  connectionLost(error: Error | null): void {
    this.events.push(
      error === null ? "connectionLost(null)" : "connectionLost(error)",
    );
    this.lost.resolve(error);
  }
}

/** A sink that keeps what it is given and records close/abort. */
function collectingSink(): {
  stream: WritableStream<Uint8Array>;
  chunks: Uint8Array[];
  events: string[];
} {
  const chunks: Uint8Array[] = [];
  const events: string[] = [];
  const stream = new WritableStream<Uint8Array>({
    write(chunk) {
      chunks.push(chunk.slice());
    },
    close() {
      events.push("close");
    },
    abort() {
      events.push("abort");
    },
  });
  return { stream, chunks, events };
}

async function tempFileWith(data: Uint8Array): Promise<string> {
  const path = await Deno.makeTempFile({ prefix: "denio_pipe_" });
  await Deno.writeFile(path, data);
  return path;
}

Deno.test("connectReadPipe() reads a Deno.FsFile to EOF, then closes it", async () => {
  const data = pattern(200_000, 7);
  const path = await tempFileWith(data);
  try {
    const file = await Deno.open(path);
    const [transport, protocol] = await connectReadPipe(
      () => new StreamRecorder(),
      file,
    );
    assertStrictEquals(transport.getExtraInfo("pipe"), file);
    assertEquals(transport.getExtraInfo("nope", 5), 5);
    assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
    assertEquals(protocol.events, [
      "connectionMade",
      "dataReceived",
      "eofReceived",
      "connectionLost(null)",
    ]);
    assertEquals(concat(protocol.chunks), data);
    assert(transport.isClosing());
    // asyncio closes the pipe with the transport.
    await assertRejects(
      () => file.read(new Uint8Array(1)),
      Deno.errors.BadResource,
    );
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("connectReadPipe() reads an empty file as EOF only", async () => {
  const path = await tempFileWith(new Uint8Array(0));
  try {
    const [, protocol] = await connectReadPipe(
      () => new StreamRecorder(),
      await Deno.open(path),
    );
    await within(protocol.lost.promise, "connectionLost");
    assertEquals(protocol.events, [
      "connectionMade",
      "eofReceived",
      "connectionLost(null)",
    ]);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("connectReadPipe() reads a non-byte ReadableStream, splitting big chunks", async () => {
  // Chunks bigger than any read the core asks for exercise the leftover path.
  const chunks = [
    pattern(1, 1),
    pattern(700_000, 2),
    new Uint8Array(0),
    pattern(5, 3),
  ];
  const stream = ReadableStream.from(chunks);
  const [transport, protocol] = await connectReadPipe(
    () => new StreamRecorder(),
    stream,
  );
  assertStrictEquals(transport.getExtraInfo("pipe"), stream);
  assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
  assertEquals(protocol.events, [
    "connectionMade",
    "dataReceived",
    "eofReceived",
    "connectionLost(null)",
  ]);
  assertEquals(concat(protocol.chunks), concat(chunks));
  assertEquals(stream.locked, false);
});

Deno.test("connectReadPipe() reads a byte stream through a BYOB reader", async () => {
  const data = pattern(100_000, 4);
  let offset = 0;
  let byobReads = 0;
  const stream = new ReadableStream({
    type: "bytes",
    pull(controller) {
      const request = controller.byobRequest;
      if (offset >= data.length) {
        controller.close();
        request?.respond(0);
        return;
      }
      if (request === null) {
        controller.enqueue(data.slice(offset, offset + 1000));
        offset += 1000;
        return;
      }
      byobReads++;
      const view = new Uint8Array(
        request.view!.buffer,
        request.view!.byteOffset,
        request.view!.byteLength,
      );
      const n = Math.min(view.length, 3000, data.length - offset);
      view.set(data.subarray(offset, offset + n));
      offset += n;
      request.respond(n);
    },
  });
  const [, protocol] = await connectReadPipe(
    () => new StreamRecorder(),
    stream,
  );
  assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
  assertEquals(concat(protocol.chunks), data);
  assert(byobReads > 0, "the byte stream was read with a BYOB reader");
  assertEquals(stream.locked, false);
});

Deno.test("connectReadPipe() gives a Protocol bytes of its own from a byte stream, whatever the read sizes", async () => {
  // Reads alternate between filling the BYOB view and a few bytes: a full
  // read is handed over as it is, a small one copied out of a buffer that is
  // read into again. The protocol keeps every view it was given, uncopied,
  // so a buffer reused under a kept view would show in the result.
  const data = pattern(1_000_000, 7);
  const { stream, pulls } = byteSource(
    data,
    (pull) => pull % 3 === 0 ? 17 : Infinity,
  );
  const kept: Uint8Array[] = [];
  const lost = Promise.withResolvers<Error | null>();
  await connectReadPipe(() => ({
    dataReceived(bytes: Uint8Array) {
      kept.push(bytes);
    },
    connectionLost(error: Error | null) {
      lost.resolve(error);
    },
  }), stream);
  assertEquals(await within(lost.promise, "connectionLost"), null);
  assert(pulls() > 20, `the stream was read in many pulls (${pulls()})`);
  assert(kept.some((bytes) => bytes.length === 17), "small reads arrived");
  assertEquals(concat(kept), data);
});

Deno.test("connectReadPipe() feeds a BufferedProtocol from a stream", async () => {
  const data = pattern(50_000, 9);
  const buffer = new Uint8Array(4096);
  const got: Uint8Array[] = [];
  const events: string[] = [];
  const lost = Promise.withResolvers<Error | null>();
  const protocol: BufferedProtocol = {
    getBuffer(sizeHint) {
      assert(sizeHint > 0);
      return buffer;
    },
    bufferUpdated(nbytes) {
      got.push(buffer.slice(0, nbytes));
    },
    eofReceived() {
      events.push("eofReceived");
    },
    connectionLost(error) {
      events.push("connectionLost");
      lost.resolve(error);
    },
  };
  await connectReadPipe(() => protocol, ReadableStream.from([data]));
  assertEquals(await within(lost.promise, "connectionLost"), null);
  assertEquals(events, ["eofReceived", "connectionLost"]);
  assertEquals(concat(got), data);
});

Deno.test("connectReadPipe() reads a child's stdout", async () => {
  const child = new Deno.Command("sh", {
    args: ["-c", "printf 'hello from child'"],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const [transport, protocol] = await connectReadPipe(
    () => new StreamRecorder(),
    child.stdout,
  );
  assertStrictEquals(transport.getExtraInfo("pipe"), child.stdout);
  assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
  assertEquals(protocol.text(), "hello from child");
  assertEquals(protocol.events.at(-2), "eofReceived");
  assertEquals((await child.status).code, 0);
});

Deno.test("ReadTransport.pauseReading() holds data and EOF until resumeReading()", async () => {
  const stream = ReadableStream.from([encoder.encode("held")]);
  const [transport, protocol] = await connectReadPipe(() => {
    const recorder = new StreamRecorder();
    const made = recorder.connectionMade.bind(recorder);
    recorder.connectionMade = (t: ReadTransport) => {
      made(t);
      t.pauseReading();
    };
    return recorder;
  }, stream);
  assertEquals(transport.isReading(), false);
  await ticks(10);
  assertEquals(protocol.events, ["connectionMade"]);
  transport.resumeReading();
  assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
  assertEquals(protocol.events, [
    "connectionMade",
    "dataReceived",
    "eofReceived",
    "connectionLost(null)",
  ]);
  assertEquals(protocol.text(), "held");
});

Deno.test("ReadTransport.close() on a read pipe cancels the stream and releases it", async () => {
  const cancelled = Promise.withResolvers<unknown>();
  const stream = new ReadableStream<Uint8Array>({
    pull() {
      return new Promise(() => {}); // never produces
    },
    cancel(reason) {
      cancelled.resolve(reason);
    },
  });
  const [transport, protocol] = await connectReadPipe(
    () => new StreamRecorder(),
    stream,
  );
  await ticks(2);
  transport.close();
  transport.close(); // idempotent
  assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
  await within(cancelled.promise, "cancel()");
  assertEquals(protocol.events, ["connectionMade", "connectionLost(null)"]);
  assertEquals(stream.locked, false);
});

Deno.test("ReadTransport.close() on a child's stdout leaves no pending read", async () => {
  const child = new Deno.Command("sleep", {
    args: ["30"],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const [transport, protocol] = await connectReadPipe(
    () => new StreamRecorder(),
    child.stdout,
  );
  await ticks(2);
  transport.close();
  assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
  child.kill("SIGKILL");
  assertEquals((await child.status).signal, "SIGKILL");
});

Deno.test("connectReadPipe() reports a stream error to connectionLost and the exception handler", async () => {
  using seen = captureExceptions();
  const boom = new Error("source failed");
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode("a"));
      controller.error(boom);
    },
  });
  const [transport, protocol] = await connectReadPipe(
    () => new StreamRecorder(),
    stream,
  );
  assertStrictEquals(
    await within(protocol.lost.promise, "connectionLost"),
    boom,
  );
  assertEquals(protocol.events.at(-1), "connectionLost(error)");
  assertEquals(seen.length, 1);
  assertStrictEquals(seen[0]!.error, boom);
  assertStrictEquals(seen[0]!.transport, transport);
});

Deno.test("connectReadPipe() fails the transport on a chunk that is not a Uint8Array", async () => {
  using seen = captureExceptions();
  const stream = ReadableStream.from(["text" as unknown as Uint8Array]);
  const [, protocol] = await connectReadPipe(
    () => new StreamRecorder(),
    stream,
  );
  const error = await within(protocol.lost.promise, "connectionLost");
  assertInstanceOf(error, TypeError);
  assertEquals(seen.length, 1);
});

Deno.test("connectReadPipe() and connectWritePipe() reject bad input", async () => {
  await assertRejects(
    () => connectReadPipe(() => new StreamRecorder(), 42 as never),
    TypeError,
    "Cannot connect read pipe as pipe is not a ReadableStream",
  );
  await assertRejects(
    () => connectReadPipe(null as never, ReadableStream.from([])),
    TypeError,
    "protocolFactory is not a function",
  );
  await assertRejects(
    () => connectReadPipe(() => 1 as never, ReadableStream.from([])),
    TypeError,
    "did not return an object",
  );
  const locked = ReadableStream.from([]);
  const reader = locked.getReader();
  await assertRejects(
    () => connectReadPipe(() => new StreamRecorder(), locked),
    TypeError,
    "Cannot connect read pipe as the stream is locked",
  );
  reader.releaseLock();
  await assertRejects(
    () => connectWritePipe(() => ({}), new ReadableStream() as never),
    TypeError,
    "Cannot connect write pipe as pipe is not a WritableStream",
  );
  const { stream } = collectingSink();
  const writer = stream.getWriter();
  await assertRejects(
    () => connectWritePipe(() => ({}), stream),
    TypeError,
    "Cannot connect write pipe as the stream is locked",
  );
  writer.releaseLock();
  await assertRejects(
    () => connectWritePipe(() => ({}), { writable: "no" } as never),
    TypeError,
  );
});

Deno.test("connectWritePipe() writes a Deno.FsFile and close() flushes then closes it", async () => {
  const path = await Deno.makeTempFile({ prefix: "denio_pipe_" });
  try {
    const file = await Deno.open(path, { write: true });
    const [transport, protocol] = await connectWritePipe(
      () => new WriteRecorder(),
      file,
    );
    assertStrictEquals(transport.getExtraInfo("pipe"), file);
    assertEquals(transport.canWriteEof(), true);
    const data = pattern(300_000, 5);
    transport.write(data.subarray(0, 1000));
    transport.writelines([data.subarray(1000, 2000), data.subarray(2000)]);
    transport.close();
    assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
    assertEquals(protocol.events, [
      "connectionMade",
      "pauseWriting",
      "resumeWriting",
      "connectionLost(null)",
    ]);
    assertEquals(await Deno.readFile(path), data);
    assertEquals(transport.getWriteBufferSize(), 0);
    await assertRejects(
      () => file.write(new Uint8Array(1)),
      Deno.errors.BadResource,
    );
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("WriteTransport.writeEof() on a write pipe closes the stream, then connectionLost(null)", async () => {
  const { stream, chunks, events } = collectingSink();
  const [transport, protocol] = await connectWritePipe(
    () => new WriteRecorder(),
    stream,
  );
  transport.write(encoder.encode("one "));
  transport.write(encoder.encode("two"));
  transport.writeEof();
  assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
  assertEquals(new TextDecoder().decode(concat(chunks)), "one two");
  assertEquals(events, ["close"]);
  assertEquals(protocol.events, ["connectionMade", "connectionLost(null)"]);
  assertEquals(stream.locked, false);
  assert(transport.isClosing());
  let threw = false;
  try {
    transport.write(encoder.encode("late"));
  } catch {
    threw = true;
  }
  assert(threw, "write() after writeEof() throws");
});

Deno.test("WriteTransport.abort() on a write pipe aborts a write in flight", async () => {
  const started = Promise.withResolvers<void>();
  const aborted = Promise.withResolvers<void>();
  let finishWrite: (() => void) | undefined;
  const stream = new WritableStream<Uint8Array>({
    write() {
      started.resolve();
      return new Promise((resolve) => finishWrite = resolve);
    },
    abort() {
      aborted.resolve();
    },
  });
  const [transport, protocol] = await connectWritePipe(
    () => new WriteRecorder(),
    stream,
  );
  transport.write(encoder.encode("stuck"));
  await within(started.promise, "the sink's write()");
  transport.abort();
  assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
  finishWrite!();
  await within(aborted.promise, "the sink's abort()");
  assertEquals(stream.locked, false);
});

Deno.test("connectWritePipe() has flow control over a slow stream", async () => {
  const gates: (() => void)[] = [];
  let written = 0;
  const stream = new WritableStream<Uint8Array>({
    write(chunk) {
      return new Promise<void>((resolve) => {
        gates.push(() => {
          written += chunk.length;
          resolve();
        });
      });
    },
  });
  const [transport, protocol] = await connectWritePipe(
    () => new WriteRecorder(),
    stream,
  );
  transport.setWriteBufferLimits({ high: 1000 });
  transport.write(new Uint8Array(600));
  transport.write(new Uint8Array(600)); // 1200 > 1000: pause, synchronously
  assertEquals(protocol.events, ["connectionMade", "pauseWriting"]);
  // Let the sink accept chunk after chunk until the buffer drains to 250.
  for (let i = 0; i < 100 && !protocol.events.includes("resumeWriting"); i++) {
    await ticks(1);
    gates.shift()?.();
  }
  assertEquals(protocol.events, [
    "connectionMade",
    "pauseWriting",
    "resumeWriting",
  ]);
  assertEquals(written, 1200);
  transport.close();
  await within(protocol.lost.promise, "connectionLost");
});

Deno.test("connectWritePipe() gives connectionLost(error) when the reader cancels", async () => {
  using seen = captureExceptions();
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
  const [transport, protocol] = await connectWritePipe(
    () => new WriteRecorder(),
    writable,
  );
  await readable.cancel("reader gone");
  const error = await within(protocol.lost.promise, "connectionLost");
  assertInstanceOf(error, Deno.errors.BrokenPipe);
  assertEquals(error?.cause, "reader gone");
  assertEquals(protocol.events, ["connectionMade", "connectionLost(error)"]);
  assertEquals(seen.length, 0, "a reader leaving is not a bug to report");
  transport.write(encoder.encode("dropped")); // dropped without an error
  assertEquals(writable.locked, false);
});

Deno.test("connectWritePipe() to a child's stdin echoes through cat", async () => {
  const child = new Deno.Command("cat", {
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const [reader, readProtocol] = await connectReadPipe(
    () => new StreamRecorder(),
    child.stdout,
  );
  const [writer, writeProtocol] = await connectWritePipe(
    () => new WriteRecorder(),
    child.stdin,
  );
  assertStrictEquals(writer.getExtraInfo("pipe"), child.stdin);
  assertStrictEquals(reader.getExtraInfo("pipe"), child.stdout);
  const data = pattern(1_000_000, 11);
  writer.write(data);
  writer.writeEof();
  assertEquals(await within(writeProtocol.lost.promise, "stdin lost"), null);
  assertEquals(await within(readProtocol.lost.promise, "stdout lost"), null);
  assertEquals(concat(readProtocol.chunks), data);
  assertEquals((await child.status).code, 0);
});

Deno.test("connectWritePipe() gives connectionLost(BrokenPipe) when the child stops reading", async () => {
  using seen = captureExceptions();
  const child = new Deno.Command("head", {
    args: ["-c", "10"],
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const [transport, protocol] = await connectWritePipe(() => {
    const recorder = new WriteRecorder();
    // Keep writing whenever the buffer drains, until the pipe breaks.
    recorder.onResume = () => transport.write(new Uint8Array(65536));
    return recorder;
  }, child.stdin);
  transport.write(new Uint8Array(256 * 1024));
  const error = await within(protocol.lost.promise, "connectionLost");
  assertInstanceOf(error, Deno.errors.BrokenPipe);
  assertEquals(protocol.events.at(-1), "connectionLost(error)");
  assertEquals(seen.length, 0);
  assertEquals((await child.status).code, 0);
});

Deno.test("connectReadPipe(Deno.stdin) and connectWritePipe(Deno.stdout) work in a child", async () => {
  const script = await Deno.makeTempFile({
    prefix: "denio_stdio_",
    suffix: ".ts",
  });
  try {
    const mod = new URL("../mod.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { connectReadPipe, connectWritePipe } from ${JSON.stringify(mod)};
const [out] = await connectWritePipe(() => ({}), Deno.stdout);
const decoder = new TextDecoder();
const encoder = new TextEncoder();
await connectReadPipe(() => ({
  dataReceived(data) {
    out.write(encoder.encode(decoder.decode(data, { stream: true }).toUpperCase()));
  },
  eofReceived() {
    out.write(encoder.encode("<EOF>"));
    out.close();
  },
}), Deno.stdin);
`,
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-config", "--quiet", script],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stdout = new Response(child.stdout).text();
    const stderr = new Response(child.stderr).text();
    const writer = child.stdin.getWriter();
    await writer.write(encoder.encode("hello, "));
    await writer.write(encoder.encode("stdio pipes\n"));
    await writer.close();
    const status = await within(child.status, "the child to exit");
    assertEquals(await stderr, "");
    assertEquals(await stdout, "HELLO, STDIO PIPES\n<EOF>");
    assertEquals(status.code, 0);
  } finally {
    await Deno.remove(script);
  }
});

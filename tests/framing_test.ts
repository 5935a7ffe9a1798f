// Copyright 2026 the denio authors. MIT license.
// Framing protocols: every split of the input (one chunk, each single split
// point, byte by byte, seeded random chunkings) through the real stream
// transport (in memory) is compared with a simple reference parser run on
// the whole input; then limits, EOF inside a message, sending, pausing,
// throwing handlers, and a real TCP connection.

import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertStrictEquals,
  assertThrows,
} from "@std/assert";
import {
  type BufferedProtocol,
  ContentLengthProtocol,
  createConnection,
  createServer,
  type ExceptionContext,
  FramingError,
  LengthPrefixedProtocol,
  LineProtocol,
  setExceptionHandler,
} from "../mod.ts";
import { MemoryPeer, settle } from "../protocols/testing.ts";

const encoder = new TextEncoder();

function bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Latin-1 text of bytes: one char per byte, so any input round-trips. */
function latin1(data: Uint8Array): string {
  let out = "";
  for (const byte of data) out += String.fromCharCode(byte);
  return out;
}

function fromLatin1(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

// ------------------------------------------------------------------ events

/** One recorded handler callback; message bytes are kept as views. */
type Event =
  | ["made"]
  | ["msg", Uint8Array]
  | ["raw", Uint8Array]
  | ["eof"]
  | ["lost", string | null, string];

/** An event with its bytes as Latin-1 text, for comparison. */
type Plain = (string | null)[];

function plain(events: Event[]): Plain[] {
  return events.map((event) =>
    event.map((part) => part instanceof Uint8Array ? latin1(part) : part)
  );
}

function lostEvent(error: Error | null): Event {
  if (error === null) return ["lost", null, ""];
  const partial = error instanceof FramingError ? latin1(error.partial) : "";
  return ["lost", `${error.name}: ${error.message}`, partial];
}

/** A handler for any of the three framers that records every callback. */
function recorder(events: Event[]) {
  return {
    connectionMade: () => void events.push(["made"]),
    lineReceived: (line: Uint8Array) => void events.push(["msg", line]),
    frameReceived: (frame: Uint8Array) => void events.push(["msg", frame]),
    messageReceived: (body: Uint8Array) => void events.push(["msg", body]),
    bytesReceived: (data: Uint8Array) => void events.push(["raw", data]),
    eofReceived: () => void events.push(["eof"]),
    connectionLost: (error: Error | null) => void events.push(lostEvent(error)),
  };
}

/** What the reference parsers produce: the messages, then how it ended. */
interface Expected {
  messages: string[];
  /** null: clean EOF; else the FramingError message and partial bytes. */
  error: null | { message: string; partial: string };
}

function expectedEvents(expected: Expected): Plain[] {
  const out: Plain[] = [["made"]];
  for (const message of expected.messages) out.push(["msg", message]);
  if (expected.error === null) {
    out.push(["eof"], ["lost", null, ""]);
  } else {
    out.push([
      "lost",
      `FramingError: ${expected.error.message}`,
      expected.error.partial,
    ]);
  }
  return out;
}

// ------------------------------------------------------------------ splits

/** mulberry32: a small seeded PRNG. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Every way the tests cut an input into chunks. */
function* splits(
  input: Uint8Array,
  seeds = 12,
): Generator<[string, Uint8Array[]]> {
  yield ["whole", [input]];
  for (let k = 1; k < input.length; k++) {
    yield [`split at ${k}`, [input.subarray(0, k), input.subarray(k)]];
  }
  yield ["byte by byte", Array.from(input, (_, i) => input.subarray(i, i + 1))];
  for (let seed = 1; seed <= seeds; seed++) {
    const next = random(seed);
    const chunks: Uint8Array[] = [];
    let offset = 0;
    while (offset < input.length) {
      const size = 1 + Math.floor(next() * Math.min(40, input.length));
      chunks.push(input.subarray(offset, offset + size));
      offset += size;
    }
    yield [`random seed ${seed}`, chunks];
  }
}

/** Sends `chunks` then EOF to `protocol` over an in-memory transport. */
async function run(
  protocol: BufferedProtocol,
  chunks: Uint8Array[],
  events: Event[],
): Promise<Plain[]> {
  const peer = new MemoryPeer(protocol);
  for (const chunk of chunks) peer.send(chunk);
  peer.sendEof();
  await peer.lost;
  return plain(events);
}

async function checkAllSplits(
  input: Uint8Array,
  make: (events: Event[]) => BufferedProtocol,
  expected: Expected,
): Promise<number> {
  const want = expectedEvents(expected);
  let runs = 0;
  for (const [name, chunks] of splits(input)) {
    const events: Event[] = [];
    const got = await run(make(events), chunks, events);
    assertEquals(got, want, `${name} of ${JSON.stringify(latin1(input))}`);
    runs++;
  }
  return runs;
}

// -------------------------------------------------------- reference parsers

/** Whether `data` has `pattern` at `at`. */
function matchesAt(data: string, pattern: string, at: number): boolean {
  return data.slice(at, at + pattern.length) === pattern;
}

/** Where a delimiter could still start in an unterminated tail. */
function earliestPartial(tail: string, delimiter: string): number {
  for (let j = 0; j < tail.length; j++) {
    if (delimiter.startsWith(tail.slice(j))) return j;
  }
  return tail.length;
}

function referenceLines(
  input: string,
  delimiter: string,
  max: number,
): Expected {
  const messages: string[] = [];
  const tooLong = {
    message:
      `Cannot receive line as it is longer than maxLineLength (${max} bytes): current value is at least ${
        max + 1
      } bytes`,
    partial: "",
  };
  let pos = 0;
  for (;;) {
    let i = pos;
    while (i < input.length && !matchesAt(input, delimiter, i)) i++;
    if (i + delimiter.length <= input.length) {
      if (i - pos > max) return { messages, error: tooLong };
      messages.push(input.slice(pos, i));
      pos = i + delimiter.length;
      continue;
    }
    const tail = input.slice(pos);
    if (earliestPartial(tail, delimiter) > max) {
      return { messages, error: tooLong };
    }
    if (tail.length === 0) return { messages, error: null };
    return {
      messages,
      error: {
        message:
          `Cannot receive line as the connection ended in the middle of it: current value is ${tail.length} bytes`,
        partial: tail,
      },
    };
  }
}

function referenceFrames(
  input: string,
  headerSize: number,
  max: number,
): Expected {
  const messages: string[] = [];
  let pos = 0;
  const incomplete = (): Expected => ({
    messages,
    error: {
      message:
        `Cannot receive frame as the connection ended in the middle of it: current value is ${
          input.length - pos
        } bytes`,
      partial: input.slice(pos),
    },
  });
  while (pos < input.length) {
    if (input.length - pos < headerSize) return incomplete();
    let length = 0;
    for (let i = 0; i < headerSize; i++) {
      length = length * 256 + input.charCodeAt(pos + i);
    }
    if (length > max) {
      return {
        messages,
        error: {
          message:
            `Cannot receive frame as its length is over maxFrameSize (${max} bytes): current value is ${length} bytes`,
          partial: "",
        },
      };
    }
    if (input.length - pos < headerSize + length) return incomplete();
    messages.push(input.slice(pos + headerSize, pos + headerSize + length));
    pos += headerSize + length;
  }
  return { messages, error: null };
}

/** The LSP reference: only the cases the tests feed it. */
function referenceContentLength(
  input: string,
  maxHeader: number,
  maxBody: number,
): Expected {
  const messages: string[] = [];
  let pos = 0;
  const fail = (message: string, partial = ""): Expected => ({
    messages,
    error: { message, partial },
  });
  while (pos < input.length) {
    const end = input.indexOf("\r\n\r\n", pos);
    const blockEnd = end < 0
      ? pos + earliestPartial(input.slice(pos), "\r\n\r\n") + 4
      : end + 4;
    if (blockEnd - pos > maxHeader) {
      return fail(
        `Cannot receive message as its header is longer than maxHeaderSize (${maxHeader} bytes): current value is at least ${
          maxHeader + 1
        } bytes`,
      );
    }
    if (end < 0) {
      return fail(
        `Cannot receive message as the connection ended in the middle of it: current value is ${
          input.length - pos
        } bytes`,
        input.slice(pos),
      );
    }
    const match = /(?:^|\r\n)content-length:[ \t]*([0-9]+)[ \t]*(?:\r\n|$)/i
      .exec(input.slice(pos, end));
    if (match === null) throw new Error("reference: no Content-Length");
    const length = Number(match[1]);
    if (length > maxBody) {
      return fail(
        `Cannot receive message as its Content-Length is over maxBodySize (${maxBody} bytes): current value is ${
          match[1]
        }`,
      );
    }
    if (input.length < end + 4 + length) {
      return fail(
        `Cannot receive message as the connection ended in the middle of it: current value is ${
          input.length - pos
        } bytes`,
        input.slice(pos),
      );
    }
    messages.push(input.slice(end + 4, end + 4 + length));
    pos = end + 4 + length;
  }
  return { messages, error: null };
}

// ------------------------------------------------------------ line splits

const LINE_CASES: { input: string; delimiter: string; max: number }[] = [
  { input: "hello\nworld\n", delimiter: "\n", max: 100 },
  { input: "\n\nab\n\n", delimiter: "\n", max: 100 },
  { input: "one\r\ntwo\r\n\r\nthree\r\n", delimiter: "\r\n", max: 100 },
  { input: "cr\rin\r\nline\r\r\n", delimiter: "\r\n", max: 100 },
  { input: "trailing\npartial", delimiter: "\n", max: 100 },
  { input: "a\r\nb\r", delimiter: "\r\n", max: 100 },
  { input: "abc\nabcd\nabcde\n", delimiter: "\n", max: 4 },
  { input: "abcd\nabcd", delimiter: "\n", max: 4 },
  { input: "ok\r\nabcd\r\n", delimiter: "\r\n", max: 3 },
  { input: "ok\r\nabc\r", delimiter: "\r\n", max: 3 },
  // Overlapping delimiter prefixes: "aab" inside "aaab".
  { input: "xaaabyaabaab", delimiter: "aab", max: 10 },
  { input: "12--3---4--", delimiter: "--", max: 10 },
  { input: "ab\x00\xff\x00cd\x00\xff\x00", delimiter: "\x00\xff\x00", max: 2 },
];

Deno.test("LineProtocol delivers the reference parser's lines for every split of the input", async () => {
  let runs = 0;
  for (const { input, delimiter, max } of LINE_CASES) {
    runs += await checkAllSplits(
      fromLatin1(input),
      (events) =>
        new LineProtocol(recorder(events), {
          delimiter: fromLatin1(delimiter),
          maxLineLength: max,
        }),
      referenceLines(input, delimiter, max),
    );
  }
  assert(runs > 300, `only ${runs} runs`);
});

Deno.test("LineProtocol matches the reference parser on seeded random input", async () => {
  const next = random(7);
  for (let round = 0; round < 40; round++) {
    const alphabet = "ab\r\n";
    let input = "";
    const length = 1 + Math.floor(next() * 60);
    for (let i = 0; i < length; i++) {
      input += alphabet[Math.floor(next() * alphabet.length)];
    }
    const delimiter = round % 2 === 0 ? "\n" : "\r\n";
    const max = 1 + Math.floor(next() * 8);
    const expected = referenceLines(input, delimiter, max);
    const want = expectedEvents(expected);
    // Whole, byte by byte and three random chunkings.
    const cuts = [...splits(fromLatin1(input), 3)].filter(([name]) =>
      !name.startsWith("split at")
    );
    for (const [name, chunks] of cuts) {
      const events: Event[] = [];
      const got = await run(
        new LineProtocol(recorder(events), { delimiter, maxLineLength: max }),
        chunks,
        events,
      );
      assertEquals(got, want, `${name} of ${JSON.stringify(input)}`);
    }
  }
});

Deno.test("LineProtocol.feed() without a transport matches the reference parser and throws FramingError", () => {
  for (const { input, delimiter, max } of LINE_CASES) {
    const expected = referenceLines(input, delimiter, max);
    for (const [name, chunks] of splits(fromLatin1(input), 2)) {
      const lines: string[] = [];
      const framer = new LineProtocol({
        lineReceived: (line) => void lines.push(latin1(line)),
      }, { delimiter: fromLatin1(delimiter), maxLineLength: max });
      let error: Error | null = null;
      try {
        for (const chunk of chunks) framer.feed(chunk);
        framer.eofReceived();
      } catch (thrown) {
        error = thrown as Error;
      }
      assertEquals(lines, expected.messages, name);
      assertEquals(
        error === null ? null : {
          message: error.message,
          partial: latin1((error as FramingError).partial),
        },
        expected.error,
        name,
      );
    }
  }
});

Deno.test("LineProtocol closes as soon as a line overruns maxLineLength, before EOF", async () => {
  const events: Event[] = [];
  const peer = new MemoryPeer(
    new LineProtocol(recorder(events), { maxLineLength: 8 }),
  );
  peer.send("fine\n123456789");
  await peer.lost;
  assertEquals(plain(events), [
    ["made"],
    ["msg", "fine"],
    [
      "lost",
      "FramingError: Cannot receive line as it is longer than maxLineLength (8 bytes): current value is at least 9 bytes",
      "",
    ],
  ]);
  assert(peer.closed);
  // Later bytes are not buffered or delivered.
  peer.send("more\n");
  await settle();
  assertEquals(events.length, 3);
});

Deno.test("LineProtocol delivers lines as views of its receive buffer that later reads never overwrite", async () => {
  const events: Event[] = [];
  const peer = new MemoryPeer(new LineProtocol(recorder(events)));
  peer.send("first\nsecond\nthi");
  await settle();
  const [, first, second] = events as [Event, ["msg", Uint8Array], [
    "msg",
    Uint8Array,
  ]];
  assertStrictEquals(first[1].buffer, second[1].buffer);
  // Enough traffic to move on to new slabs several times.
  for (let i = 0; i < 50; i++) peer.send(`rd\n${"x".repeat(5000)}\n`);
  peer.sendEof();
  await peer.lost;
  assertEquals(latin1(first[1]), "first");
  assertEquals(latin1(second[1]), "second");
  const lines = plain(events).filter((e) => e[0] === "msg").map((e) => e[1]);
  assertEquals(lines.slice(0, 3), ["first", "second", "third"]);
  assertEquals(lines.length, 3 + 2 * 49 + 1);
  assertEquals(lines[3], "x".repeat(5000));
  assertEquals(lines[4], "rd");
});

Deno.test("LineProtocol.expectBytes() delivers the next n bytes raw, then line mode resumes", async () => {
  // A RESP-like stream: "$n" announces n raw bytes plus CRLF.
  const input = "$5\r\nab\r\nc\r\nplain\r\n$0\r\n\r\n$3\r\n\n\n\n\r\nend\r\n";
  const want = [
    ["raw", "ab\r\nc\r\n"],
    ["msg", "plain"],
    ["raw", "\r\n"],
    ["raw", "\n\n\n\r\n"],
    ["msg", "end"],
  ];
  for (const [name, chunks] of splits(fromLatin1(input))) {
    const events: Event[] = [];
    const handler = recorder(events);
    const got = await run(
      new LineProtocol({
        ...handler,
        lineReceived(line, lines) {
          if (line[0] === 0x24) {
            lines.expectBytes(Number(latin1(line.subarray(1))) + 2);
          } else handler.lineReceived(line);
        },
      }, { delimiter: "\r\n" }),
      chunks,
      events,
    );
    assertEquals(got, [["made"], ...want, ["eof"], ["lost", null, ""]], name);
  }
});

Deno.test("LineProtocol reports EOF inside expected raw bytes as a FramingError with the partial bytes", async () => {
  const events: Event[] = [];
  const peer = new MemoryPeer(
    new LineProtocol({
      ...recorder(events),
      lineReceived: (_line, lines) => lines.expectBytes(10),
    }),
  );
  peer.send("go\n12345");
  peer.sendEof();
  await peer.lost;
  assertEquals(plain(events).at(-1), [
    "lost",
    "FramingError: Cannot receive bytes as the connection ended before all 10 arrived: current value is 5 bytes",
    "12345",
  ]);
});

// ----------------------------------------------------- length-prefixed

function frame(payload: string, headerSize: number): string {
  let header = "";
  let length = payload.length;
  for (let i = 0; i < headerSize; i++) {
    header = String.fromCharCode(length & 0xff) + header;
    length = Math.floor(length / 256);
  }
  return header + payload;
}

Deno.test("LengthPrefixedProtocol delivers the reference parser's frames for every split, for 1, 2 and 4-byte headers", async () => {
  let runs = 0;
  for (const headerSize of [1, 2, 4] as const) {
    const f = (payload: string) => frame(payload, headerSize);
    const cases = [
      {
        input: f("hello") + f("") + f("\n\x00\xff") + f("x".repeat(20)),
        max: 100,
      },
      { input: f("ok") + f("too long"), max: 4 },
      { input: f("ok") + f("cut short").slice(0, headerSize + 3), max: 100 },
      { input: f("ok") + f("x").slice(0, headerSize - 1), max: 100 },
      {
        input: f("a") + "\xff\xff\xff\xff".slice(0, headerSize) + "zz",
        max: 200,
      },
    ];
    for (const { input, max } of cases) {
      runs += await checkAllSplits(
        fromLatin1(input),
        (events) =>
          new LengthPrefixedProtocol(recorder(events), {
            headerSize,
            maxFrameSize: max,
          }),
        referenceFrames(input, headerSize, max),
      );
    }
  }
  assert(runs > 300, `only ${runs} runs`);
});

Deno.test("LengthPrefixedProtocol refuses an oversized length at once, buffering nothing of the frame", async () => {
  const events: Event[] = [];
  const framer = new LengthPrefixedProtocol(recorder(events), {
    maxFrameSize: 1024,
  });
  const peer = new MemoryPeer(framer);
  peer.send(fromLatin1("\x7f\xff\xff\xffpayload"));
  await peer.lost;
  assertEquals(framer.pendingSize, 0);
  assertEquals(plain(events), [
    ["made"],
    [
      "lost",
      "FramingError: Cannot receive frame as its length is over maxFrameSize (1024 bytes): current value is 2147483647 bytes",
      "",
    ],
  ]);
});

Deno.test("LengthPrefixedProtocol.sendFrame() writes a big-endian header and the payload", async () => {
  for (const headerSize of [1, 2, 4] as const) {
    const framer = new LengthPrefixedProtocol({}, { headerSize });
    const peer = new MemoryPeer(framer);
    await settle();
    framer.sendFrame("abc");
    framer.sendFrame(new Uint8Array(0));
    framer.sendFrame(new Uint8Array(255).fill(7));
    await settle();
    assertEquals(
      latin1(peer.written()),
      frame("abc", headerSize) + frame("", headerSize) +
        frame("\x07".repeat(255), headerSize),
    );
    assertThrows(
      () => framer.sendFrame(new Uint8Array(framer.maxFrameSize + 1)),
      RangeError,
      "Cannot send frame as it is longer than maxFrameSize",
    );
    framer.transport!.close();
    await peer.lost;
  }
});

Deno.test("LengthPrefixedProtocol rejects bad options", () => {
  assertThrows(
    () => new LengthPrefixedProtocol({}, { headerSize: 3 as 4 }),
    RangeError,
    "headerSize is not 1, 2 or 4: current value is 3",
  );
  assertThrows(
    () => new LengthPrefixedProtocol({}, { headerSize: 1, maxFrameSize: 256 }),
    RangeError,
    "maxFrameSize is over what a 1-byte header holds (255)",
  );
  assertThrows(
    () => new LengthPrefixedProtocol({}, { maxFrameSize: 0 }),
    RangeError,
    "maxFrameSize is not a positive integer: current value is 0",
  );
  assertThrows(
    () => new LengthPrefixedProtocol(null as unknown as object),
    TypeError,
    "handler is not an object",
  );
  assertEquals(
    new LengthPrefixedProtocol({}, { headerSize: 2 }).maxFrameSize,
    65535,
  );
});

// ------------------------------------------------------ Content-Length

function lsp(body: string, extra = ""): string {
  return `Content-Length: ${body.length}\r\n${extra}\r\n${body}`;
}

Deno.test("ContentLengthProtocol delivers the reference parser's messages for every split", async () => {
  const cases = [
    {
      input: lsp('{"jsonrpc":"2.0"}') + lsp("") +
        lsp(
          "a\r\n\r\nb",
          "Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n",
        ),
      maxHeader: 8192,
      maxBody: 1000,
    },
    {
      input: "content-length:3\r\n\r\nabc" +
        "Content-Type: x\r\nCONTENT-LENGTH:  2 \r\n\r\nde",
      maxHeader: 8192,
      maxBody: 1000,
    },
    { input: lsp("ok") + lsp("too large"), maxHeader: 8192, maxBody: 5 },
    {
      input: lsp("ok") + lsp("body", "X-Long: " + "v".repeat(40) + "\r\n"),
      maxHeader: 40,
      maxBody: 100,
    },
    {
      input: lsp("ok") + "Content-Length: 10\r\n\r\nshort",
      maxHeader: 100,
      maxBody: 100,
    },
    {
      input: lsp("ok") + "Content-Length: 10\r\n\r",
      maxHeader: 100,
      maxBody: 100,
    },
  ];
  let runs = 0;
  for (const { input, maxHeader, maxBody } of cases) {
    runs += await checkAllSplits(
      fromLatin1(input),
      (events) =>
        new ContentLengthProtocol(recorder(events), {
          maxHeaderSize: maxHeader,
          maxBodySize: maxBody,
        }),
      referenceContentLength(input, maxHeader, maxBody),
    );
  }
  assert(runs > 300, `only ${runs} runs`);
});

Deno.test("ContentLengthProtocol passes the parsed headers, names matched case-insensitively", async () => {
  const got: [string, string | null, string | null][] = [];
  const peer = new MemoryPeer(
    new ContentLengthProtocol({
      messageReceived: (body, _framer, headers) =>
        void got.push([
          latin1(body),
          headers.get("content-length"),
          headers.get("Content-Type"),
        ]),
    }),
  );
  peer.send("content-LENGTH: 2\r\ncontent-type: text/plain\r\n\r\nhi");
  peer.send(lsp("yo"));
  peer.sendEof();
  await peer.lost;
  assertEquals(got, [["hi", "2", "text/plain"], ["yo", "2", null]]);
});

Deno.test("ContentLengthProtocol closes with a clear FramingError on a malformed header", async () => {
  const cases: [string, string][] = [
    [
      "Content-Length: 12x\r\n\r\n",
      'Cannot receive message as Content-Length is not a decimal integer: current value is "12x"',
    ],
    [
      "Content-Length: -1\r\n\r\n",
      'Cannot receive message as Content-Length is not a decimal integer: current value is "-1"',
    ],
    [
      "Content-Type: text/plain\r\n\r\n",
      'Cannot receive message as it has no Content-Length header: current value is "Content-Type: text/plain"',
    ],
    [
      "Content-Length 5\r\n\r\nhello",
      'Cannot receive message as a header line is not "Name: value": current value is "Content-Length 5"',
    ],
    [
      "\r\n\r\n",
      'Cannot receive message as a header line is not "Name: value": current value is ""',
    ],
    [
      "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
      'Cannot receive message as Content-Length appears twice with different values: current value is "1" and "2"',
    ],
  ];
  for (const [input, message] of cases) {
    const events: Event[] = [];
    const peer = new MemoryPeer(
      new ContentLengthProtocol(recorder(events)),
    );
    peer.send(lsp("fine") + input);
    await peer.lost;
    assertEquals(plain(events), [
      ["made"],
      ["msg", "fine"],
      ["lost", `FramingError: ${message}`, ""],
    ], input);
  }
});

Deno.test("ContentLengthProtocol.sendMessage() writes the LSP framing with extra headers", async () => {
  const framer = new ContentLengthProtocol();
  assertThrows(
    () => framer.sendMessage("x"),
    Error,
    "Cannot send message as the protocol is not connected",
  );
  const peer = new MemoryPeer(framer);
  await settle();
  framer.sendMessage('{"id":1}');
  framer.sendMessage(bytes("é"), { "Content-Type": "application/json" });
  await settle();
  assertEquals(
    peer.writtenText(),
    'Content-Length: 8\r\n\r\n{"id":1}' +
      "Content-Length: 2\r\nContent-Type: application/json\r\n\r\né",
  );
  assertThrows(
    () => framer.sendMessage("x", { "X-Bad": "a\r\nb" }),
    TypeError,
    "header value is not valid",
  );
  assertThrows(
    () => framer.sendMessage("x", { "content-length": "9" }),
    TypeError,
    "headers sets Content-Length",
  );
  assertThrows(
    () => framer.sendMessage(42 as unknown as string),
    TypeError,
    "data is not a Uint8Array or string: current value is 42",
  );
  framer.transport!.close();
  await peer.lost;
});

// ------------------------------------------------------------- common

Deno.test("LineProtocol.sendLine() writes the line and the delimiter; it needs a connection", async () => {
  const framer = new LineProtocol({}, { delimiter: "\r\n" });
  assertThrows(
    () => framer.sendLine("early"),
    Error,
    "Cannot send line as the protocol is not connected: current value is no transport",
  );
  const peer = new MemoryPeer(framer);
  await settle();
  framer.sendLine("one");
  framer.sendLine(bytes("two"));
  await settle();
  assertEquals(peer.writtenText(), "one\r\ntwo\r\n");
  // Both lines left in one write.
  assertEquals(peer.writes().length, 1);
  framer.transport!.close();
  await peer.lost;
  framer.sendLine("dropped after close");
});

Deno.test("LineProtocol rejects bad options", () => {
  assertThrows(
    () => new LineProtocol({}, { delimiter: "" }),
    RangeError,
    "Cannot create line protocol as delimiter is empty: current value is 0 bytes",
  );
  assertThrows(
    () => new LineProtocol({}, { delimiter: 10 as unknown as string }),
    TypeError,
    "data is not a Uint8Array or string: current value is 10",
  );
  assertThrows(
    () => new LineProtocol({}, { maxLineLength: 1.5 }),
    RangeError,
    "maxLineLength is not a positive integer: current value is 1.5",
  );
  assertThrows(
    () => new LineProtocol({}, { maxLineLength: "9" as unknown as number }),
    TypeError,
    'maxLineLength is not a number: current value is "9"',
  );
  const lines = new LineProtocol();
  assertThrows(() => lines.expectBytes(-1), RangeError, "current value is -1");
  assertThrows(() => lines.feed("x" as unknown as Uint8Array), TypeError);
  assertEquals(lines.maxLineLength, 65536);
  assertEquals(lines.delimiter, bytes("\n"));
});

Deno.test("LineProtocol.pauseReading() holds lines already received until resumeReading()", async () => {
  const events: Event[] = [];
  const handler = recorder(events);
  const framer = new LineProtocol({
    ...handler,
    lineReceived(line, lines) {
      handler.lineReceived(line);
      if (latin1(line) === "a") lines.pauseReading();
    },
  });
  const peer = new MemoryPeer(framer);
  peer.send("a\nb\nc\n");
  peer.send("d\n");
  peer.sendEof();
  await settle();
  assertEquals(plain(events), [["made"], ["msg", "a"]]);
  assert(!framer.transport!.isReading());
  assertEquals(framer.pendingSize, 4);
  framer.resumeReading();
  await peer.lost;
  assertEquals(plain(events), [
    ["made"],
    ["msg", "a"],
    ["msg", "b"],
    ["msg", "c"],
    ["msg", "d"],
    ["eof"],
    ["lost", null, ""],
  ]);
});

Deno.test("LineProtocol stops delivering lines once its transport is closing", async () => {
  const events: Event[] = [];
  const handler = recorder(events);
  const peer = new MemoryPeer(
    new LineProtocol({
      ...handler,
      lineReceived(line, lines) {
        handler.lineReceived(line);
        lines.transport!.close();
      },
    }),
  );
  peer.send("first\nsecond\n");
  await peer.lost;
  assertEquals(plain(events), [["made"], ["msg", "first"], [
    "lost",
    null,
    "",
  ]]);
});

Deno.test("LineProtocol eofReceived() returning true keeps the write side open", async () => {
  const framer = new LineProtocol({
    eofReceived(lines) {
      lines.sendLine("bye");
      queueMicrotask(() => lines.transport!.close());
      return true;
    },
  });
  const peer = new MemoryPeer(framer);
  peer.sendEof();
  await peer.lost;
  assertEquals(peer.writtenText(), "bye\n");
  assert(peer.eof);
});

Deno.test("A throwing lineReceived is fatal: exception handler, then connectionLost(error) once", async () => {
  const contexts: ExceptionContext[] = [];
  setExceptionHandler((context) => void contexts.push(context));
  try {
    const boom = new Error("boom");
    const lost: (Error | null)[] = [];
    const framer = new LineProtocol({
      lineReceived() {
        throw boom;
      },
      connectionLost: (error) => void lost.push(error),
    });
    const peer = new MemoryPeer(framer);
    peer.send("x\ny\n");
    await peer.lost;
    assertEquals(lost, [boom]);
    assertEquals(contexts.length, 1);
    assertStrictEquals(contexts[0]!.error, boom);
    assertStrictEquals(contexts[0]!.protocol, framer);
    assertEquals(
      contexts[0]!.message,
      "Fatal error: protocol.bufferUpdated() call failed",
    );
  } finally {
    setExceptionHandler(null);
  }
});

Deno.test("A framer forwards pauseWriting and resumeWriting to its handler", async () => {
  const events: string[] = [];
  const framer = new LengthPrefixedProtocol({
    pauseWriting: () => void events.push("pause"),
    resumeWriting: () => void events.push("resume"),
  });
  const peer = new MemoryPeer(framer, { capacity: 1000 });
  await settle();
  peer.pauseReading();
  framer.sendFrame(new Uint8Array(100_000));
  assertEquals(events, ["pause"]);
  peer.resumeReading();
  await settle();
  assertEquals(events, ["pause", "resume"]);
  assertEquals(peer.written().length, 100_004);
  framer.transport!.close();
  await peer.lost;
});

Deno.test("Framers carry 1 MiB messages over real TCP intact", async () => {
  const size = 1024 * 1024;
  const payload = new Uint8Array(size);
  for (let i = 0; i < size; i++) payload[i] = (i * 31) & 0xff;
  const received: Uint8Array[] = [];
  const done = Promise.withResolvers<void>();
  await using server = await createServer(() =>
    new LengthPrefixedProtocol({
      frameReceived(frame, framer) {
        framer.sendFrame(frame); // echo: the view goes out unchanged
      },
    }, { maxFrameSize: 2 * size }), { hostname: "127.0.0.1", port: 0 });
  const { port } = server.addrs[0] as Deno.NetAddr;
  const [transport] = await createConnection(() =>
    new LengthPrefixedProtocol({
      frameReceived(frame) {
        received.push(frame);
        if (received.length === 3) done.resolve();
      },
    }, { maxFrameSize: 2 * size }), { port });
  const framer = transport.getProtocol() as LengthPrefixedProtocol;
  framer.sendFrame(payload);
  framer.sendFrame("small");
  framer.sendFrame(payload.subarray(1));
  await done.promise;
  transport.close();
  assertEquals(received[0]!.length, size);
  assertEquals(received[0], payload);
  assertEquals(latin1(received[1]!), "small");
  assertEquals(received[2], payload.subarray(1));
});

Deno.test("FramingError has a name, a partial and a cause", () => {
  const cause = new Error("inner");
  const error = new FramingError("Cannot x as y: current value is z", {
    partial: bytes("ab"),
    cause,
  });
  assertInstanceOf(error, Error);
  assertEquals(error.name, "FramingError");
  assertEquals(error.partial, bytes("ab"));
  assertStrictEquals(error.cause, cause);
  assertEquals(concat([new FramingError("m").partial]).length, 0);
});

Deno.test("A framer with writeTransport reads one transport and sends on another", async () => {
  const output = new MemoryPeer({});
  const input = new MemoryPeer(
    new ContentLengthProtocol({
      messageReceived: (body, framer) => framer.sendMessage(body.toReversed()),
    }, { writeTransport: output.transport }),
  );
  input.send(lsp("abc"));
  input.sendEof();
  await input.lost;
  await settle();
  assertEquals(input.writtenText(), "");
  assertEquals(output.writtenText(), lsp("cba"));
  output.transport.close();
  await output.lost;
  assertThrows(
    () => new LineProtocol({}, { writeTransport: {} as never }),
    TypeError,
    "Cannot create line protocol as writeTransport is not a write transport: current value is an object",
  );
});

// Copyright 2026 the denio authors. MIT license.
// Seeded fuzzing of the framing protocols (LineProtocol with raw mode,
// LengthPrefixedProtocol, ContentLengthProtocol) and of StreamReader: random
// streams (well-formed, malformed, plain random bytes) fed in random splits,
// both through feed() and through a real transport (MemoryPeer), compared
// with small reference parsers written from the documented rules. No crash,
// the same messages and the same failure, the buffered bytes bounded by the
// limits, and every delivered view still intact at the end.
//
// DENIO_FUZZ_SEED and DENIO_FUZZ_ITERATIONS change the run; a failure prints
// the seed and iteration that reproduce it.

import { assert, assertEquals } from "@std/assert";
import {
  ContentLengthProtocol,
  FramingError,
  IncompleteReadError,
  LengthPrefixedProtocol,
  LimitOverrunError,
  LineProtocol,
  StreamReader,
} from "../mod.ts";
import { MemoryPeer } from "../protocols/testing.ts";
import {
  concat,
  envInt,
  mulberry32,
  randomBytes,
  randomInt,
  randomSplits,
  rss,
  within,
} from "./_reliability_helpers.ts";

const SEED = envInt("DENIO_FUZZ_SEED", 0x5eed);
const ITERATIONS = envInt("DENIO_FUZZ_ITERATIONS", 3000);
const PEER_ITERATIONS = Math.max(1, Math.floor(ITERATIONS / 4));
const RSS_GROWTH_LIMIT = 128 * 1024 * 1024;

const encoder = new TextEncoder();

/** What a parse produced: the messages, then a failure kind or null. */
interface Outcome {
  messages: Uint8Array[];
  error: string | null;
  partial?: Uint8Array;
}

/** Shows an outcome compactly for assertion messages. */
function show(outcome: Outcome): string {
  return JSON.stringify({
    messages: outcome.messages.map((m) => m.length),
    error: outcome.error,
    partial: outcome.partial?.length,
  });
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function indexOfBytes(data: Uint8Array, sep: Uint8Array, from: number): number {
  outer: for (let i = from; i + sep.length <= data.length; i++) {
    for (let j = 0; j < sep.length; j++) {
      if (data[i + j] !== sep[j]) continue outer;
    }
    return i;
  }
  return -1;
}

function assertSameOutcome(
  actual: Outcome,
  expected: Outcome,
  where: string,
): void {
  const detail = `${where}\nactual   ${show(actual)}\nexpected ${
    show(expected)
  }`;
  assertEquals(actual.error, expected.error, detail);
  assertEquals(actual.messages.length, expected.messages.length, detail);
  actual.messages.forEach((message, i) =>
    assert(sameBytes(message, expected.messages[i]!), `message ${i}: ${detail}`)
  );
  if (expected.partial !== undefined) {
    assert(
      actual.partial !== undefined &&
        sameBytes(actual.partial, expected.partial),
      `partial: ${detail}`,
    );
  }
}

/** Counts outcomes, so that a run that tests nothing fails. */
class Tally {
  readonly kinds: Record<string, number> = {};
  messages = 0;

  add(outcome: Outcome): void {
    const kind = outcome.error ?? "clean";
    this.kinds[kind] = (this.kinds[kind] ?? 0) + 1;
    this.messages += outcome.messages.length;
  }

  /** Prints the tally and checks it covers `kinds` and some messages. */
  check(kinds: string[], minMessages: number): void {
    console.log(
      `messages ${this.messages}, outcomes ${JSON.stringify(this.kinds)}`,
    );
    for (const kind of kinds) {
      assert((this.kinds[kind] ?? 0) > 0, `no run ended with ${kind}`);
    }
    assert(this.messages >= minMessages, `only ${this.messages} messages`);
  }
}

/** Random chunking: a maximum piece size picked per iteration. */
function split(rand: () => number, data: Uint8Array): Uint8Array[] {
  const sizes = [1, 2, 3, 7, 16, 100, 1000, 70_000];
  const max = sizes[randomInt(rand, 0, sizes.length - 1)]!;
  return randomSplits(rand, data, max);
}

/** Bytes from a small alphabet that makes delimiters and digits likely. */
function textish(rand: () => number, n: number, extra: string): Uint8Array {
  const alphabet = encoder.encode(`ab$0123456789: ${extra}`);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = rand() < 0.03
      ? randomInt(rand, 0, 255)
      : alphabet[randomInt(rand, 0, alphabet.length - 1)]!;
  }
  return out;
}

/**
 * The earliest index of `data` from which the rest is a prefix of `delimiter`
 * (where a delimiter may still start), or `data.length`.
 */
function terminatorStart(data: Uint8Array, delimiter: Uint8Array): number {
  for (let i = 0; i < data.length; i++) {
    const tail = data.subarray(i);
    if (
      tail.length < delimiter.length &&
      sameBytes(tail, delimiter.subarray(0, tail.length))
    ) {
      return i;
    }
  }
  return data.length;
}

// ------------------------------------------------------------------- lines

interface LineCase {
  delimiter: Uint8Array;
  max: number;
  stream: Uint8Array;
}

const RAW_LINE = /^\$([0-9]{1,3})$/;

function rawCount(line: Uint8Array): number {
  if (line.length > 4 || line[0] !== 0x24) return -1;
  const match = RAW_LINE.exec(String.fromCharCode(...line));
  return match ? Number(match[1]) : -1;
}

function genLineCase(rand: () => number): LineCase {
  const delimiters = ["\n", "\r\n", "\0", "abc", "aab"];
  const delimiter = encoder.encode(
    delimiters[randomInt(rand, 0, delimiters.length - 1)]!,
  );
  const max = randomInt(rand, 1, 64);
  if (rand() < 0.15) {
    return {
      delimiter,
      max,
      stream: randomBytes(rand, randomInt(rand, 0, 400)),
    };
  }
  const parts: Uint8Array[] = [];
  const count = randomInt(rand, 0, 20);
  for (let i = 0; i < count; i++) {
    if (rand() < 0.15) {
      const n = randomInt(rand, 0, 40);
      parts.push(encoder.encode(`$${n}`), delimiter, textish(rand, n, "\n\r"));
    } else {
      const length = rand() < 0.01
        ? randomInt(rand, max + 1, max + 20)
        : randomInt(rand, 0, max);
      parts.push(textish(rand, length, "\r"), delimiter);
    }
  }
  if (rand() < 0.3) {
    parts.push(textish(rand, randomInt(rand, 1, max + 5), "\r"));
  }
  if (rand() < 0.1) parts.push(delimiter.subarray(0, delimiter.length - 1));
  return { delimiter, max, stream: concat(parts) };
}

/** The documented LineProtocol rules, over the whole stream at once. */
function referenceLines({ delimiter, max, stream }: LineCase): Outcome {
  const messages: Uint8Array[] = [];
  let pos = 0;
  let raw = -1;
  for (;;) {
    if (raw >= 0) {
      if (stream.length - pos < raw) {
        if (stream.length === pos) return { messages, error: null };
        return { messages, error: "incomplete", partial: stream.slice(pos) };
      }
      messages.push(stream.slice(pos, pos + raw));
      pos += raw;
      raw = -1;
      continue;
    }
    const found = indexOfBytes(stream, delimiter, pos);
    if (found >= 0) {
      if (found - pos > max) return { messages, error: "tooLong" };
      const line = stream.slice(pos, found);
      messages.push(line);
      pos = found + delimiter.length;
      raw = rawCount(line);
      continue;
    }
    // No delimiter: the earliest place one may still start decides.
    const rest = stream.subarray(pos);
    if (terminatorStart(rest, delimiter) > max) {
      return { messages, error: "tooLong" };
    }
    if (rest.length === 0) return { messages, error: null };
    return { messages, error: "incomplete", partial: rest.slice() };
  }
}

function classify(error: unknown): { error: string; partial?: Uint8Array } {
  if (!(error instanceof FramingError)) throw error;
  const m = error.message;
  const kind = /ended/.test(m)
    ? "incomplete"
    : /longer than maxLineLength|over maxFrameSize/.test(m)
    ? "tooLong"
    : /longer than maxHeaderSize/.test(m)
    ? "headerTooLong"
    : /over maxBodySize/.test(m)
    ? "bodyTooLong"
    : /"Name: value"/.test(m)
    ? "badLine"
    : /not a decimal/.test(m)
    ? "badLength"
    : /appears twice/.test(m)
    ? "duplicate"
    : /no Content-Length/.test(m)
    ? "missing"
    : /header is not valid/.test(m)
    ? "invalid"
    : `unknown: ${m}`;
  return kind === "incomplete"
    ? { error: kind, partial: error.partial }
    : { error: kind };
}

/** A framer as the fuzz drives it. */
interface Framer {
  feed(data: Uint8Array): void;
  eofReceived(): boolean | void;
  readonly pendingSize: number;
}

/** Feeds `chunks` through `feed()`, checking the buffered size after each. */
function runFeed(
  framer: Framer,
  received: { views: Uint8Array[]; copies: Uint8Array[] },
  chunks: Uint8Array[],
  bound: () => number,
  where: string,
): Outcome {
  let failure: { error: string; partial?: Uint8Array } | null = null;
  try {
    for (const chunk of chunks) {
      framer.feed(chunk);
      if (framer.pendingSize > bound()) {
        throw new Error(
          `${where}: ${framer.pendingSize} bytes buffered, over the bound ${bound()}`,
        );
      }
    }
    framer.eofReceived();
  } catch (error) {
    failure = classify(error);
  }
  // Views handed out must never have been overwritten.
  received.views.forEach((view, i) =>
    assert(sameBytes(view, received.copies[i]!), `${where}: view ${i} changed`)
  );
  return {
    messages: received.copies,
    error: failure?.error ?? null,
    ...(failure?.partial ? { partial: failure.partial } : {}),
  };
}

/** Sends `chunks` through a MemoryPeer (a real StreamTransport). */
async function runPeer(
  framer: Framer & object,
  lost: Promise<Error | null>,
  received: { views: Uint8Array[]; copies: Uint8Array[] },
  chunks: Uint8Array[],
  where: string,
): Promise<Outcome> {
  const peer = new MemoryPeer(framer as unknown as LineProtocol);
  for (const chunk of chunks) peer.send(chunk);
  peer.sendEof();
  const error = await within(lost, 10_000, `${where}: connectionLost`);
  await within(peer.lost, 10_000, `${where}: the transport to finish`);
  received.views.forEach((view, i) =>
    assert(sameBytes(view, received.copies[i]!), `${where}: view ${i} changed`)
  );
  const failure = error === null ? null : classify(error);
  return {
    messages: received.copies,
    error: failure?.error ?? null,
    ...(failure?.partial ? { partial: failure.partial } : {}),
  };
}

function makeLines(testCase: LineCase) {
  const received = { views: [] as Uint8Array[], copies: [] as Uint8Array[] };
  const lost = Promise.withResolvers<Error | null>();
  const raw = { largest: 0 };
  function take(data: Uint8Array) {
    received.views.push(data);
    received.copies.push(data.slice());
  }
  const framer = new LineProtocol({
    lineReceived(line, lines) {
      take(line);
      const n = rawCount(line);
      if (n >= 0) {
        raw.largest = Math.max(raw.largest, n);
        lines.expectBytes(n);
      }
    },
    bytesReceived: take,
    connectionLost: lost.resolve,
  }, { delimiter: testCase.delimiter, maxLineLength: testCase.max });
  return { framer, received, lost: lost.promise, raw };
}

Deno.test(`LineProtocol (raw mode included) matches a reference parser over ${ITERATIONS} seeded random streams fed in random splits`, () => {
  const rand = mulberry32(SEED);
  const tally = new Tally();
  const before = rss();
  for (let i = 0; i < ITERATIONS; i++) {
    const testCase = genLineCase(rand);
    const where = `seed ${SEED} iteration ${i}`;
    const { framer, received, raw } = makeLines(testCase);
    // A raw message may be buffered whole.
    const actual = runFeed(
      framer,
      received,
      split(rand, testCase.stream),
      () => Math.max(testCase.max + testCase.delimiter.length, raw.largest),
      where,
    );
    const expected = referenceLines(testCase);
    assertSameOutcome(actual, expected, where);
    tally.add(expected);
  }
  tally.check(["clean", "tooLong", "incomplete"], ITERATIONS);
  assert(rss() - before < RSS_GROWTH_LIMIT, "RSS grew without bound");
});

Deno.test(`LineProtocol over a real transport matches the reference over ${PEER_ITERATIONS} seeded random streams`, async () => {
  const rand = mulberry32(SEED + 1);
  const tally = new Tally();
  for (let i = 0; i < PEER_ITERATIONS; i++) {
    const testCase = genLineCase(rand);
    const where = `seed ${SEED + 1} iteration ${i}`;
    const { framer, received, lost } = makeLines(testCase);
    const actual = await runPeer(
      framer,
      lost,
      received,
      split(rand, testCase.stream),
      where,
    );
    const expected = referenceLines(testCase);
    assertSameOutcome(actual, expected, where);
    tally.add(expected);
  }
  tally.check(["clean", "incomplete"], PEER_ITERATIONS);
});

// ---------------------------------------------------------- length prefix

interface FrameCase {
  headerSize: 1 | 2 | 4;
  max: number;
  stream: Uint8Array;
}

function header(size: 1 | 2 | 4, length: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = size - 1; i >= 0; i--) {
    out[i] = length & 0xff;
    length = Math.floor(length / 256);
  }
  return out;
}

function genFrameCase(rand: () => number): FrameCase {
  const headerSize = ([1, 2, 4] as const)[randomInt(rand, 0, 2)]!;
  const max = headerSize === 1
    ? randomInt(rand, 1, 255)
    : randomInt(rand, 1, 300);
  if (rand() < 0.15) {
    return {
      headerSize,
      max,
      stream: randomBytes(rand, randomInt(rand, 0, 300)),
    };
  }
  const parts: Uint8Array[] = [];
  const count = randomInt(rand, 0, 15);
  for (let i = 0; i < count; i++) {
    const limit = headerSize === 1 ? 255 : max + 50;
    const length = rand() < 0.05
      ? randomInt(rand, Math.min(max + 1, limit), limit)
      : randomInt(rand, 0, max);
    parts.push(header(headerSize, length), randomBytes(rand, length));
  }
  if (rand() < 0.3) {
    const length = randomInt(rand, 1, max);
    const frame = concat([
      header(headerSize, length),
      randomBytes(rand, length),
    ]);
    parts.push(frame.subarray(0, randomInt(rand, 1, frame.length - 1)));
  }
  return { headerSize, max, stream: concat(parts) };
}

function referenceFrames({ headerSize, max, stream }: FrameCase): Outcome {
  const messages: Uint8Array[] = [];
  let pos = 0;
  for (;;) {
    const rest = stream.length - pos;
    if (rest === 0) return { messages, error: null };
    if (rest < headerSize) {
      return { messages, error: "incomplete", partial: stream.slice(pos) };
    }
    let length = 0;
    for (let i = 0; i < headerSize; i++) {
      length = length * 256 + stream[pos + i]!;
    }
    if (length > max) return { messages, error: "tooLong" };
    if (rest < headerSize + length) {
      return { messages, error: "incomplete", partial: stream.slice(pos) };
    }
    messages.push(stream.slice(pos + headerSize, pos + headerSize + length));
    pos += headerSize + length;
  }
}

function makeFrames(testCase: FrameCase) {
  const received = { views: [] as Uint8Array[], copies: [] as Uint8Array[] };
  const lost = Promise.withResolvers<Error | null>();
  const framer = new LengthPrefixedProtocol({
    frameReceived(frame) {
      received.views.push(frame);
      received.copies.push(frame.slice());
    },
    connectionLost: lost.resolve,
  }, { headerSize: testCase.headerSize, maxFrameSize: testCase.max });
  return { framer, received, lost: lost.promise };
}

Deno.test(`LengthPrefixedProtocol matches a reference parser over ${ITERATIONS} seeded random streams fed in random splits`, () => {
  const rand = mulberry32(SEED + 2);
  const tally = new Tally();
  for (let i = 0; i < ITERATIONS; i++) {
    const testCase = genFrameCase(rand);
    const where = `seed ${SEED + 2} iteration ${i}`;
    const { framer, received } = makeFrames(testCase);
    const actual = runFeed(
      framer,
      received,
      split(rand, testCase.stream),
      () => testCase.headerSize + testCase.max,
      where,
    );
    const expected = referenceFrames(testCase);
    assertSameOutcome(actual, expected, where);
    tally.add(expected);
  }
  tally.check(["clean", "tooLong", "incomplete"], ITERATIONS);
});

Deno.test(`LengthPrefixedProtocol over a real transport matches the reference over ${PEER_ITERATIONS} seeded random streams`, async () => {
  const rand = mulberry32(SEED + 3);
  const tally = new Tally();
  for (let i = 0; i < PEER_ITERATIONS; i++) {
    const testCase = genFrameCase(rand);
    const where = `seed ${SEED + 3} iteration ${i}`;
    const { framer, received, lost } = makeFrames(testCase);
    const actual = await runPeer(
      framer,
      lost,
      received,
      split(rand, testCase.stream),
      where,
    );
    const expected = referenceFrames(testCase);
    assertSameOutcome(actual, expected, where);
    tally.add(expected);
  }
  tally.check(["clean", "incomplete"], PEER_ITERATIONS);
});

// ---------------------------------------------------------- content length

interface MessageCase {
  maxBody: number;
  maxHeader: number;
  stream: Uint8Array;
}

function genMessageCase(rand: () => number): MessageCase {
  const maxBody = randomInt(rand, 1, 200);
  const maxHeader = randomInt(rand, 40, 200);
  if (rand() < 0.1) {
    return {
      maxBody,
      maxHeader,
      stream: randomBytes(rand, randomInt(rand, 0, 300)),
    };
  }
  const parts: Uint8Array[] = [];
  const count = randomInt(rand, 0, 8);
  for (let i = 0; i < count; i++) {
    const length = rand() < 0.05
      ? randomInt(rand, maxBody + 1, maxBody + 30)
      : randomInt(rand, 0, maxBody);
    const name = ["Content-Length", "content-length", "CONTENT-LENGTH"][
      randomInt(rand, 0, 2)
    ]!;
    let head = "";
    if (rand() < 0.3) head += "Content-Type: application/json\r\n";
    head += `${name}: ${length}\r\n`;
    if (rand() < 0.2) {
      head += `X-Pad: ${"p".repeat(randomInt(rand, 0, 60))}\r\n`;
    }
    if (rand() < 0.05) head += `${name}:${length}\r\n`;
    head += "\r\n";
    parts.push(encoder.encode(head), textish(rand, length, "\r\n"));
  }
  let stream = concat(parts);
  if (rand() < 0.3 && stream.length > 0) {
    // Mutate: flip, drop or insert a few bytes.
    stream = stream.slice();
    const edits = randomInt(rand, 1, 3);
    for (let e = 0; e < edits; e++) {
      const at = randomInt(rand, 0, stream.length - 1);
      const what = rand();
      if (what < 0.4) {
        stream[at] = "\r\n: 0123456789xC"[randomInt(rand, 0, 15)]!.charCodeAt(
          0,
        );
      } else if (what < 0.7) {
        stream = concat([stream.subarray(0, at), stream.subarray(at + 1)]);
      } else {
        stream = concat([
          stream.subarray(0, at),
          encoder.encode("\r\n"),
          stream.subarray(at),
        ]);
      }
      if (stream.length === 0) break;
    }
  }
  if (rand() < 0.2 && stream.length > 1) {
    stream = stream.subarray(0, randomInt(rand, 1, stream.length - 1));
  }
  return { maxBody, maxHeader, stream };
}

const TERMINATOR = encoder.encode("\r\n\r\n");

function referenceMessages(
  { maxBody, maxHeader, stream }: MessageCase,
): Outcome {
  const messages: Uint8Array[] = [];
  let pos = 0;
  for (;;) {
    const rest = stream.length - pos;
    if (rest === 0) return { messages, error: null };
    const found = indexOfBytes(stream, TERMINATOR, pos);
    if (found < 0) {
      // A header block needs at least up to where the terminator may still
      // start, plus the terminator.
      if (terminatorStart(stream.subarray(pos), TERMINATOR) + 4 > maxHeader) {
        return { messages, error: "headerTooLong" };
      }
      return { messages, error: "incomplete", partial: stream.slice(pos) };
    }
    const blockEnd = found - pos + 4;
    if (blockEnd > maxHeader) return { messages, error: "headerTooLong" };
    const text = String.fromCharCode(...stream.subarray(pos, found));
    const pairs: [string, string][] = [];
    let length = "";
    for (const line of text.split("\r\n")) {
      const colon = line.indexOf(":");
      const name = colon < 0 ? "" : line.slice(0, colon);
      if (colon <= 0 || /\s/.test(name)) return { messages, error: "badLine" };
      const value = line.slice(colon + 1).trim();
      if (name.toLowerCase() === "content-length") {
        if (!/^[0-9]+$/.test(value)) return { messages, error: "badLength" };
        if (length !== "" && Number(length) !== Number(value)) {
          return { messages, error: "duplicate" };
        }
        length = value;
      }
      pairs.push([name, value]);
    }
    if (length === "") return { messages, error: "missing" };
    const size = Number(length);
    if (size > maxBody) return { messages, error: "bodyTooLong" };
    try {
      new Headers(pairs);
    } catch {
      return { messages, error: "invalid" };
    }
    const bodyStart = pos + blockEnd;
    if (stream.length - bodyStart < size) {
      return { messages, error: "incomplete", partial: stream.slice(pos) };
    }
    messages.push(stream.slice(bodyStart, bodyStart + size));
    pos = bodyStart + size;
  }
}

function makeMessages(testCase: MessageCase) {
  const received = { views: [] as Uint8Array[], copies: [] as Uint8Array[] };
  const lost = Promise.withResolvers<Error | null>();
  const framer = new ContentLengthProtocol({
    messageReceived(body, _framer, headers) {
      assert(headers.has("content-length"));
      received.views.push(body);
      received.copies.push(body.slice());
    },
    connectionLost: lost.resolve,
  }, { maxBodySize: testCase.maxBody, maxHeaderSize: testCase.maxHeader });
  return { framer, received, lost: lost.promise };
}

Deno.test(`ContentLengthProtocol matches a reference parser over ${ITERATIONS} seeded random (and mutated) streams fed in random splits`, () => {
  const rand = mulberry32(SEED + 4);
  const tally = new Tally();
  for (let i = 0; i < ITERATIONS; i++) {
    const testCase = genMessageCase(rand);
    const where = `seed ${SEED + 4} iteration ${i}`;
    const { framer, received } = makeMessages(testCase);
    const actual = runFeed(
      framer,
      received,
      split(rand, testCase.stream),
      () => testCase.maxHeader + testCase.maxBody,
      where,
    );
    const expected = referenceMessages(testCase);
    assertSameOutcome(actual, expected, where);
    tally.add(expected);
  }
  tally.check([
    "clean",
    "incomplete",
    "headerTooLong",
    "bodyTooLong",
    "badLine",
    "badLength",
    "missing",
  ], ITERATIONS);
});

Deno.test(`ContentLengthProtocol over a real transport matches the reference over ${PEER_ITERATIONS} seeded random streams`, async () => {
  const rand = mulberry32(SEED + 5);
  const tally = new Tally();
  for (let i = 0; i < PEER_ITERATIONS; i++) {
    const testCase = genMessageCase(rand);
    const where = `seed ${SEED + 5} iteration ${i}`;
    const { framer, received, lost } = makeMessages(testCase);
    const actual = await runPeer(
      framer,
      lost,
      received,
      split(rand, testCase.stream),
      where,
    );
    const expected = referenceMessages(testCase);
    assertSameOutcome(actual, expected, where);
    tally.add(expected);
  }
  tally.check(["clean", "incomplete"], PEER_ITERATIONS);
});

// ------------------------------------------------------------ StreamReader

type ReadOp =
  | { op: "read"; n: number }
  | { op: "readexactly"; n: number }
  | { op: "readline" }
  | { op: "readuntil"; sep: Uint8Array };

function genReadOp(rand: () => number): ReadOp {
  const r = rand();
  if (r < 0.25) {
    return { op: "read", n: rand() < 0.05 ? -1 : randomInt(rand, 0, 50) };
  }
  if (r < 0.5) return { op: "readexactly", n: randomInt(rand, 0, 50) };
  if (r < 0.75) return { op: "readline" };
  const seps = ["ab", "\n", "xyz", "a"];
  return { op: "readuntil", sep: encoder.encode(seps[randomInt(rand, 0, 3)]!) };
}

type ReadResult =
  | { value: Uint8Array }
  | { incomplete: Uint8Array; expected: number | null }
  | { overrun: true };

/** The result of `op` on `stream` from `pos`, asyncio's rules; `read(n > 0)` is checked apart. */
function referenceRead(
  op: ReadOp,
  stream: Uint8Array,
  pos: number,
  limit: number,
): ReadResult {
  const rest = stream.subarray(pos);
  switch (op.op) {
    case "read":
      return { value: op.n < 0 ? rest.slice() : rest.slice(0, op.n) };
    case "readexactly":
      return rest.length >= op.n
        ? { value: rest.slice(0, op.n) }
        : { incomplete: rest.slice(), expected: op.n };
    case "readline":
    case "readuntil": {
      const sep = op.op === "readline" ? encoder.encode("\n") : op.sep;
      const found = indexOfBytes(rest, sep, 0);
      if (found >= 0) {
        if (found > limit) return { overrun: true };
        return { value: rest.slice(0, found + sep.length) };
      }
      if (rest.length >= sep.length && rest.length + 1 - sep.length > limit) {
        return { overrun: true };
      }
      return op.op === "readline"
        ? { value: rest.slice() }
        : { incomplete: rest.slice(), expected: null };
    }
    default: {
      const never: never = op;
      throw new Error(`Unknown op ${String(never)}`);
    }
  }
}

function callRead(reader: StreamReader, op: ReadOp): Promise<Uint8Array> {
  switch (op.op) {
    case "read":
      return reader.read(op.n);
    case "readexactly":
      return reader.readexactly(op.n);
    case "readline":
      return reader.readline();
    case "readuntil":
      return reader.readuntil(op.sep);
    default: {
      const never: never = op;
      throw new Error(`Unknown op ${String(never)}`);
    }
  }
}

Deno.test(`StreamReader matches asyncio's rules over ${ITERATIONS / 5} seeded random streams fed in random splits while reads wait`, async () => {
  const rand = mulberry32(SEED + 6);
  const seen: Record<string, number> = {};
  function count(kind: string): void {
    seen[kind] = (seen[kind] ?? 0) + 1;
  }
  for (let i = 0; i < ITERATIONS / 5; i++) {
    const where = `seed ${SEED + 6} iteration ${i}`;
    const limit = rand() < 0.2 ? randomInt(rand, 1, 40) : 65536;
    const stream = textish(rand, randomInt(rand, 0, 600), "\nxyz");
    const chunks = split(rand, stream);
    const reader = new StreamReader({ limit });
    let fed = 0;
    let eofFed = false;
    let pos = 0;
    for (let step = 0; step < 200; step++) {
      const op = genReadOp(rand);
      const expected = referenceRead(op, stream, pos, limit);
      let outcome: { ok?: Uint8Array; error?: unknown } | undefined;
      callRead(reader, op).then(
        (ok) => outcome = { ok },
        (error) => outcome = { error },
      );
      // Feed one chunk at a time until the read settles.
      for (let turn = 0; outcome === undefined; turn++) {
        for (let k = 0; k < 8 && outcome === undefined; k++) await null;
        if (outcome !== undefined) break;
        if (fed < chunks.length) reader.feedData(chunks[fed++]!);
        else if (!eofFed) {
          reader.feedEof();
          eofFed = true;
        } else assert(turn < 1000, `${where}: ${op.op} never settled`);
      }
      const detail = `${where} step ${step} ${
        JSON.stringify(op)
      } at ${pos}/${stream.length}`;
      if ("overrun" in expected) {
        assert(
          outcome.error instanceof LimitOverrunError,
          `${detail}: expected LimitOverrunError, got ${
            JSON.stringify(outcome)
          }`,
        );
        count("overrun");
        break; // What was discarded now depends on the splits, as in asyncio.
      }
      if ("incomplete" in expected) {
        const error = outcome.error;
        if (!(error instanceof IncompleteReadError)) {
          throw new Error(
            `${detail}: expected IncompleteReadError, got ${error}`,
          );
        }
        assert(sameBytes(error.partial, expected.incomplete), detail);
        assertEquals(error.expected, expected.expected, detail);
        pos = stream.length;
        count(`${op.op} incomplete`);
        continue;
      }
      const value = outcome.ok;
      if (value === undefined) throw new Error(`${detail}: ${outcome.error}`);
      if (op.op === "read" && op.n > 0) {
        // Whatever was buffered, at most n, at least 1 byte before the end.
        assert(value.length <= op.n, detail);
        assert(
          value.length > 0 || pos === stream.length,
          `${detail}: empty read`,
        );
        assert(
          sameBytes(value, stream.subarray(pos, pos + value.length)),
          detail,
        );
      } else {
        assert(
          sameBytes(value, expected.value),
          `${detail}: got ${value.length} bytes`,
        );
      }
      pos += value.length;
      count(op.op);
      if (pos === stream.length && eofFed && step > 5) break;
    }
  }
  console.log(`reads ${JSON.stringify(seen)}`);
  for (
    const kind of [
      "read",
      "readexactly",
      "readline",
      "readuntil",
      "readexactly incomplete",
      "readuntil incomplete",
      "overrun",
    ]
  ) {
    assert((seen[kind] ?? 0) > 0, `no ${kind} was checked`);
  }
});

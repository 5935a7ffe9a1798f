// Copyright 2026 the denio authors. MIT license.
// The test kit (protocols/testing.ts): MemoryPeer and createTransportPair run
// the real stream transport over in-memory pipes, so callback order, flow
// control, EOF/half-close and connectionLost-exactly-once must be those of a
// TCP connection.

import {
  assert,
  assertEquals,
  assertFalse,
  assertInstanceOf,
  assertStrictEquals,
  assertThrows,
} from "@std/assert";
import {
  type BufferedProtocol,
  createConnection,
  createServer,
  type ExceptionContext,
  type Protocol,
  setExceptionHandler,
  type Transport,
} from "../mod.ts";
import {
  createTransportPair,
  MemoryPeer,
  settle,
} from "../protocols/testing.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

/** A Protocol that logs every callback with its arguments. */
class Recorder implements Protocol {
  events: string[] = [];
  transport: Transport | null = null;
  lost = Promise.withResolvers<Error | null>();
  eofResult: boolean | undefined;
  onData: ((data: Uint8Array) => void) | undefined;

  connectionMade(transport: Transport): void {
    this.transport = transport;
    this.events.push("made");
  }
  dataReceived(data: Uint8Array): void {
    this.events.push(`data:${decoder.decode(data)}`);
    this.onData?.(data);
  }
  eofReceived(): boolean | undefined {
    this.events.push("eof");
    return this.eofResult;
  }
  pauseWriting(): void {
    this.events.push("pause");
  }
  resumeWriting(): void {
    this.events.push("resume");
  }
  connectionLost(error: Error | null): void {
    this.events.push(
      error === null ? "lost:null" : `lost:${error.name}`,
    );
    this.lost.resolve(error);
  }
}

/** The events with consecutive data merged (TCP may merge or split reads). */
function merged(events: string[]): string[] {
  const out: string[] = [];
  for (const event of events) {
    const last = out.at(-1);
    if (event.startsWith("data:") && last?.startsWith("data:")) {
      out[out.length - 1] = last + event.slice(5);
    } else {
      out.push(event);
    }
  }
  return out;
}

Deno.test("MemoryPeer gives a protocol the same callback sequence as a TCP connection", async () => {
  // The same script over TCP and in memory: the peer sends two chunks and
  // EOF; the protocol echoes each chunk, keeps its write side open on EOF,
  // then writes "bye" and closes.
  function script(protocol: Recorder): void {
    protocol.eofResult = true;
    protocol.onData = (data) => protocol.transport!.write(data);
    const eofReceived = protocol.eofReceived.bind(protocol);
    protocol.eofReceived = () => {
      const result = eofReceived();
      protocol.transport!.write(bytes("bye"));
      protocol.transport!.close();
      return result;
    };
  }

  const tcpServerSide = new Recorder();
  script(tcpServerSide);
  await using server = await createServer(() => tcpServerSide, {
    hostname: "127.0.0.1",
    port: 0,
  });
  const { port } = server.addrs[0] as Deno.NetAddr;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(bytes("one"));
  await conn.write(bytes("two"));
  await conn.closeWrite();
  const tcpReply = await new Response(conn.readable).text();
  await tcpServerSide.lost.promise;

  const memorySide = new Recorder();
  script(memorySide);
  const peer = new MemoryPeer(memorySide);
  peer.send("one");
  peer.send("two");
  peer.sendEof();
  await peer.lost;

  assertEquals(merged(memorySide.events), merged(tcpServerSide.events));
  assertEquals(memorySide.events, [
    "made",
    "data:one",
    "data:two",
    "eof",
    "lost:null",
  ]);
  assertEquals(peer.writtenText(), tcpReply);
  assertEquals(tcpReply, "onetwobye");
  assert(peer.eof && peer.closed);
});

Deno.test("MemoryPeer queues callbacks as microtasks, never inside the caller's call", async () => {
  const protocol = new Recorder();
  const peer = new MemoryPeer(protocol);
  assertEquals(protocol.events, []);
  await Promise.resolve();
  assertEquals(protocol.events, ["made"]);
  peer.send("x");
  assertEquals(protocol.events, ["made"]);
  await settle();
  assertEquals(protocol.events, ["made", "data:x"]);
  protocol.transport!.close();
  assertEquals(protocol.events, ["made", "data:x"]);
  await peer.lost;
  assertEquals(protocol.events, ["made", "data:x", "lost:null"]);
});

Deno.test("MemoryPeer delivers each send() in a read of its own, and records each transport write", async () => {
  const protocol = new Recorder();
  const peer = new MemoryPeer(protocol);
  for (const chunk of ["a", "bc", "", "def"]) peer.send(chunk);
  await settle();
  assertEquals(protocol.events, ["made", "data:a", "data:bc", "data:def"]);
  const transport = protocol.transport!;
  transport.write(bytes("1"));
  transport.writelines([bytes("2"), bytes("3")]);
  await settle();
  transport.write(bytes("4"));
  await settle();
  // Writes made in one tick leave as one write.
  assertEquals(peer.writes().map((w) => decoder.decode(w)), ["123", "4"]);
  assertEquals(peer.writtenText(), "1234");
  peer.clear();
  assertEquals(peer.written(), new Uint8Array(0));
  transport.abort();
  await peer.lost;
});

Deno.test("MemoryPeer works with a BufferedProtocol", async () => {
  const events: string[] = [];
  const buffer = new Uint8Array(4);
  const protocol: BufferedProtocol = {
    getBuffer: (hint) => {
      events.push(`get:${hint > 0}`);
      return buffer;
    },
    bufferUpdated: (n) =>
      void events.push(`updated:${decoder.decode(buffer.subarray(0, n))}`),
    eofReceived: () => void events.push("eof"),
    connectionLost: () => void events.push("lost"),
  };
  const peer = new MemoryPeer(protocol);
  peer.send("abcdef");
  peer.sendEof();
  await peer.lost;
  assertEquals(events, [
    "get:true",
    "updated:abcd",
    "get:true",
    "updated:ef",
    "get:true",
    "eof",
    "lost",
  ]);
});

Deno.test("MemoryPeer flow control: a peer that stops reading fills the socket buffer, then pauseWriting fires once", async () => {
  const protocol = new Recorder();
  const peer = new MemoryPeer(protocol, { capacity: 1000 });
  await settle();
  const transport = protocol.transport!;
  transport.setWriteBufferLimits({ high: 4000 });
  peer.pauseReading();
  transport.write(new Uint8Array(3000));
  assertEquals(transport.getWriteBufferSize(), 3000);
  await settle();
  // The in-memory socket took `capacity` bytes; the rest waits.
  assertEquals(transport.getWriteBufferSize(), 2000);
  assertEquals(protocol.events, ["made"]);
  transport.write(new Uint8Array(2001));
  assertEquals(protocol.events, ["made", "pause"]);
  transport.write(new Uint8Array(10));
  assertEquals(protocol.events, ["made", "pause"]);
  peer.resumeReading();
  await settle();
  assertEquals(protocol.events, ["made", "pause", "resume"]);
  assertEquals(transport.getWriteBufferSize(), 0);
  assertEquals(peer.written().length, 5011);
  transport.close();
  await peer.lost;
});

Deno.test("MemoryPeer: abort() drops what the socket buffer did not take; connectionLost(null) once", async () => {
  const protocol = new Recorder();
  const peer = new MemoryPeer(protocol, { capacity: 100 });
  await settle();
  peer.pauseReading();
  protocol.transport!.write(new Uint8Array(1000));
  await settle();
  protocol.transport!.abort();
  protocol.transport!.close();
  protocol.transport!.abort();
  peer.resumeReading();
  await peer.lost;
  await settle();
  assertEquals(peer.written().length, 100);
  assertEquals(protocol.events, ["made", "lost:null"]);
  assert(peer.eof && peer.closed);
});

Deno.test("MemoryPeer half-close: writeEof() reaches the peer while the protocol still reads", async () => {
  const protocol = new Recorder();
  const peer = new MemoryPeer(protocol);
  await settle();
  protocol.transport!.write(bytes("request"));
  protocol.transport!.writeEof();
  await settle();
  assert(peer.eof);
  assertFalse(peer.closed);
  assertEquals(peer.writtenText(), "request");
  peer.send("response");
  peer.sendEof();
  await peer.lost;
  assertEquals(protocol.events, [
    "made",
    "data:response",
    "eof",
    "lost:null",
  ]);
  assertThrows(
    () => protocol.transport!.write(bytes("x")),
    Error,
    "writeEof() was called",
  );
});

Deno.test("MemoryPeer with canWriteEof false: writeEof() throws and EOF closes the transport", async () => {
  const protocol = new Recorder();
  protocol.eofResult = true;
  const peer = new MemoryPeer(protocol, { canWriteEof: false });
  await settle();
  assertFalse(protocol.transport!.canWriteEof());
  assertThrows(() => protocol.transport!.writeEof(), Error, "half-close");
  peer.sendEof();
  await peer.lost;
  assertEquals(protocol.events, ["made", "eof", "lost:null"]);
});

Deno.test("MemoryPeer.reset() gives connectionLost(ConnectionReset) without calling the exception handler", async () => {
  const contexts: ExceptionContext[] = [];
  setExceptionHandler((context) => void contexts.push(context));
  try {
    const protocol = new Recorder();
    const peer = new MemoryPeer(protocol);
    peer.send("x");
    await settle();
    peer.reset();
    const error = await protocol.lost.promise;
    assertInstanceOf(error, Deno.errors.ConnectionReset);
    assertEquals(protocol.events, ["made", "data:x", "lost:ConnectionReset"]);
    assertEquals(contexts, []);
  } finally {
    setExceptionHandler(null);
  }
});

Deno.test("MemoryPeer.close(): the protocol gets EOF, and a later write fails with BrokenPipe", async () => {
  const protocol = new Recorder();
  protocol.eofResult = true; // keep writing after EOF
  const peer = new MemoryPeer(protocol);
  peer.close();
  await settle();
  assertEquals(protocol.events, ["made", "eof"]);
  protocol.transport!.write(bytes("too late"));
  const error = await protocol.lost.promise;
  assertInstanceOf(error, Deno.errors.BrokenPipe);
  assertEquals(protocol.events, ["made", "eof", "lost:BrokenPipe"]);
});

Deno.test("MemoryPeer: a throwing callback is fatal, reported once, then connectionLost(error)", async () => {
  const contexts: ExceptionContext[] = [];
  setExceptionHandler((context) => void contexts.push(context));
  try {
    const boom = new Error("boom");
    const lost: (Error | null)[] = [];
    const protocol: Protocol = {
      dataReceived() {
        throw boom;
      },
      connectionLost: (error) => void lost.push(error),
    };
    const peer = new MemoryPeer(protocol);
    peer.send("a");
    peer.send("b");
    await peer.lost;
    assertEquals(lost, [boom]);
    assertEquals(contexts.length, 1);
    assertEquals(
      contexts[0]!.message,
      "Fatal error: protocol.dataReceived() call failed",
    );
    assertStrictEquals(contexts[0]!.protocol, protocol);
    assertStrictEquals(contexts[0]!.transport, peer.transport);
  } finally {
    setExceptionHandler(null);
  }
});

Deno.test("MemoryPeer extra info: default addresses, overridable", async () => {
  const peer = new MemoryPeer({}, { extra: { peername: "custom", pipe: 1 } });
  const transport = peer.transport;
  assertEquals(transport.getExtraInfo("sockname"), {
    transport: "tcp",
    hostname: "127.0.0.1",
    port: 10001,
  });
  assertEquals(transport.getExtraInfo("peername"), "custom");
  assertEquals(transport.getExtraInfo("pipe"), 1);
  assertEquals(transport.getExtraInfo("nope", 42), 42);
  transport.close();
  await peer.lost;
});

Deno.test("MemoryPeer and createTransportPair reject bad arguments", () => {
  assertThrows(
    () => new MemoryPeer(null as unknown as Protocol),
    TypeError,
    "Cannot create memory peer as protocol is not an object: current value is null",
  );
  assertThrows(
    () => new MemoryPeer({}, { capacity: 0 }),
    RangeError,
    "Cannot create memory peer as capacity is not a positive integer: current value is 0",
  );
  assertThrows(
    () => createTransportPair({}, 5 as unknown as Protocol),
    TypeError,
    "protocolB is not an object: current value is 5",
  );
  assertThrows(
    () => createTransportPair({}, {}, { capacity: "1" as unknown as number }),
    TypeError,
    'capacity is not a number: current value is "1"',
  );
  const peer = new MemoryPeer({});
  assertThrows(
    () => peer.send(1 as unknown as string),
    TypeError,
    "data is not a Uint8Array or string: current value is 1",
  );
  peer.transport.abort();
});

Deno.test("createTransportPair connects two protocols: data, EOF and close flow both ways", async () => {
  const a = new Recorder();
  const b = new Recorder();
  b.eofResult = true;
  b.onData = (data) => b.transport!.write(data.toReversed());
  const eofB = b.eofReceived.bind(b);
  b.eofReceived = () => {
    const keep = eofB();
    b.transport!.write(bytes("!"));
    b.transport!.close();
    return keep;
  };
  const [ta, tb] = createTransportPair(a, b);
  await settle();
  assertStrictEquals(a.transport, ta);
  assertStrictEquals(b.transport, tb);
  assertEquals(ta.getExtraInfo("peername"), tb.getExtraInfo("sockname"));
  ta.write(bytes("abc"));
  await settle();
  ta.writeEof();
  await Promise.all([a.lost.promise, b.lost.promise]);
  assertEquals(b.events, ["made", "data:abc", "eof", "lost:null"]);
  assertEquals(merged(a.events), ["made", "data:cba!", "eof", "lost:null"]);
});

Deno.test("createTransportPair flow control: a reader that pauses makes the writer pause, then resume", async () => {
  const a = new Recorder();
  const b = new Recorder();
  let received = 0;
  b.dataReceived = (data) => void (received += data.length);
  const [ta, tb] = createTransportPair(a, b, { capacity: 4096 });
  await settle();
  tb.pauseReading();
  const chunk = new Uint8Array(8192);
  let writes = 0;
  while (!a.events.includes("pause") && writes < 100) {
    ta.write(chunk);
    writes++;
    await settle();
  }
  assertEquals(a.events, ["made", "pause"]);
  // B's read in flight holds one socket-buffer load (as a TCP read would),
  // the socket buffer another; the rest is in A's transport buffer.
  assertEquals(ta.getWriteBufferSize(), writes * 8192 - 2 * 4096);
  assertEquals(received, 0);
  tb.resumeReading();
  await settle();
  assertEquals(a.events, ["made", "pause", "resume"]);
  assertEquals(received, writes * 8192);
  ta.close();
  await Promise.all([a.lost.promise, b.lost.promise]);
  assertEquals(b.events, ["made", "eof", "lost:null"]);
});

Deno.test("createTransportPair: a side that closes gives the other EOF; connectionLost once each", async () => {
  const a = new Recorder();
  const b = new Recorder();
  const [ta, tb] = createTransportPair(a, b);
  await settle();
  ta.write(bytes("last words"));
  ta.close();
  ta.close();
  await Promise.all([a.lost.promise, b.lost.promise]);
  tb.close();
  await settle();
  assertEquals(a.events, ["made", "lost:null"]);
  assertEquals(b.events, ["made", "data:last words", "eof", "lost:null"]);
  assert(ta.isClosing() && tb.isClosing());
});

Deno.test("createTransportPair: the same exchange as over TCP", async () => {
  // A request/response exchange with half-close, once over TCP and once in
  // memory; the callback sequences (reads merged) must match.
  function client(protocol: Recorder): void {
    const made = protocol.connectionMade.bind(protocol);
    protocol.connectionMade = (transport) => {
      made(transport);
      transport.write(bytes("ping"));
      transport.writeEof();
    };
  }
  function server(protocol: Recorder): void {
    protocol.eofResult = true;
    const eof = protocol.eofReceived.bind(protocol);
    protocol.eofReceived = () => {
      const keep = eof();
      protocol.transport!.write(bytes("pong"));
      protocol.transport!.close();
      return keep;
    };
  }
  const tcpServer = new Recorder();
  server(tcpServer);
  await using listening = await createServer(() => tcpServer, {
    hostname: "127.0.0.1",
    port: 0,
  });
  const { port } = listening.addrs[0] as Deno.NetAddr;
  const tcpClient = new Recorder();
  client(tcpClient);
  await createConnection(() => tcpClient, { port });
  await Promise.all([tcpClient.lost.promise, tcpServer.lost.promise]);

  const memClient = new Recorder();
  const memServer = new Recorder();
  client(memClient);
  server(memServer);
  createTransportPair(memClient, memServer);
  await Promise.all([memClient.lost.promise, memServer.lost.promise]);

  assertEquals(merged(memClient.events), merged(tcpClient.events));
  assertEquals(merged(memServer.events), merged(tcpServer.events));
  assertEquals(merged(memClient.events), [
    "made",
    "data:pong",
    "eof",
    "lost:null",
  ]);
});

// Copyright 2026 the denio authors. MIT license.
// examples/resp_server.ts: the RESP2 state machine in memory (every split of
// a pipelined script gives the same replies, written in one write), over a
// raw socket (pipelining, binary-safe values, protocol errors), with
// redis-cli (compared with a real redis-server when one is installed), and
// the command-line entry point as a subprocess.

import { assert, assertEquals, assertMatch } from "@std/assert";
import {
  createRespProtocol,
  type RespStore,
  startRespServer,
} from "../examples/resp_server.ts";
import { MemoryPeer, settle } from "../protocols/testing.ts";
import {
  LineProcess,
  readAll,
  readExactly,
  runCommand,
  within,
  writeAll,
} from "./_stream_helpers.ts";
import { peerMissing } from "./_peers.ts";

const ROOT = new URL("..", import.meta.url);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

/** A RESP2 array of bulk strings. */
function command(...args: (string | Uint8Array)[]): Uint8Array {
  const parts: Uint8Array[] = [bytes(`*${args.length}\r\n`)];
  for (const arg of args) {
    const value = typeof arg === "string" ? bytes(arg) : arg;
    parts.push(bytes(`$${value.length}\r\n`), value, bytes("\r\n"));
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** A pipelined script (arrays and inline commands) and redis's replies. */
const SCRIPT = [
  command("PING"),
  bytes("PING\r\n"),
  command("SET", "greeting", "hello\r\nworld"),
  command("GET", "greeting"),
  command("GET", "missing"),
  bytes('ECHO "two words"\r\n'),
  command("SET", "n", "41"),
  command("INCR", "n"),
  command("INCR", "greeting"),
  command("INCR", "fresh"),
  command("EXISTS", "n", "nope", "n"),
  command("DEL", "n", "nope"),
  command("GET"),
  command("FOO", "bar"),
  bytes("*0\r\n\r\n"),
  command("PING", "last"),
];
const REPLIES = "+PONG\r\n" +
  "+PONG\r\n" +
  "+OK\r\n" +
  "$12\r\nhello\r\nworld\r\n" +
  "$-1\r\n" +
  "$9\r\ntwo words\r\n" +
  "+OK\r\n" +
  ":42\r\n" +
  "-ERR value is not an integer or out of range\r\n" +
  ":1\r\n" +
  ":2\r\n" +
  ":1\r\n" +
  "-ERR wrong number of arguments for 'get' command\r\n" +
  "-ERR unknown command 'FOO', with args beginning with: 'bar' \r\n" +
  "$4\r\nlast\r\n";

function joined(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

Deno.test("resp_server: a pipelined script in one read is answered in one write", async () => {
  const peer = new MemoryPeer(createRespProtocol(new Map()));
  peer.send(joined(SCRIPT));
  await settle();
  assertEquals(peer.writtenText(), REPLIES);
  assertEquals(peer.writes().length, 1);
  peer.sendEof();
  await peer.lost;
});

Deno.test("resp_server: every split of the pipelined script gives the same replies", async () => {
  const input = joined(SCRIPT);
  const cuts: Uint8Array[][] = [
    Array.from(input, (_, i) => input.subarray(i, i + 1)),
  ];
  for (let k = 1; k < input.length; k++) {
    cuts.push([input.subarray(0, k), input.subarray(k)]);
  }
  for (const chunks of cuts) {
    const peer = new MemoryPeer(createRespProtocol(new Map()));
    for (const chunk of chunks) peer.send(chunk);
    peer.sendEof();
    await peer.lost;
    assertEquals(
      peer.writtenText(),
      REPLIES,
      `chunks of ${chunks.map((c) => c.length).join("+")}`,
    );
  }
});

Deno.test("resp_server: protocol errors are answered like redis, then the connection closes", async () => {
  const cases: [string, string][] = [
    ["*x\r\nPING\r\n", "-ERR Protocol error: invalid multibulk length\r\n"],
    ["*2\r\nxx\r\n", "-ERR Protocol error: expected '$', got 'x'\r\n"],
    ["*1\r\n$-5\r\n", "-ERR Protocol error: invalid bulk length\r\n"],
    ["*1\r\n$536870913\r\n", "-ERR Protocol error: invalid bulk length\r\n"],
    ['ECHO "open\r\n', "-ERR Protocol error: unbalanced quotes in request\r\n"],
    ["PING\r\nQUIT\r\nPING\r\n", "+PONG\r\n+OK\r\n"],
  ];
  for (const [input, reply] of cases) {
    const peer = new MemoryPeer(createRespProtocol(new Map()));
    peer.send(input);
    await peer.lost;
    assertEquals(peer.writtenText(), reply, input);
    assert(peer.eof, input);
  }
});

Deno.test("resp_server over TCP: pipelining, binary-safe values and a shared store", async () => {
  const store: RespStore = new Map();
  await using server = await startRespServer({ port: 0, store });
  const { port } = server.addrs[0] as Deno.NetAddr;

  // The whole script in one write; the replies come back in order.
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(conn, joined(SCRIPT));
  const replies = await within(
    readExactly(conn, bytes(REPLIES).length),
    "the pipelined replies",
  );
  assertEquals(decoder.decode(replies), REPLIES);

  // Every byte value survives SET and GET, on a second connection.
  const value = Uint8Array.from({ length: 256 }, (_, i) => i);
  const conn2 = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(conn2, command("SET", value, value));
  await writeAll(conn2, command("GET", value));
  await writeAll(conn2, bytes("QUIT\r\n"));
  const got = await within(readAll(conn2), "the binary replies");
  conn2.close();
  assertEquals(
    got,
    joined([bytes("+OK\r\n$256\r\n"), value, bytes("\r\n+OK\r\n")]),
  );
  assertEquals(decoder.decode(store.get("greeting")), "hello\r\nworld");

  await writeAll(conn, bytes("GET fresh\r\n"));
  assertEquals(
    decoder.decode(await within(readExactly(conn, 7), "GET fresh")),
    "$1\r\n1\r\n",
  );
  conn.close();
});

const redisCli = peerMissing("redis-cli") === null;
const redisServer = peerMissing("redis-server") === null;

/** Commands redis-cli reads from stdin, one a line. */
const CLI_SCRIPT = [
  "PING",
  'PING "hello world"',
  "SET k v",
  "GET k",
  "GET missing",
  "SET n 41",
  "INCR n",
  "INCR k",
  "EXISTS k n nope k",
  "DEL k nope",
  "EXISTS k",
  'ECHO "a\\tb"',
  "FOO bar baz",
  "GET",
  "SET x 9223372036854775807",
  "INCR x",
  "SET x -0",
  "INCR x",
].join("\n") + "\n";

const CLI_OUTPUT = [
  "PONG",
  "hello world",
  "OK",
  "v",
  "",
  "OK",
  "42",
  "ERR value is not an integer or out of range",
  "",
  "3",
  "1",
  "0",
  "a\tb",
  "ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' ",
  "",
  "ERR wrong number of arguments for 'get' command",
  "",
  "OK",
  "ERR increment or decrement would overflow",
  "",
  "OK",
  "ERR value is not an integer or out of range",
  "",
  "",
].join("\n");

function runCli(port: number, args: string[], stdin?: string) {
  return runCommand(
    "redis-cli",
    ["-h", "127.0.0.1", "-p", String(port), ...args],
    stdin === undefined ? {} : { stdin: bytes(stdin) },
  );
}

Deno.test({
  name: "resp_server answers redis-cli as redis does",
  ignore: !redisCli,
  async fn() {
    await using server = await startRespServer({ port: 0 });
    const { port } = server.addrs[0] as Deno.NetAddr;
    assertEquals((await runCli(port, ["ping"])).stdout, "PONG\n");
    assertEquals((await runCli(port, ["set", "a", "1"])).stdout, "OK\n");
    assertEquals((await runCli(port, ["incr", "a"])).stdout, "2\n");
    const result = await runCli(port, [], CLI_SCRIPT);
    assertEquals(result.stderr, "");
    assertEquals(result.stdout, CLI_OUTPUT);
  },
});

/** A free TCP port on 127.0.0.1 (bound then released). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

Deno.test({
  name: "resp_server and a real redis-server give redis-cli the same output",
  ignore: !redisCli || !redisServer,
  async fn() {
    const port = freePort();
    await using redis = new LineProcess("redis-server", [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
    ]);
    await redis.waitForLine(/Ready to accept connections/);
    const theirs = await runCli(port, [], CLI_SCRIPT);
    assertEquals(theirs.stdout, CLI_OUTPUT);
    await runCli(port, ["shutdown", "nosave"]);
    await redis.status();

    await using server = await startRespServer({ port: 0 });
    const ours = await runCli(
      (server.addrs[0] as Deno.NetAddr).port,
      [],
      CLI_SCRIPT,
    );
    assertEquals(ours.stdout, theirs.stdout);
  },
});

Deno.test("examples/resp_server.ts runs from the command line and closes on SIGINT", async () => {
  await using child = new LineProcess(Deno.execPath(), [
    "run",
    "--allow-net",
    new URL("examples/resp_server.ts", ROOT).pathname,
    "--port",
    "0",
  ], { cwd: ROOT });
  const line = await child.waitForLine(/^resp server listening on /);
  assertMatch(line, /^resp server listening on 127\.0\.0\.1:\d+$/);
  const port = Number(line.split(":").at(-1));
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(conn, bytes("PING\r\n"));
  assertEquals(
    decoder.decode(await within(readExactly(conn, 7), "PONG")),
    "+PONG\r\n",
  );
  child.kill("SIGINT");
  assertEquals(decoder.decode(await within(readAll(conn), "EOF")), "");
  conn.close();
  await child.waitForLine(/^resp server closed$/);
  assertEquals((await child.status()).code, 0);
});

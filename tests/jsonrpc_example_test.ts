// Copyright 2026 the denio authors. MIT license.
// examples/stdio_jsonrpc_server.ts and stdio_jsonrpc_client.ts: the JSON-RPC
// 2.0 semantics (handleMessage), the server as a subprocess on raw stdin
// bytes (exact output, bad framing), the Deno client example, and the
// CPython asyncio client (skipped without python3).

import { assertEquals, assertStringIncludes } from "@std/assert";
import {
  handleMessage,
  type JsonRpcState,
} from "../examples/stdio_jsonrpc_server.ts";
import { JsonRpcError, startServer } from "../examples/stdio_jsonrpc_client.ts";
import { runCommand } from "./_stream_helpers.ts";
import { peerMissing } from "./_peers.ts";

const ROOT = new URL("..", import.meta.url);
const SERVER = new URL("examples/stdio_jsonrpc_server.ts", ROOT).pathname;
const encoder = new TextEncoder();

function frame(message: unknown): string {
  const body = typeof message === "string" ? message : JSON.stringify(message);
  return `Content-Length: ${encoder.encode(body).length}\r\n\r\n${body}`;
}

function fresh(): JsonRpcState {
  return { shutdown: false, exitCode: null };
}

function reply(body: string, state: JsonRpcState = fresh()): unknown {
  const text = handleMessage(body, state);
  return text === null ? null : JSON.parse(text);
}

Deno.test("stdio_jsonrpc_server handleMessage(): results, errors and notifications per JSON-RPC 2.0", () => {
  const req = (method: string, params?: unknown, id: unknown = 1) =>
    JSON.stringify({ jsonrpc: "2.0", id, method, params });
  assertEquals(reply(req("add", [2, 3])), { jsonrpc: "2.0", id: 1, result: 5 });
  assertEquals(reply(req("add", { a: 1, b: -4 }, "s")), {
    jsonrpc: "2.0",
    id: "s",
    result: -3,
  });
  assertEquals(reply(req("echo", { deep: [1, { x: null }] }, null)), {
    jsonrpc: "2.0",
    id: null,
    result: { deep: [1, { x: null }] },
  });
  const invalidParams = {
    code: -32602,
    message: "Invalid params",
    data: "add takes [a, b] or {a, b}, two numbers",
  };
  assertEquals(reply(req("add", [1])), {
    jsonrpc: "2.0",
    id: 1,
    error: invalidParams,
  });
  assertEquals(reply(req("add", { a: "1", b: 2 })), {
    jsonrpc: "2.0",
    id: 1,
    error: invalidParams,
  });
  assertEquals(reply(req("nope")), {
    jsonrpc: "2.0",
    id: 1,
    error: { code: -32601, message: "Method not found", data: "nope" },
  });
  const parse = reply("{oops") as { id: null; error: { code: number } };
  assertEquals([parse.id, parse.error.code], [null, -32700]);
  const invalid = { code: -32600, message: "Invalid Request" };
  // The id is echoed when it can be read, else null.
  const invalidRequests: [string, unknown][] = [
    ["42", null],
    ['{"jsonrpc":"1.0","id":1,"method":"echo"}', 1],
    ['{"jsonrpc":"2.0","id":1}', 1],
    ['{"jsonrpc":"2.0","id":{},"method":"echo"}', null],
    ['{"jsonrpc":"2.0","id":7,"method":"echo","params":3}', 7],
    ["[]", null],
  ];
  for (const [bad, id] of invalidRequests) {
    assertEquals(reply(bad), { jsonrpc: "2.0", id, error: invalid }, bad);
  }
  // Notifications get no reply, even for errors.
  assertEquals(reply('{"jsonrpc":"2.0","method":"nope"}'), null);
  assertEquals(reply('{"jsonrpc":"2.0","method":"add","params":[1]}'), null);
  // Batches: replies in order, notifications left out.
  assertEquals(
    reply(JSON.stringify([
      { jsonrpc: "2.0", id: 1, method: "add", params: [1, 1] },
      { jsonrpc: "2.0", method: "echo" },
      1,
      { jsonrpc: "2.0", id: 2, method: "nope" },
    ])),
    [
      { jsonrpc: "2.0", id: 1, result: 2 },
      { jsonrpc: "2.0", id: null, error: invalid },
      {
        jsonrpc: "2.0",
        id: 2,
        error: { code: -32601, message: "Method not found", data: "nope" },
      },
    ],
  );
  assertEquals(reply('[{"jsonrpc":"2.0","method":"echo"}]'), null);
});

Deno.test("stdio_jsonrpc_server handleMessage(): shutdown, then exit gives code 0; exit alone gives 1", () => {
  const state = fresh();
  assertEquals(reply('{"jsonrpc":"2.0","id":1,"method":"shutdown"}', state), {
    jsonrpc: "2.0",
    id: 1,
    result: null,
  });
  assertEquals(reply('{"jsonrpc":"2.0","id":2,"method":"echo"}', state), {
    jsonrpc: "2.0",
    id: 2,
    error: { code: -32600, message: "Server is shutting down" },
  });
  assertEquals(state.exitCode, null);
  assertEquals(reply('{"jsonrpc":"2.0","method":"exit"}', state), null);
  assertEquals(state.exitCode, 0);
  const early = fresh();
  reply('{"jsonrpc":"2.0","method":"exit"}', early);
  assertEquals(early.exitCode, 1);
});

function runServer(stdin: string) {
  return runCommand(Deno.execPath(), ["run", "--quiet", SERVER], {
    cwd: ROOT,
    stdin: encoder.encode(stdin),
  });
}

Deno.test("examples/stdio_jsonrpc_server.ts answers framed stdin on stdout, byte for byte", async () => {
  const result = await runServer(
    frame({ jsonrpc: "2.0", id: 1, method: "add", params: [2, 3] }) +
      "content-length: 2\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n[]" +
      frame({ jsonrpc: "2.0", method: "echo" }) +
      frame({ jsonrpc: "2.0", id: "é", method: "echo", params: ["ü"] }),
  );
  assertEquals(result.stderr, "");
  assertEquals(result.code, 0);
  assertEquals(
    result.stdout,
    frame('{"jsonrpc":"2.0","id":1,"result":5}') +
      frame(
        '{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request"}}',
      ) +
      frame('{"jsonrpc":"2.0","id":"é","result":["ü"]}'),
  );
});

Deno.test("examples/stdio_jsonrpc_server.ts exits with 1 and a clear message on broken framing", async () => {
  const result = await runServer(
    frame({ jsonrpc: "2.0", id: 1, method: "echo", params: [1] }) +
      "Content-Length: abc\r\n\r\n{}",
  );
  assertEquals(result.code, 1);
  assertEquals(result.stdout, frame('{"jsonrpc":"2.0","id":1,"result":[1]}'));
  assertEquals(
    result.stderr,
    'stdio_jsonrpc_server: Cannot receive message as Content-Length is not a decimal integer: current value is "abc"\n',
  );
  const cut = await runServer('Content-Length: 10\r\n\r\n{"a"');
  assertEquals(cut.code, 1);
  assertStringIncludes(cut.stderr, "ended in the middle of it");
});

Deno.test("stdio_jsonrpc_client's JsonRpcClient calls the server over subprocess pipes", async () => {
  const [transport, client] = await startServer(SERVER);
  try {
    const calls = Array.from(
      { length: 50 },
      (_, i) => client.call("add", [i, i]),
    );
    assertEquals(
      await Promise.all(calls),
      Array.from({ length: 50 }, (_, i) => 2 * i),
    );
    const big = "x".repeat(200_000);
    assertEquals(await client.call("echo", [big]), [big]);
    const error = await client.call("nope").catch((e) => e);
    assertEquals(error instanceof JsonRpcError ? error.code : error, -32601);
    assertEquals(await client.batch([["add", [1, 2]], ["echo", ["b"]]]), [3, [
      "b",
    ]]);
    assertEquals(await client.call("shutdown"), null);
    client.notify("exit");
    assertEquals(await client.closed.promise, null);
    assertEquals(transport.getReturncode(), 0);
  } finally {
    transport.close();
    await client.closed.promise;
  }
});

Deno.test("examples/stdio_jsonrpc_client.ts prints the results of its calls", async () => {
  const result = await runCommand(Deno.execPath(), [
    "run",
    "--allow-run",
    new URL("examples/stdio_jsonrpc_client.ts", ROOT).pathname,
  ], { cwd: ROOT });
  assertEquals(result.stderr, "");
  assertEquals(result.code, 0);
  assertEquals(result.stdout.split("\n"), [
    "add(2, 3) = 5",
    "add({a: 1.5, b: 2}) = 3.5",
    'echo(["héllo, wörld"]) = ["héllo, wörld"]',
    'batch [add(1, 2), nope(), echo({ok: true})] = [3, error -32601 Method not found, {"ok":true}]',
    "subtract(5,3) -> error -32601 Method not found",
    'add("x",1) -> error -32602 Invalid params',
    "shutdown() = null",
    "server exited with code 0",
    "",
  ]);
});

const HAS_PYTHON = peerMissing("python3") === null;

Deno.test({
  name: "A CPython asyncio client gets correct answers from the stdio server",
  ignore: !HAS_PYTHON,
  async fn() {
    // The script runs `$DENO run …`: point it at this very deno.
    const output = await new Deno.Command("python3", {
      args: [new URL("examples/stdio_jsonrpc_client.py", ROOT).pathname],
      cwd: ROOT,
      env: { DENO: Deno.execPath() },
      stdin: "null",
      signal: AbortSignal.timeout(30_000),
    }).output();
    const decoder = new TextDecoder();
    assertEquals(decoder.decode(output.stderr), "");
    assertEquals(output.code, 0);
    assertEquals(decoder.decode(output.stdout).split("\n"), [
      "add(2, 3) = 5",
      'echo({text: héllo}) = {"text": "héllo"}',
      "id 3: error -32601 Method not found",
      "id 4: error -32602 Invalid params",
      "parse error: -32700 None",
      "shutdown() = null",
      "server exited with code 0, 0 bytes after exit",
      "",
    ]);
  },
});

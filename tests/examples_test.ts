// Copyright 2026 the denio authors. MIT license.
// Runs examples/echo_server.ts, examples/echo_client.ts and examples/demo.ts
// as subprocesses (deno run) and checks what they print. Every wait is
// bounded: a child that hangs is killed.

import {
  assert,
  assertEquals,
  assertMatch,
  assertStringIncludes,
} from "@std/assert";
import {
  bytes,
  type CommandResult,
  LineProcess,
  runCommand,
} from "./_stream_helpers.ts";
import { peerMissing } from "./_peers.ts";

const ROOT = new URL("..", import.meta.url);

function example(name: string): string {
  return new URL(`examples/${name}`, ROOT).pathname;
}

/** Runs `deno run ARGS` in the repository root to completion. */
function run(args: string[]): Promise<CommandResult> {
  return runCommand(Deno.execPath(), ["run", ...args], { cwd: ROOT });
}

/**
 * Starts `deno run ARGS` (permissions, examples/echo_server.ts, its flags);
 * `interrupt()` sends SIGINT and waits for the clean exit.
 */
class EchoServerProcess extends LineProcess {
  constructor(args: string[]) {
    super(Deno.execPath(), ["run", ...args], { cwd: ROOT });
  }

  /** Sends SIGINT and waits for the child to exit; returns the exit code. */
  async interrupt(): Promise<number> {
    this.kill("SIGINT");
    await this.waitForLine(/^echo server closed$/);
    return (await this.status()).code;
  }
}

function startServer(args: string[]): EchoServerProcess {
  return new EchoServerProcess(args);
}

Deno.test("examples/echo_server.ts and echo_client.ts talk over TCP; SIGINT closes the server cleanly", async () => {
  await using server = startServer([
    "--allow-net",
    example("echo_server.ts"),
    "--port",
    "0",
    "--hostname",
    "127.0.0.1",
  ]);
  const listening = await server.waitForLine(/^echo server listening on /);
  const port = Number(listening.match(/:(\d+)$/)?.[1]);
  assert(port > 0, listening);

  const client = await run([
    "--allow-net",
    example("echo_client.ts"),
    "--port",
    String(port),
    "hello",
    "from the test",
  ]);
  assertEquals(client.stderr, "");
  assertEquals(client.code, 0);
  assertEquals(client.stdout.split("\n"), [
    "sent 19 bytes: hello from the test",
    "received: hello from the test",
    "connection closed",
    "",
  ]);

  await server.waitForLine(
    /^connection from 127\.0\.0\.1:\d+ closed, 19 bytes echoed$/,
  );
  assertEquals(await server.interrupt(), 0);
  assertMatch(server.lines.join("\n"), /connection from 127\.0\.0\.1:\d+\n/);
  assert(server.lines.some((line) => /^echo server shutting down/.test(line)));
});

Deno.test("examples/echo_server.ts --processes 2 serves one port from two workers; SIGTERM stops them gracefully", async () => {
  await using server = startServer([
    "--allow-net",
    "--allow-run",
    "--unstable-net",
    example("echo_server.ts"),
    "--processes",
    "2",
    "--port",
    "0",
    "--hostname",
    "127.0.0.1",
    "--grace",
    "2000",
  ]);
  const listening = await server.waitForLine(
    /^echo server listening on 127\.0\.0\.1:\d+ \(2 processes\)$/,
  );
  const port = Number(listening.match(/:(\d+) /)?.[1]);
  const workers = server.lines.filter((l) =>
    / listening on /.test(l) && /^worker/.test(l)
  );
  assertEquals(workers.length, 2);
  // The kernel spreads connections by a hash of the client's port: across
  // 24 connections both workers serve (all on one: 2 in 2^24).
  for (let i = 0; i < 24; i++) {
    const conn = await Deno.connect({ port });
    await conn.write(bytes(`hello ${i}`));
    await conn.closeWrite();
    const echoed = await new Response(conn.readable).text();
    assertEquals(echoed, `hello ${i}`);
  }
  await server.waitForLine(/closed, \d+ bytes echoed$/);
  // A client that stays connected is closed by the graceful stop.
  const idle = await Deno.connect({ port });
  await idle.write(bytes("x"));
  const x = new Uint8Array(1);
  assertEquals(await idle.read(x), 1);
  server.kill("SIGTERM");
  await server.waitForLine(/^echo server closed$/);
  assertEquals((await server.status()).code, 0);
  assertEquals(await idle.read(x), null);
  idle.close();
  const pids = new Set(
    server.lines.map((l) => l.match(/^worker (\d+): connection from/)?.[1])
      .filter((pid) => pid !== undefined),
  );
  assertEquals(pids.size, 2, server.lines.join("\n"));
  assertEquals(
    server.lines.filter((l) => /^worker \d+ closed$/.test(l)).length,
    2,
  );
});

Deno.test("examples/echo_server.ts and echo_client.ts talk over a Unix socket", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denio_examples_" });
  const path = `${dir}/echo.sock`;
  try {
    const permissions = ["--allow-net", "--allow-read", "--allow-write"];
    await using server = startServer([
      ...permissions,
      example("echo_server.ts"),
      "--unix",
      path,
    ]);
    await server.waitForLine(new RegExp(`^echo server listening on ${path}$`));
    const client = await run([
      ...permissions,
      example("echo_client.ts"),
      "--unix",
      path,
    ]);
    assertEquals(client.code, 0, client.stderr);
    assertStringIncludes(client.stdout, "received: hello, denio\n");
    assertEquals(await server.interrupt(), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("examples/echo_client.ts exits with 1 and a message when nothing listens", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  const client = await run([
    "--allow-net",
    example("echo_client.ts"),
    "--port",
    String(port),
  ]);
  assertEquals(client.code, 1);
  assertStringIncludes(client.stderr, "cannot connect");
});

Deno.test("examples/demo.ts shows the exchange and flow control, then exits by itself", async () => {
  const demo = await run(["--allow-net", example("demo.ts")]);
  assertEquals(demo.code, 0, demo.stderr);
  assertStringIncludes(demo.stdout, 'client <- "hello, denio!"');
  assertStringIncludes(demo.stdout, "pauseWriting()  inside write #1");
  assertStringIncludes(demo.stdout, "resumeWriting()");
  assertStringIncludes(demo.stdout, ": match");
  assertMatch(
    demo.stdout,
    /summary: 12\.00 MiB sent in [\d.]+ s; pauseWriting x3, resumeWriting x3; connection closed cleanly/,
  );
});

// ------------------------------------------------- peers no one here wrote

const HAS_SOCAT = peerMissing("socat") === null;
const HAS_PYTHON = peerMissing("python3") === null;

Deno.test({
  name: "socat gets its echo from examples/echo_server.ts over TCP and Unix",
  ignore: !HAS_SOCAT,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "denio_examples_" });
    try {
      const permissions = ["--allow-net", "--allow-read", "--allow-write"];
      {
        await using server = startServer([
          ...permissions,
          example("echo_server.ts"),
          "--port",
          "0",
          "--hostname",
          "127.0.0.1",
        ]);
        const listening = await server.waitForLine(/listening on /);
        const port = listening.match(/:(\d+)$/)![1];
        const hello = await runCommand(
          "socat",
          ["-", `TCP:127.0.0.1:${port}`],
          {
            stdin: bytes("hello\n"),
          },
        );
        assertEquals(hello.code, 0, hello.stderr);
        assertEquals(hello.stdout, "hello\n");
        // 1 MiB of text through socat and back.
        const big = "0123456789abcdef".repeat(65536);
        const echoed = await runCommand("socat", [
          "-",
          `TCP:127.0.0.1:${port}`,
        ], { stdin: bytes(big) });
        assertEquals(echoed.code, 0, echoed.stderr);
        assert(echoed.stdout === big, `echoed ${echoed.stdout.length} chars`);
        assertEquals(await server.interrupt(), 0);
      }
      const path = `${dir}/echo.sock`;
      await using server = startServer([
        ...permissions,
        example("echo_server.ts"),
        "--unix",
        path,
      ]);
      await server.waitForLine(/listening on /);
      const unix = await runCommand("socat", ["-", `UNIX-CONNECT:${path}`], {
        stdin: bytes("hello unix\n"),
      });
      assertEquals(unix.code, 0, unix.stderr);
      assertEquals(unix.stdout, "hello unix\n");
      assertEquals(await server.interrupt(), 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const PYTHON_CLIENT = `
import asyncio, sys
async def main(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"hello from asyncio")
    writer.write_eof()
    data = await reader.read()
    print("echo:", data.decode())
    writer.close()
    await writer.wait_closed()
asyncio.run(main(int(sys.argv[1])))
`;

Deno.test({
  name: "A Python asyncio client gets its echo from examples/echo_server.ts",
  ignore: !HAS_PYTHON,
  async fn() {
    await using server = startServer([
      "--allow-net",
      example("echo_server.ts"),
      "--port",
      "0",
      "--hostname",
      "127.0.0.1",
    ]);
    const listening = await server.waitForLine(/listening on /);
    const port = listening.match(/:(\d+)$/)![1]!;
    const client = await runCommand("python3", ["-c", PYTHON_CLIENT, port]);
    assertEquals(client.code, 0, client.stderr);
    assertEquals(client.stdout, "echo: hello from asyncio\n");
    assertEquals(await server.interrupt(), 0);
  },
});

const PYTHON_ECHO_SERVER = `
import asyncio
async def main():
    done = asyncio.get_running_loop().create_future()
    async def handle(reader, writer):
        data = await reader.read()  # up to EOF: the client half-closed
        writer.write(data)
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        print(f"python server: {len(data)} bytes echoed after EOF", flush=True)
        done.set_result(None)
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print("port", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await asyncio.wait_for(done, 20)
asyncio.run(main())
`;

Deno.test({
  name:
    "examples/echo_client.ts gets its echo from a Python asyncio.start_server echo server",
  ignore: !HAS_PYTHON,
  async fn() {
    await using server = new LineProcess("python3", [
      "-c",
      PYTHON_ECHO_SERVER,
    ]);
    const port = (await server.waitForLine(/^port \d+$/)).split(" ")[1]!;
    const client = await run([
      "--allow-net",
      example("echo_client.ts"),
      "--port",
      port,
      "hi python",
    ]);
    assertEquals(client.code, 0, client.stderr);
    assertEquals(client.stdout.split("\n"), [
      "sent 9 bytes: hi python",
      "received: hi python",
      "connection closed",
      "",
    ]);
    await server.waitForLine(/^python server: 9 bytes echoed after EOF$/);
    assertEquals((await server.status()).code, 0);
  },
});

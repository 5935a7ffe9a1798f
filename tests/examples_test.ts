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
import { within } from "./_stream_helpers.ts";

const ROOT = new URL("..", import.meta.url);
const CHILD_TIMEOUT_MS = 30_000;

function example(name: string): string {
  return new URL(`examples/${name}`, ROOT).pathname;
}

/** Runs a short-lived example to completion (killed after CHILD_TIMEOUT_MS). */
async function run(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), CHILD_TIMEOUT_MS);
  try {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...args],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
      signal: controller.signal,
    }).output();
    return {
      code: output.code,
      stdout: new TextDecoder().decode(output.stdout),
      stderr: new TextDecoder().decode(output.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

/** A running echo_server.ts child whose output is read line by line. */
class EchoServerProcess implements AsyncDisposable {
  readonly lines: string[] = [];
  #child: Deno.ChildProcess;
  #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";
  #timer: ReturnType<typeof setTimeout>;
  #stderr: Promise<string>;

  constructor(args: string[]) {
    const controller = new AbortController();
    this.#timer = setTimeout(() => controller.abort(), CHILD_TIMEOUT_MS);
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...args],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
      signal: controller.signal,
    }).spawn();
    this.#reader = this.#child.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    this.#stderr = new Response(this.#child.stderr).text();
  }

  /** Reads stdout until a line matches `pattern`; returns that line. */
  async waitForLine(pattern: RegExp): Promise<string> {
    const found = this.lines.find((line) => pattern.test(line));
    if (found !== undefined) return found;
    return await within(
      (async () => {
        while (true) {
          const { value, done } = await this.#reader.read();
          if (done) {
            throw new Error(
              `echo_server.ts ended before printing ${pattern}: ${
                this.lines.join(" | ")
              } ${await this.#stderr}`,
            );
          }
          this.#buffer += value;
          let newline;
          while ((newline = this.#buffer.indexOf("\n")) !== -1) {
            const line = this.#buffer.slice(0, newline);
            this.#buffer = this.#buffer.slice(newline + 1);
            this.lines.push(line);
            if (pattern.test(line)) return line;
          }
        }
      })(),
      `echo_server.ts to print ${pattern}`,
    );
  }

  /** Sends SIGINT and waits for the child to exit; returns the exit code. */
  async interrupt(): Promise<number> {
    this.#child.kill("SIGINT");
    await this.waitForLine(/^echo server closed$/);
    const status = await within(this.#child.status, "echo_server.ts to exit");
    return status.code;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    clearTimeout(this.#timer);
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await this.#reader.cancel();
    await this.#stderr;
    await this.#child.status;
  }
}

/** Starts `deno run ARGS` (permissions, examples/echo_server.ts, its flags). */
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
  assert(server.lines.includes("shutting down"));
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

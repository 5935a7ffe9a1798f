// Copyright 2026 the denio authors. MIT license.
// A write pipe whose reader closed: what Deno 2.9 lets denio notice, pinned.
//
// CPython's _UnixWritePipeTransport watches its pipe for readability (an
// EPOLLERR on the write end means the reader went away) and calls
// connection_lost(None) at once; for subprocess_exec that is
// pipe_connection_lost(0, None) right after connection_made. Deno 2.9 has no
// readiness API for a child's stdin or Deno.stdout, a zero-length write
// never reaches the kernel (and Linux returns 0 for it even with no reader),
// and node:child_process's PipeWrap.readStart() on the write end fails at
// once (EBADF) whether or not the reader is there. So denio learns of it on
// the next write, or, for subprocessExec, when the child exits (and then
// reports pipeConnectionLost(0) before processExited, as asyncio). See the
// README's "Where denio differs". If one of these tests starts failing
// because the loss now comes earlier, Deno has gained a way: use it.

import { assertEquals, assertInstanceOf, assertRejects } from "@std/assert";
import {
  connectWritePipe,
  subprocessExec,
  type WriteTransport,
} from "../mod.ts";
import {
  captureExceptions,
  StreamRecorder,
  SubprocessRecorder,
  ticks,
  within,
} from "./_pipe_helpers.ts";
import { peerMissing } from "./_peers.ts";

/** A child that closes its stdin at once, then lives 0.2 s. */
const CLOSES_STDIN = ["-c", "exec 0<&-; sleep 0.2"];

Deno.test("connectWritePipe() on a child's stdin that the child closed: no connectionLost until the next write, then connectionLost(BrokenPipe)", async () => {
  using seen = captureExceptions();
  const child = new Deno.Command("sh", {
    args: CLOSES_STDIN,
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const [transport, protocol] = await connectWritePipe(
    () => new StreamRecorder(),
    child.stdin,
  );
  assertEquals((await within(child.status, "the child to exit")).code, 0);
  await ticks(10);
  // asyncio: connection_lost(None) already. Deno 2.9 gives no sign.
  assertEquals(protocol.events, ["connectionMade"]);
  assertEquals(transport.isClosing(), false);
  // A zero-length write is no probe (the transport drops it, as asyncio).
  (transport as WriteTransport).write(new Uint8Array(0));
  await ticks(10);
  assertEquals(protocol.events, ["connectionMade"]);

  (transport as WriteTransport).write(new Uint8Array([1]));
  const error = await within(protocol.lost.promise, "connectionLost");
  assertInstanceOf(error, Deno.errors.BrokenPipe);
  assertEquals(protocol.events, ["connectionMade", "connectionLost(error)"]);
  // asyncio reports a reader that went away to connection_lost only.
  assertEquals(seen.length, 0);
});

Deno.test("subprocessExec() with a child that closes its stdin: pipeConnectionLost(0, null) comes once, when the child exits, right before processExited (asyncio: at once)", async () => {
  using seen = captureExceptions();
  const [transport, protocol] = await subprocessExec(
    () => new SubprocessRecorder(),
    "sh",
    { args: CLOSES_STDIN },
  );
  // Runs right after the transport's own exit handler, before the
  // callbacks that it queues.
  const child = transport.getExtraInfo("subprocess") as Deno.ChildProcess;
  child.status.then(() => protocol.events.push("(child exited)"));
  assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
  const events = protocol.events;
  assertEquals(events[0], "connectionMade");
  assertEquals(events.at(-1), "connectionLost(null)");
  for (const fd of [0, 1, 2]) {
    assertEquals(
      events.filter((e) => e.startsWith(`pipeConnectionLost(${fd},`)),
      [`pipeConnectionLost(${fd}, null)`],
    );
  }
  // asyncio: connectionMade, pipeConnectionLost(0) at once, then 2 and 1,
  // then processExited. Here pipe 0's loss waits for the exit (Deno gives
  // no earlier sign), then comes right before processExited; pipes 1 and 2
  // race with the exit.
  const lost0 = events.indexOf("pipeConnectionLost(0, null)");
  assertEquals(
    events.slice(lost0 - 1, lost0 + 2),
    ["(child exited)", "pipeConnectionLost(0, null)", "processExited"],
    events.join(", "),
  );
  assertEquals(transport.getReturncode(), 0);
  assertEquals(seen.length, 0);
});

Deno.test("subprocessExec(): a write in flight when the child closes its stdin fails at once with pipeConnectionLost(0, BrokenPipe), long before the exit", async () => {
  using seen = captureExceptions();
  const [transport, protocol] = await subprocessExec(
    () => new SubprocessRecorder(),
    "sh",
    // The reader goes at 0.3 s; the child lives 5 s more unless killed.
    {
      args: ["-c", "sleep 0.3; exec sleep 5 <&-"],
      stdout: "null",
      stderr: "null",
    },
  );
  const stdin = transport.getPipeTransport(0) as WriteTransport;
  stdin.write(new Uint8Array(1 << 20)); // more than the pipe holds
  await within(
    (async () => {
      while (protocol.pipeErrors[0] === undefined) await ticks(1);
    })(),
    "pipeConnectionLost(0)",
  );
  assertInstanceOf(protocol.pipeErrors[0], Deno.errors.BrokenPipe);
  assertEquals(transport.getReturncode(), null, "the child still runs");
  transport.kill();
  assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
  assertEquals(protocol.events.slice(0, 3), [
    "connectionMade",
    "pauseWriting",
    "pipeConnectionLost(0, error)",
  ]);
  assertEquals(seen.length, 0);
});

/** The same child under CPython asyncio, callbacks in order. */
const ASYNCIO_REFERENCE = `
import asyncio
class P(asyncio.SubprocessProtocol):
    def __init__(self):
        self.events = []
        self.done = asyncio.get_running_loop().create_future()
    def connection_made(self, transport):
        self.events.append("connectionMade")
    def pipe_connection_lost(self, fd, exc):
        self.events.append(f"pipeConnectionLost({fd}, {'null' if exc is None else 'error'})")
    def process_exited(self):
        self.events.append("processExited")
    def connection_lost(self, exc):
        self.events.append("connectionLost(null)" if exc is None else "connectionLost(error)")
        self.done.set_result(None)
async def main():
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.subprocess_exec(P, "sh", *${
  JSON.stringify(CLOSES_STDIN)
})
    await asyncio.wait_for(protocol.done, 20)
    transport.close()
    print("|".join(protocol.events))
asyncio.run(main())
`;

Deno.test({
  name:
    "asyncio reference: the same child gives pipeConnectionLost(0, null) first, before pipes 1 and 2 and processExited",
  ignore: peerMissing("python3") !== null,
  async fn() {
    const { code, stdout, stderr } = await new Deno.Command("python3", {
      args: ["-c", ASYNCIO_REFERENCE],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(30_000),
    }).output();
    const decoder = new TextDecoder();
    assertEquals(code, 0, decoder.decode(stderr));
    const events = decoder.decode(stdout).trim().split("|");
    assertEquals(events.slice(0, 2), [
      "connectionMade",
      "pipeConnectionLost(0, null)",
    ]);
    assertEquals(events.at(-1), "connectionLost(null)");
    assertEquals(events.slice(2, -1).sort(), [
      "pipeConnectionLost(1, null)",
      "pipeConnectionLost(2, null)",
      "processExited",
    ]);
  },
});

Deno.test("Deno 2.9 evidence: a zero-length write to a child's stdin whose reader closed succeeds; one byte fails with BrokenPipe", async () => {
  const child = new Deno.Command("sh", {
    args: CLOSES_STDIN,
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
  await within(child.status, "the child to exit");
  const writer = child.stdin.getWriter();
  await within(writer.write(new Uint8Array(0)), "a zero-length write");
  await assertRejects(
    () => within(writer.write(new Uint8Array([1])), "a one-byte write"),
    Deno.errors.BrokenPipe,
  );
  await writer.closed.catch(() => {});
});

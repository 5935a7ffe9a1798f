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
// the next write, or, for subprocessExec, when the child exits. See the
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

Deno.test("subprocessExec() with a child that closes its stdin: pipeConnectionLost(0, null) comes once, when the child exits (asyncio: at once)", async () => {
  using seen = captureExceptions();
  const [transport, protocol] = await subprocessExec(
    () => new SubprocessRecorder(),
    "sh",
    { args: CLOSES_STDIN },
  );
  assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
  const events = protocol.events;
  const at = (event: string) => events.indexOf(event);
  assertEquals(events[0], "connectionMade");
  assertEquals(events.at(-1), "connectionLost(null)");
  for (const fd of [0, 1, 2]) {
    assertEquals(
      events.filter((e) => e.startsWith(`pipeConnectionLost(${fd},`)),
      [`pipeConnectionLost(${fd}, null)`],
    );
  }
  // asyncio: connectionMade, pipeConnectionLost(0), then 2 and 1 and
  // processExited. Here stdin is closed when the exit is reported, so pipe
  // 0's loss follows processExited (pipes 1 and 2 race with the exit).
  assertEquals(
    at("pipeConnectionLost(0, null)") > at("processExited"),
    true,
    events.join(", "),
  );
  assertEquals(transport.getReturncode(), 0);
  assertEquals(seen.length, 0);
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

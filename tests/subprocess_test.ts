// Copyright 2026 the denio authors. MIT license.
import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
  assertStrictEquals,
  assertThrows,
} from "@std/assert";
import {
  type ReadTransport,
  subprocessExec,
  subprocessShell,
  type WriteTransport,
} from "../mod.ts";
import {
  captureExceptions,
  concat,
  SubprocessRecorder,
  ticks,
  within,
} from "./_pipe_helpers.ts";

const encoder = new TextEncoder();

/** Per fd: its events in order; plus the order rules every run must follow. */
function assertLifecycle(recorder: SubprocessRecorder, fds: (0 | 1 | 2)[]) {
  const events = recorder.events;
  assertEquals(events[0], "connectionMade");
  assertEquals(events.at(-1), "connectionLost(null)");
  assertEquals(events.filter((e) => e === "processExited").length, 1);
  for (const fd of fds) {
    const lost = events.filter((e) =>
      e.startsWith(`pipeConnectionLost(${fd},`)
    );
    assertEquals(lost.length, 1, `pipeConnectionLost(${fd}) once`);
    const mine = recorder.eventsOf(fd);
    assertEquals(mine.at(-1), lost[0], `nothing on fd ${fd} after it closed`);
  }
}

Deno.test("subprocessExec() echoes through cat with asyncio's callback order", async () => {
  let eventsAtResolve: string[] = [];
  const [transport, protocol] = await subprocessExec(
    () => new SubprocessRecorder(),
    "cat",
  ).then((pair) => {
    eventsAtResolve = [...pair[1].events];
    return pair;
  });
  assertEquals(eventsAtResolve, ["connectionMade"]);
  assertStrictEquals(protocol.transport, transport);
  const child = transport.getExtraInfo("subprocess") as Deno.ChildProcess;
  assertInstanceOf(child, Deno.ChildProcess);
  assertEquals(transport.getPid(), child.pid);
  assertEquals(transport.getExtraInfo("other", "dflt"), "dflt");
  assertEquals(transport.getReturncode(), null);
  const stdin = transport.getPipeTransport(0) as WriteTransport;
  assertStrictEquals(stdin.getExtraInfo("pipe"), child.stdin);
  assertStrictEquals(
    transport.getPipeTransport(1)!.getExtraInfo("pipe"),
    child.stdout,
  );
  stdin.write(encoder.encode("hello "));
  stdin.write(encoder.encode("cat"));
  stdin.writeEof();
  assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
  assertEquals(protocol.text(1), "hello cat");
  assertEquals(protocol.text(2), "");
  assertEquals(transport.getReturncode(), 0);
  assertEquals(protocol.returncodeAtExit, 0);
  assertLifecycle(protocol, [0, 1, 2]);
  assertEquals(protocol.eventsOf(1), [
    "pipeDataReceived(1)",
    "pipeConnectionLost(1, null)",
  ]);
  assertEquals(protocol.eventsOf(0), ["pipeConnectionLost(0, null)"]);
  assertEquals(protocol.eventsOf(2), ["pipeConnectionLost(2, null)"]);
});

Deno.test("subprocessShell() runs /bin/sh -c with stdout, stderr and the exit code", async () => {
  const [transport, protocol] = await subprocessShell(
    () => new SubprocessRecorder(),
    "echo out; echo err >&2; exit 3",
  );
  assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
  assertEquals(protocol.text(1), "out\n");
  assertEquals(protocol.text(2), "err\n");
  assertEquals(transport.getReturncode(), 3);
  assertEquals(protocol.returncodeAtExit, 3);
  assertLifecycle(protocol, [0, 1, 2]);
  assertEquals(protocol.eventsOf(1), [
    "pipeDataReceived(1)",
    "pipeConnectionLost(1, null)",
  ]);
  assertEquals(protocol.eventsOf(2), [
    "pipeDataReceived(2)",
    "pipeConnectionLost(2, null)",
  ]);
});

Deno.test("subprocessExec() passes args, cwd and env (added to the parent's)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denio_cwd_" });
  try {
    const [, protocol] = await subprocessExec(
      () => new SubprocessRecorder(),
      "sh",
      {
        args: [
          "-c",
          'printf "%s|%s|%s|" "$DENIO_X" "$0" "$PATH" && pwd',
          "zero",
        ],
        cwd: dir,
        env: { DENIO_X: "x y" },
        stdin: "null",
      },
    );
    await within(protocol.lost.promise, "connectionLost");
    const [x, zero, path, cwd] = protocol.text(1).trim().split("|");
    assertEquals(x, "x y");
    assertEquals(zero, "zero");
    assertEquals(path, Deno.env.get("PATH"));
    assertEquals(cwd, await Deno.realPath(dir));
  } finally {
    await Deno.remove(dir);
  }
});

Deno.test("SubprocessTransport.kill() gives returncode -9, terminate() -15", async (t) => {
  for (
    const [method, code] of [["kill", -9], ["terminate", -15]] as const
  ) {
    await t.step(`${method}()`, async () => {
      const [transport, protocol] = await subprocessExec(
        () => new SubprocessRecorder(),
        "sleep",
        { args: ["30"] },
      );
      transport[method]();
      assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
      assertEquals(transport.getReturncode(), code);
      assertEquals(protocol.returncodeAtExit, code);
      assertLifecycle(protocol, [0, 1, 2]);
    });
  }
});

Deno.test("SubprocessTransport signals after the child exited throw Deno.errors.NotFound", async () => {
  const [transport, protocol] = await subprocessExec(
    () => new SubprocessRecorder(),
    "true",
  );
  await within(protocol.lost.promise, "connectionLost");
  assertThrows(() => transport.kill(), Deno.errors.NotFound, "has exited");
  assertThrows(() => transport.terminate(), Deno.errors.NotFound);
  assertThrows(
    () => transport.sendSignal("SIGINT"),
    Deno.errors.NotFound,
    "Cannot send SIGINT to child process as it has exited: current value is returncode 0",
  );
  assertThrows(() => transport.sendSignal(9 as never), TypeError);
});

Deno.test("SubprocessTransport.sendSignal() delivers a signal the child handles", async () => {
  const [transport, protocol] = await subprocessShell(
    () => new SubprocessRecorder(),
    "trap 'echo got-usr1; exit 0' USR1; echo ready; while :; do sleep 0.05; done",
    { stdin: "null" },
  );
  for (let i = 0; i < 400 && protocol.text(1) === ""; i++) await ticks(1);
  assertEquals(protocol.text(1), "ready\n");
  transport.sendSignal("SIGUSR1");
  await within(protocol.lost.promise, "connectionLost");
  assertEquals(protocol.text(1), "ready\ngot-usr1\n");
  assertEquals(transport.getReturncode(), 0);
});

Deno.test("subprocessExec() stdio 'null' and 'inherit' give no pipe transports", async (t) => {
  await t.step("all null", async () => {
    const [transport, protocol] = await subprocessExec(
      () => new SubprocessRecorder(),
      "true",
      { stdin: "null", stdout: "null", stderr: "null" },
    );
    assertEquals(transport.getPipeTransport(0), null);
    assertEquals(transport.getPipeTransport(1), null);
    assertEquals(transport.getPipeTransport(2), null);
    assertThrows(() => transport.getPipeTransport(3 as never), RangeError);
    await within(protocol.lost.promise, "connectionLost");
    assertEquals(protocol.events, [
      "connectionMade",
      "processExited",
      "connectionLost(null)",
    ]);
  });
  await t.step("inherit", async () => {
    const [transport, protocol] = await subprocessExec(
      () => new SubprocessRecorder(),
      "true",
      { stdin: "inherit", stdout: "inherit", stderr: "inherit" },
    );
    assertEquals(transport.getPipeTransport(0), null);
    assertEquals(transport.getPipeTransport(1), null);
    assertEquals(transport.getPipeTransport(2), null);
    await within(protocol.lost.promise, "connectionLost");
    assertEquals(protocol.events, [
      "connectionMade",
      "processExited",
      "connectionLost(null)",
    ]);
  });
  for (const fd of [0, 1, 2] as const) {
    await t.step(`only fd ${fd} piped`, async () => {
      const stdio = ["null", "null", "null"] as ("piped" | "null")[];
      stdio[fd] = "piped";
      const [transport, protocol] = await subprocessShell(
        () => new SubprocessRecorder(),
        "echo x; echo y >&2",
        { stdin: stdio[0]!, stdout: stdio[1]!, stderr: stdio[2]! },
      );
      for (const other of [0, 1, 2] as const) {
        assertEquals(transport.getPipeTransport(other) !== null, other === fd);
      }
      await within(protocol.lost.promise, "connectionLost");
      assertLifecycle(protocol, [fd]);
      assertEquals(
        protocol.events.filter((e) => e.startsWith("pipeConnectionLost")),
        [`pipeConnectionLost(${fd}, null)`],
      );
      if (fd !== 0) assertEquals(protocol.text(fd), fd === 1 ? "x\n" : "y\n");
    });
  }
});

Deno.test("SubprocessTransport stdin flow control and stdout pauseReading() work together", async () => {
  const [transport, protocol] = await subprocessExec(
    () => new SubprocessRecorder(),
    "cat",
    { stderr: "null" },
  );
  const stdin = transport.getPipeTransport(0) as WriteTransport;
  const stdout = transport.getPipeTransport(1) as ReadTransport;
  stdout.pauseReading();
  assertEquals(stdout.isReading(), false);
  const size = 4 * 1024 * 1024;
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (i * 7 + (i >> 12)) & 0xff;
  stdin.write(data);
  // Over the high watermark inside write(): pauseWriting, synchronously.
  assertEquals(protocol.events, ["connectionMade", "pauseWriting"]);
  // cat blocks on its stdout, so stdin cannot drain and nothing is delivered.
  await ticks(20);
  assertEquals(protocol.events, ["connectionMade", "pauseWriting"]);
  assert(stdin.getWriteBufferSize() > stdin.getWriteBufferLimits().low);
  stdout.resumeReading();
  assertEquals(stdout.isReading(), true);
  for (let i = 0; i < 2000 && !protocol.events.includes("resumeWriting"); i++) {
    await ticks(1);
  }
  assert(protocol.events.includes("resumeWriting"));
  stdin.writeEof();
  assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
  assertEquals(concat(protocol.out[1]!), data);
  assertEquals(
    protocol.events.filter((e) => e.endsWith("Writing")),
    ["pauseWriting", "resumeWriting"],
  );
  assertLifecycle(protocol, [0, 1]);
});

Deno.test("subprocessExec() moves 64 MiB through cat byte-exact with a bounded write buffer", async () => {
  const total = 64 * 1024 * 1024;
  const chunkSize = 256 * 1024;
  const base = new Uint8Array(chunkSize);
  for (let i = 0; i < chunkSize; i++) base[i] = (i * 131 + (i >> 8)) & 0xff;
  // FNV-1a over the byte stream: order-sensitive, nothing kept.
  function fnv(hash: number, data: Uint8Array): number {
    for (let i = 0; i < data.length; i++) {
      hash = Math.imul(hash ^ data[i]!, 16777619);
    }
    return hash >>> 0;
  }
  let sentHash = 2166136261;
  let receivedHash = 2166136261;
  let received = 0;
  let sent = 0;
  let maxBuffered = 0;
  let pauses = 0;
  let paused = false;
  const done = Promise.withResolvers<Error | null>();
  function pump(): void {
    while (!paused && sent < total) {
      const chunk = base.slice();
      new DataView(chunk.buffer).setUint32(0, sent / chunkSize);
      sentHash = fnv(sentHash, chunk);
      sent += chunk.length;
      stdin.write(chunk);
      maxBuffered = Math.max(maxBuffered, stdin.getWriteBufferSize());
    }
    if (sent === total && !paused) stdin.writeEof();
  }
  const [transport] = await subprocessExec(
    () => ({
      pipeDataReceived(fd: 1 | 2, data: Uint8Array) {
        if (fd !== 1) return;
        receivedHash = fnv(receivedHash, data);
        received += data.length;
      },
      pauseWriting() {
        paused = true;
        pauses++;
      },
      resumeWriting() {
        paused = false;
        pump();
      },
      connectionLost: done.resolve,
    }),
    "cat",
    { stderr: "null" },
  );
  const stdin = transport.getPipeTransport(0) as WriteTransport;
  pump();
  assertEquals(await within(done.promise, "connectionLost", 50_000), null);
  assertEquals(received, total);
  assertEquals(receivedHash, sentHash);
  assertEquals(transport.getReturncode(), 0);
  assert(pauses > 1, `flow control engaged (${pauses} pauses)`);
  const { high } = stdin.getWriteBufferLimits();
  assert(
    maxBuffered <= high + chunkSize,
    `write buffer stayed under high + one chunk (max ${maxBuffered})`,
  );
});

Deno.test("subprocessExec() child exiting while we write gives pipeConnectionLost(0, error) once", async () => {
  using seen = captureExceptions();
  const protocol = new SubprocessRecorder();
  protocol.resumeWriting = () => {
    protocol.events.push("resumeWriting");
    stdin.write(new Uint8Array(256 * 1024));
  };
  const [transport] = await subprocessExec(() => protocol, "head", {
    args: ["-c", "1000"],
    stdout: "null",
  });
  const stdin = transport.getPipeTransport(0) as WriteTransport;
  stdin.write(new Uint8Array(1024 * 1024));
  assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
  assertInstanceOf(protocol.pipeErrors[0], Deno.errors.BrokenPipe);
  assertEquals(transport.getReturncode(), 0);
  assertLifecycle(protocol, [0, 2]);
  assertEquals(seen.length, 0);
});

Deno.test("SubprocessTransport.close() kills a live child and closes its pipes", async () => {
  const [transport, protocol] = await subprocessShell(
    () => new SubprocessRecorder(),
    "echo started; exec sleep 30",
  );
  for (let i = 0; i < 400 && protocol.text(1) === ""; i++) await ticks(1);
  transport.close();
  transport.close(); // idempotent
  assert(transport.isClosing());
  assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
  assertEquals(transport.getReturncode(), -9);
  assertLifecycle(protocol, [0, 1, 2]);
  assertThrows(() => transport.kill(), Deno.errors.NotFound);
});

Deno.test("SubprocessTransport.close() after exit closes the pipes without a signal", async () => {
  const [transport, protocol] = await subprocessExec(
    () => new SubprocessRecorder(),
    "true",
    { stdout: "null", stderr: "null" },
  );
  await within(protocol.exited.promise, "processExited");
  transport.close();
  assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
  assertEquals(transport.getReturncode(), 0);
});

Deno.test("SubprocessProtocol callbacks that throw are fatal: handler, child killed, connectionLost(error)", async (t) => {
  await t.step("pipeDataReceived", async () => {
    using seen = captureExceptions();
    const boom = new Error("bad data");
    const protocol = new SubprocessRecorder();
    protocol.pipeDataReceived = () => {
      throw boom;
    };
    const [transport] = await subprocessShell(
      () => protocol,
      "echo hi; exec sleep 30",
    );
    assertStrictEquals(
      await within(protocol.lost.promise, "connectionLost"),
      boom,
    );
    assertEquals(transport.getReturncode(), -9);
    assertEquals(protocol.events, ["connectionMade", "connectionLost(error)"]);
    assertEquals(seen.length, 1);
    assert(seen[0]!.message.includes("pipeDataReceived"), seen[0]!.message);
    assertStrictEquals(seen[0]!.error, boom);
    assertStrictEquals(seen[0]!.transport, transport);
    assertStrictEquals(seen[0]!.protocol, protocol);
  });
  await t.step("processExited", async () => {
    using seen = captureExceptions();
    const boom = new Error("bad exit");
    const protocol = new SubprocessRecorder();
    protocol.processExited = () => {
      throw boom;
    };
    await subprocessExec(() => protocol, "true");
    assertStrictEquals(
      await within(protocol.lost.promise, "connectionLost"),
      boom,
    );
    assertEquals(seen.length, 1);
    assert(seen[0]!.message.includes("processExited"), seen[0]!.message);
    assertEquals(protocol.events.at(-1), "connectionLost(error)");
  });
  await t.step("connectionMade", async () => {
    using seen = captureExceptions();
    const boom = new Error("bad start");
    const protocol = new SubprocessRecorder();
    protocol.connectionMade = () => {
      throw boom;
    };
    const [transport] = await subprocessExec(() => protocol, "sleep", {
      args: ["30"],
    });
    assertStrictEquals(
      await within(protocol.lost.promise, "connectionLost"),
      boom,
    );
    assertEquals(transport.getReturncode(), -9);
    assertEquals(seen.length, 1);
    assertEquals(protocol.events, ["connectionLost(error)"]);
  });
  await t.step("pauseWriting", async () => {
    using seen = captureExceptions();
    const boom = new Error("bad pause");
    const protocol = new SubprocessRecorder();
    protocol.pauseWriting = () => {
      throw boom;
    };
    const [transport] = await subprocessExec(() => protocol, "sleep", {
      args: ["30"],
    });
    (transport.getPipeTransport(0) as WriteTransport).write(
      new Uint8Array(1024 * 1024),
    );
    assertStrictEquals(
      await within(protocol.lost.promise, "connectionLost"),
      boom,
    );
    assertEquals(seen.length, 1);
    assert(seen[0]!.message.includes("pauseWriting"), seen[0]!.message);
  });
});

Deno.test("SubprocessProtocol.connectionLost() that throws goes to the exception handler", async () => {
  using seen = captureExceptions();
  const boom = new Error("bad lost");
  const done = Promise.withResolvers<void>();
  await subprocessExec(
    () => ({
      connectionLost() {
        done.resolve();
        throw boom;
      },
    }),
    "true",
    { stdin: "null", stdout: "null", stderr: "null" },
  );
  await within(done.promise, "connectionLost");
  await ticks(1);
  assertEquals(seen.length, 1);
  assertStrictEquals(seen[0]!.error, boom);
});

Deno.test("subprocessExec() and subprocessShell() reject bad input", async () => {
  const factory = () => new SubprocessRecorder();
  await assertRejects(
    () => subprocessExec(factory, 42 as never),
    TypeError,
    "Cannot run subprocess as command is not a non-empty string: current value is 42",
  );
  await assertRejects(() => subprocessExec(factory, ""), TypeError);
  await assertRejects(
    () => subprocessExec(factory, "cat", { stdin: "pipe" as never }),
    TypeError,
    'Cannot run subprocess as stdin is not "piped", "inherit" or "null": current value is "pipe"',
  );
  await assertRejects(
    () => subprocessExec(factory, "cat", { stderr: 2 as never }),
    TypeError,
  );
  await assertRejects(
    () => subprocessExec(factory, "echo", { args: ["a", 1 as never] }),
    TypeError,
    "args holds a value that is not a string",
  );
  await assertRejects(
    () => subprocessExec(factory, "echo", { args: "a" as never }),
    TypeError,
    "args is not an array",
  );
  await assertRejects(
    () => subprocessExec(factory, "echo", { env: { A: 1 as never } }),
    TypeError,
    "env.A is not a string",
  );
  await assertRejects(
    () => subprocessExec(factory, "echo", { cwd: 5 as never }),
    TypeError,
  );
  await assertRejects(
    () => subprocessExec(factory, "echo", 5 as never),
    TypeError,
    "options is not an object",
  );
  await assertRejects(
    () => subprocessExec(null as never, "echo"),
    TypeError,
    "protocolFactory is not a function",
  );
  await assertRejects(
    () => subprocessShell(factory, ["echo"] as never),
    TypeError,
    "Cannot run shell subprocess as command is not a string",
  );
  await assertRejects(
    () => subprocessShell(factory, "echo", { args: ["x"] }),
    TypeError,
    "args is not supported",
  );
  await assertRejects(
    () => subprocessExec(factory, "denio-no-such-program-xyz"),
    Deno.errors.NotFound,
  );
  const aborted = AbortSignal.abort(new Error("stop"));
  await assertRejects(
    () => subprocessExec(factory, "true", { signal: aborted }),
    Error,
    "stop",
  );
});

Deno.test("SubprocessTransport.setProtocol() redirects the callbacks", async () => {
  const first = new SubprocessRecorder();
  const second = new SubprocessRecorder();
  const [transport] = await subprocessExec(() => first, "cat", {
    stderr: "null",
  });
  transport.setProtocol(second);
  assertStrictEquals(transport.getProtocol(), second);
  assertThrows(() => transport.setProtocol(null as never), TypeError);
  const stdin = transport.getPipeTransport(0) as WriteTransport;
  stdin.write(encoder.encode("to second"));
  stdin.writeEof();
  await within(second.lost.promise, "connectionLost");
  assertEquals(first.events, ["connectionMade"]);
  assertEquals(second.text(1), "to second");
});

Deno.test("subprocessExec() signal option: aborting sends the child SIGTERM", async () => {
  const controller = new AbortController();
  const [transport, protocol] = await subprocessExec(
    () => new SubprocessRecorder(),
    "sleep",
    { args: ["30"], signal: controller.signal },
  );
  controller.abort();
  assertEquals(await within(protocol.lost.promise, "connectionLost"), null);
  assertEquals(transport.getReturncode(), -15);
  assertLifecycle(protocol, [0, 1, 2]);
});

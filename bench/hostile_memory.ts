// Copyright 2026 the denio authors. MIT license.
// Memory under hostile load (issue 9, item 7), one process, loopback:
//  1. `bodies`: N ContentLengthProtocol connections each announce a 16 MB
//     body and send 8 MiB of it, then all leave mid-body (EOF): RSS held,
//     teardown time, the longest event-loop stall and the RSS peak.
//  2. `flood`: a protocol that ignores pauseWriting writes to a peer that
//     never reads, for 2 s: RSS reached.
// Each runs without and with `maxBufferedBytes` (LIMIT_MIB, default 256),
// each case in a fresh process so that no RSS carries over.
//
//   deno run -A bench/hostile_memory.ts [N=200]

import { ContentLengthProtocol, createServer, type Transport } from "../mod.ts";
import { setExceptionHandler } from "../mod.ts";

const N = Number(Deno.args[0] ?? 200);
const CASE = Deno.args[1];
const LIMIT = Number(Deno.env.get("LIMIT_MIB") ?? 256) * 2 ** 20;
const MiB = 2 ** 20;
const mib = (n: number) => (n / MiB).toFixed(0);
setExceptionHandler(() => {});

/** Samples RSS and event-loop lag every 5 ms until stopped. */
function monitor() {
  let last = performance.now();
  let lag = 0;
  let peak = Deno.memoryUsage().rss;
  const timer = setInterval(() => {
    const now = performance.now();
    lag = Math.max(lag, now - last - 5);
    last = now;
    peak = Math.max(peak, Deno.memoryUsage().rss);
  }, 5);
  return {
    stop() {
      clearInterval(timer);
      const now = performance.now();
      lag = Math.max(lag, now - last - 5);
      return { lag, peak: Math.max(peak, Deno.memoryUsage().rss) };
    },
  };
}

async function bodies(limit: number | undefined): Promise<string> {
  let lost = 0;
  let cut = 0;
  const allLost = Promise.withResolvers<void>();
  const server = await createServer(() =>
    new ContentLengthProtocol({
      connectionLost(error) {
        if (error instanceof RangeError) cut++;
        if (++lost === N) allLost.resolve();
      },
    }), {
    hostname: "127.0.0.1",
    port: 0,
    ...(limit ? { maxBufferedBytes: limit } : {}),
  });
  const { port } = server.addrs[0] as Deno.NetAddr;
  const header = new TextEncoder().encode("Content-Length: 16000000\r\n\r\n");
  const chunk = new Uint8Array(MiB);
  const conns: Deno.Conn[] = [];
  for (let i = 0; i < N; i++) {
    const conn = await Deno.connect({ port });
    conns.push(conn);
    try {
      await conn.write(header);
      for (let sent = 0; sent < 8 * MiB; sent += chunk.length) {
        let offset = 0;
        while (offset < chunk.length) {
          offset += await conn.write(chunk.subarray(offset));
        }
      }
    } catch {
      // Cut off by the limit.
    }
  }
  await new Promise((resolve) => setTimeout(resolve, 300));
  const held = Deno.memoryUsage().rss;
  const watch = monitor();
  const start = performance.now();
  for (const conn of conns) await conn.closeWrite().catch(() => {});
  await allLost.promise;
  const teardown = performance.now() - start;
  const { lag, peak } = watch.stop();
  for (const conn of conns) conn.close();
  server.close();
  await server.waitClosed();
  return `bodies ${N} x 8 MiB, limit ${
    limit ? mib(limit) + " MiB" : "none"
  }: ` +
    `held RSS ${mib(held)} MiB, cut ${cut}, teardown ${
      teardown.toFixed(0)
    } ms, ` +
    `longest stall ${lag.toFixed(0)} ms, peak RSS ${mib(peak)} MiB`;
}

async function flood(limit: number | undefined): Promise<string> {
  let cutByLimit = false;
  const server = await createServer(() => {
    let transport: Transport;
    let timer: ReturnType<typeof setInterval> | undefined;
    return {
      connectionMade(t: Transport) {
        transport = t;
        timer = setInterval(() => {
          for (let i = 0; i < 16 && !transport.isClosing(); i++) {
            transport.write(new Uint8Array(MiB).fill(1));
          }
        }, 10);
      },
      connectionLost(error: Error | null) {
        clearInterval(timer);
        if (error instanceof RangeError) cutByLimit = true;
      },
    };
  }, {
    hostname: "127.0.0.1",
    port: 0,
    ...(limit ? { maxBufferedBytes: limit } : {}),
  });
  const { port } = server.addrs[0] as Deno.NetAddr;
  const conn = await Deno.connect({ port });
  const watch = monitor();
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const { peak } = watch.stop();
  conn.close();
  server.closeClients();
  server.abortClients();
  server.close();
  await server.waitClosed();
  return `flood 2 s, limit ${limit ? mib(limit) + " MiB" : "none"}: peak RSS ${
    mib(peak)
  } MiB, ${cutByLimit ? "cut by the limit (RangeError)" : "not cut"}`;
}

if (CASE === undefined) {
  for (const name of ["bodies", "bodies-limit", "flood", "flood-limit"]) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", import.meta.filename!, String(N), name],
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (!out.success) Deno.exit(1);
  }
} else {
  const limit = CASE.endsWith("-limit") ? LIMIT : undefined;
  console.log(await (CASE.startsWith("bodies") ? bodies : flood)(limit));
}

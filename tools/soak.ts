// Copyright 2026 the denio authors. MIT license.
/**
 * Soak test: one echo server, many concurrent clients for `--minutes N`,
 * mixing checksummed transfers of random sizes, connection churn and
 * faults (client resets and aborts, stalled readers, server-side aborts,
 * throwing protocols). Prints a status line every ~10 s and a summary at
 * the end; exits 1 if a checksum failed, a transfer timed out, a callback
 * ran twice or out of order, an error escaped (unhandled rejection or an
 * unexpected exception-handler call), or a file descriptor leaked.
 *
 * ```sh
 * deno task soak                       # 10 minutes
 * deno task soak --minutes 1 --concurrency 20 --seed 7
 * ```
 *
 * @module
 */

import {
  createConnection,
  createServer,
  type Protocol,
  setExceptionHandler,
  type Transport,
} from "../mod.ts";

// ------------------------------------------------------------------ options

function option(name: string, fallback: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  const raw = i >= 0
    ? Deno.args[i + 1]
    : Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(
      `Cannot run soak as --${name} is not a positive number: current value is ${raw}`,
    );
  }
  return value;
}

const ONLY = (() => {
  const i = Deno.args.indexOf("--only");
  return i >= 0 ? Deno.args[i + 1] : undefined;
})();
const MINUTES = option("minutes", 10);
const CONCURRENCY = Math.floor(option("concurrency", 48));
const SEED = Math.floor(option("seed", 1));
const REPORT_EVERY_MS = 10_000;
const TRANSFER_TIMEOUT_MS = 120_000;
const MAX_TRANSFER = 4 * 1024 * 1024;

// ------------------------------------------------------------------ helpers

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return function next(): number {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Adler-32, incremental. */
class Checksum {
  #a = 1;
  #b = 0;
  bytes = 0;
  update(data: Uint8Array): void {
    let a = this.#a;
    let b = this.#b;
    let i = 0;
    while (i < data.length) {
      const end = Math.min(data.length, i + 5552);
      for (; i < end; i++) {
        a += data[i]!;
        b += a;
      }
      a %= 65521;
      b %= 65521;
    }
    this.#a = a;
    this.#b = b;
    this.bytes += data.length;
  }
  digest(): number {
    return ((this.#b << 16) | this.#a) >>> 0;
  }
}

function openFds(): number {
  let n = 0;
  for (const _ of Deno.readDirSync("/proc/self/fd")) n++;
  return n - 1;
}

/** What each open descriptor points at (socket:[…], anon_inode:…, files). */
function fdTargets(): Map<string, string> {
  const targets = new Map<string, string>();
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    try {
      targets.set(entry.name, Deno.readLinkSync(`/proc/self/fd/${entry.name}`));
    } catch {
      // The directory's own descriptor, gone by now.
    }
  }
  return targets;
}

const TCP_STATES = [
  "",
  "ESTABLISHED",
  "SYN_SENT",
  "SYN_RECV",
  "FIN_WAIT1",
  "FIN_WAIT2",
  "TIME_WAIT",
  "CLOSE",
  "CLOSE_WAIT",
  "LAST_ACK",
  "LISTEN",
  "CLOSING",
];

/** For `socket:[inode]`, its TCP addresses and state from /proc/net/tcp. */
function socketInfo(target: string): string {
  const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
  if (inode === undefined) return "";
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = Deno.readTextFileSync(table);
    } catch {
      continue;
    }
    for (const row of text.split("\n").slice(1)) {
      const cols = row.trim().split(/\s+/);
      if (cols[9] !== inode) continue;
      const port = (addr: string) => parseInt(addr.split(":")[1]!, 16);
      return ` (tcp ${port(cols[1]!)} -> ${port(cols[2]!)}, ${
        TCP_STATES[parseInt(cols[3]!, 16)]
      }, send queue ${parseInt(cols[4]!.split(":")[0]!, 16)}, receive queue ${
        parseInt(cols[4]!.split(":")[1]!, 16)
      })`;
    }
  }
  try {
    const unix = Deno.readTextFileSync("/proc/net/unix").split("\n")
      .find((row) => row.trim().split(/\s+/)[6] === inode);
    if (unix !== undefined) return ` (unix: ${unix.trim()})`;
  } catch {
    // No /proc/net/unix.
  }
  return "";
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Reads `conn` to its end (EOF or an error), bounded by `ms`. */
async function drain(conn: Deno.Conn, ms: number): Promise<void> {
  const buffer = new Uint8Array(64 * 1024);
  const deadline = Date.now() + ms;
  const timer = setTimeout(() => {
    try {
      conn.close();
    } catch {
      // Closed already.
    }
  }, ms);
  try {
    while (Date.now() < deadline) {
      if (await conn.read(buffer) === null) return;
    }
  } catch {
    // A reset (or our own close at the deadline) ends it too.
  } finally {
    clearTimeout(timer);
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Closed already.
  }
}

// ------------------------------------------------------------------- state

const stats = {
  served: 0, // server connectionMade
  serverLost: 0,
  doubleLost: 0,
  afterLost: 0,
  transfers: 0,
  bytesMoved: 0,
  checksumFailures: 0,
  timeouts: 0,
  faults: {} as Record<string, number>,
  injectedThrows: 0,
  expectedContexts: 0,
  unexpectedContexts: 0,
  unhandled: 0,
  clientErrors: 0,
};
const firstProblems: string[] = [];

function problem(text: string): void {
  if (firstProblems.length < 10) firstProblems.push(text);
}

function fault(kind: string): void {
  stats.faults[kind] = (stats.faults[kind] ?? 0) + 1;
}

class InjectedFault extends Error {
  override name = "InjectedFault";
}

globalThis.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  stats.unhandled++;
  problem(`unhandled rejection: ${event.reason?.stack ?? event.reason}`);
});
globalThis.addEventListener("error", (event) => {
  event.preventDefault();
  stats.unhandled++;
  problem(`uncaught error: ${event.error?.stack ?? event.message}`);
});
setExceptionHandler((context) => {
  if (context.error instanceof InjectedFault) {
    stats.expectedContexts++;
    return;
  }
  stats.unexpectedContexts++;
  problem(`exception handler: ${context.message}: ${context.error}`);
});

// ------------------------------------------------------------------ server

/**
 * The first byte picks the behaviour: "E" echo (pausing its reads while its
 * own buffer is over the high watermark), "T" throw from dataReceived after
 * 1000 bytes, "A" abort after 1000 bytes, "S" stream without end to a peer
 * that stalls, aborting once paused for 100 ms.
 */
class SoakServer implements Protocol {
  #transport: Transport | undefined;
  #mode = 0;
  #count = 0;
  #lost = false;
  #paused = false;
  #stallTimer: ReturnType<typeof setTimeout> | undefined;
  static readonly block = new Uint8Array(64 * 1024).fill(0x53);

  connectionMade(transport: Transport): void {
    this.#transport = transport;
    stats.served++;
  }

  dataReceived(data: Uint8Array): void {
    if (this.#lost) stats.afterLost++;
    if (this.#mode === 0) {
      this.#mode = data[0]!;
      data = data.subarray(1);
      if (this.#mode === 0x53) this.#stream();
    }
    switch (this.#mode) {
      case 0x45: // E
        if (data.length > 0) this.#transport!.write(data);
        return;
      case 0x54: // T
        this.#count += data.length;
        if (this.#count >= 1000) {
          stats.injectedThrows++;
          throw new InjectedFault("injected by the soak test");
        }
        return;
      case 0x41: // A
        this.#count += data.length;
        if (this.#count >= 1000) this.#transport!.abort();
        return;
      default:
        return;
    }
  }

  #stream(): void {
    const transport = this.#transport!;
    while (!this.#paused && !transport.isClosing()) {
      transport.write(SoakServer.block);
    }
  }

  pauseWriting(): void {
    this.#paused = true;
    if (this.#mode === 0x45) this.#transport!.pauseReading();
    if (this.#mode === 0x53) {
      this.#stallTimer = setTimeout(() => this.#transport!.abort(), 100);
    }
  }

  resumeWriting(): void {
    this.#paused = false;
    if (this.#mode === 0x45) this.#transport!.resumeReading();
    if (this.#mode === 0x53) {
      clearTimeout(this.#stallTimer);
      this.#stream();
    }
  }

  connectionLost(_error: Error | null): void {
    clearTimeout(this.#stallTimer);
    if (this.#lost) {
      stats.doubleLost++;
      problem("server connectionLost called twice");
      return;
    }
    this.#lost = true;
    stats.serverLost++;
  }
}

// ------------------------------------------------------------------ clients

class TransferClient implements Protocol {
  transport: Transport | undefined;
  readonly sent = new Checksum();
  readonly received = new Checksum();
  readonly lost = Promise.withResolvers<Error | null>();
  lostCalls = 0;
  #payload: Uint8Array;
  #offset: number;
  #end: number;
  #paused = false;

  constructor(payload: Uint8Array, offset: number, length: number) {
    this.#payload = payload;
    this.#offset = offset;
    this.#end = offset + length;
  }

  connectionMade(transport: Transport): void {
    this.transport = transport;
    transport.write(new Uint8Array([0x45]));
    this.#pump();
  }

  #pump(): void {
    const transport = this.transport!;
    while (!this.#paused && this.#offset < this.#end) {
      const chunk = this.#payload.subarray(
        this.#offset,
        Math.min(this.#end, this.#offset + 64 * 1024),
      );
      this.#offset += chunk.length;
      this.sent.update(chunk);
      transport.write(chunk);
    }
    if (this.#offset >= this.#end && !this.#paused) transport.writeEof();
  }

  pauseWriting(): void {
    this.#paused = true;
  }

  resumeWriting(): void {
    this.#paused = false;
    this.#pump();
  }

  dataReceived(data: Uint8Array): void {
    this.received.update(data);
  }

  connectionLost(error: Error | null): void {
    this.lostCalls++;
    this.lost.resolve(error);
  }
}

type Scenario =
  | "transfer"
  | "churn"
  | "client-reset"
  | "client-abort"
  | "stall"
  | "throwing-protocol"
  | "server-abort";

function pick(rand: () => number): Scenario {
  const r = rand();
  if (r < 0.65) return "transfer";
  if (r < 0.72) return "churn";
  if (r < 0.78) return "client-reset";
  if (r < 0.84) return "client-abort";
  if (r < 0.89) return "stall";
  if (r < 0.95) return "throwing-protocol";
  return "server-abort";
}

async function transfer(
  port: number,
  payload: Uint8Array,
  rand: () => number,
): Promise<void> {
  // Log-uniform sizes from 0 to 4 MiB.
  const size = rand() < 0.05
    ? 0
    : Math.floor(Math.exp(rand() * Math.log(MAX_TRANSFER)));
  const offset = Math.floor(rand() * (payload.length - size));
  const [transport, client] = await createConnection(
    () => new TransferClient(payload, offset, size),
    { hostname: "127.0.0.1", port },
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), TRANSFER_TIMEOUT_MS);
  });
  const result = await Promise.race([client.lost.promise, timedOut]);
  clearTimeout(timer);
  if (result === "timeout") {
    stats.timeouts++;
    problem(`transfer of ${size} bytes timed out`);
    transport.abort();
    await client.lost.promise;
    return;
  }
  if (result !== null) {
    stats.clientErrors++;
    problem(`transfer lost with ${result}`);
  }
  if (client.lostCalls !== 1) problem("client connectionLost count");
  stats.transfers++;
  stats.bytesMoved += client.sent.bytes + client.received.bytes;
  if (
    client.received.bytes !== size ||
    client.received.digest() !== client.sent.digest()
  ) {
    stats.checksumFailures++;
    problem(
      `checksum: sent ${client.sent.bytes} (${client.sent.digest()}), got ${client.received.bytes} (${client.received.digest()})`,
    );
  }
}

async function scenario(
  kind: Scenario,
  port: number,
  payload: Uint8Array,
  rand: () => number,
): Promise<void> {
  switch (kind) {
    case "transfer":
      await transfer(port, payload, rand);
      return;
    case "churn": {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      fault(kind);
      return;
    }
    case "client-reset": {
      // Echo data comes back; we close without reading it: a reset.
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        await conn.write(new Uint8Array([0x45]));
        await conn.write(payload.subarray(0, 32 * 1024));
        await sleep(5 + rand() * 20);
      } finally {
        closeQuietly(conn);
      }
      fault(kind);
      return;
    }
    case "client-abort": {
      const lost = Promise.withResolvers<Error | null>();
      const [transport] = await createConnection(() => ({
        connectionLost: lost.resolve,
      }), { hostname: "127.0.0.1", port });
      transport.write(new Uint8Array([0x45]));
      transport.write(payload.subarray(0, 256 * 1024));
      if (rand() < 0.5) await sleep(rand() * 5);
      transport.abort();
      const error = await lost.promise;
      if (error !== null) problem(`aborted client lost with ${error}`);
      fault(kind);
      return;
    }
    case "stall": {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        await conn.write(new Uint8Array([0x53]));
        await sleep(300);
        await drain(conn, 30_000);
      } finally {
        closeQuietly(conn);
      }
      fault(kind);
      return;
    }
    case "throwing-protocol":
    case "server-abort": {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        await conn.write(
          new Uint8Array([kind === "throwing-protocol" ? 0x54 : 0x41]),
        );
        await conn.write(payload.subarray(0, 2000));
        await drain(conn, 30_000);
      } finally {
        closeQuietly(conn);
      }
      fault(kind);
      return;
    }
    default: {
      const never: never = kind;
      throw new Error(`Unknown scenario ${String(never)}`);
    }
  }
}

// -------------------------------------------------------------------- main

async function warmUp(): Promise<void> {
  const server = await createServer(() => new SoakServer(), {
    hostname: "127.0.0.1",
    port: 0,
  });
  const { port } = server.addrs[0] as Deno.NetAddr;
  await transfer(port, new Uint8Array(2048), mulberry32(0));
  server.close();
  await server.waitClosed();
  stats.served =
    stats.serverLost =
    stats.transfers =
    stats.bytesMoved =
      0;
}

async function main(): Promise<number> {
  const hasResources = typeof (Deno as { resources?: unknown }).resources ===
    "function";
  await warmUp();
  // Deno opens a Unix socket pair of its own (with SIGINT/SIGTERM/SIGHUP/
  // SIGUSR1 handlers) about 500 ms after its event loop starts: take the
  // baseline after that.
  await sleep(1000);
  const fdsBefore = openFds();
  const targetsBefore = fdTargets();
  const rssBefore = Deno.memoryUsage().rss;
  const started = Date.now();
  const deadline = started + MINUTES * 60_000;
  console.log(
    `soak: ${MINUTES} min, ${CONCURRENCY} concurrent clients, seed ${SEED}, ${fdsBefore} fds open, rss ${
      mib(rssBefore)
    }`,
  );

  const server = await createServer(() => new SoakServer(), {
    hostname: "127.0.0.1",
    port: 0,
  });
  const { port } = server.addrs[0] as Deno.NetAddr;
  const payload = new Uint8Array(2 * MAX_TRANSFER);
  const fill = mulberry32(SEED);
  for (let i = 0; i < payload.length; i += 4) {
    const v = (fill() * 4294967296) >>> 0;
    payload[i] = v;
    payload[i + 1] = v >>> 8;
    payload[i + 2] = v >>> 16;
    payload[i + 3] = v >>> 24;
  }

  function faultsTotal(): number {
    return Object.values(stats.faults).reduce((a, b) => a + b, 0);
  }
  function line(label: string): string {
    const elapsed = ((Date.now() - started) / 1000).toFixed(0);
    return `${label} ${elapsed}s: served ${stats.served} (open ${
      stats.served - stats.serverLost
    }), transfers ${stats.transfers}, moved ${
      mib(stats.bytesMoved)
    }, faults ${faultsTotal()}, checksum failures ${stats.checksumFailures}, timeouts ${stats.timeouts}, unexpected errors ${
      stats.unexpectedContexts + stats.unhandled
    }, fds ${openFds()}, rss ${mib(Deno.memoryUsage().rss)}`;
  }
  const ticker = setInterval(() => console.log(line("  at")), REPORT_EVERY_MS);

  async function worker(id: number): Promise<void> {
    const rand = mulberry32(SEED * 1000 + id);
    while (Date.now() < deadline) {
      const kind = (ONLY as Scenario | undefined) ?? pick(rand);
      try {
        await scenario(kind, port, payload, rand);
      } catch (error) {
        // A connect refused or reset under load is the peer's business, but
        // count it: it should not happen on loopback.
        stats.clientErrors++;
        problem(`${kind}: ${error}`);
      }
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => worker(i)));
  clearInterval(ticker);

  server.close();
  server.closeClients();
  const closed = await Promise.race([
    server.waitClosed().then(() => true),
    sleep(30_000).then(() => false),
  ]);
  if (!closed) {
    problem(
      "server.waitClosed() did not resolve within 30 s; aborting clients",
    );
    server.abortClients();
    await server.waitClosed();
  }
  await sleep(200);
  const fdsAfter = openFds();
  const leaked = fdsAfter - fdsBefore;

  console.log(line("done"));
  console.log(`  server port: ${port}`);
  console.log(`  connections served: ${stats.served}`);
  console.log(
    `  server connectionLost: ${stats.serverLost} (double: ${stats.doubleLost}, callbacks after lost: ${stats.afterLost})`,
  );
  console.log(`  checksummed transfers: ${stats.transfers}`);
  console.log(`  bytes moved: ${stats.bytesMoved} (${mib(stats.bytesMoved)})`);
  console.log(
    `  faults injected: ${faultsTotal()} ${JSON.stringify(stats.faults)}`,
  );
  console.log(
    `  throwing-protocol contexts: ${stats.expectedContexts} of ${stats.injectedThrows} throws`,
  );
  console.log(`  checksum failures: ${stats.checksumFailures}`);
  console.log(`  transfer timeouts: ${stats.timeouts}`);
  console.log(`  client-side errors: ${stats.clientErrors}`);
  console.log(
    `  unexpected exception-handler calls: ${stats.unexpectedContexts}, unhandled rejections/errors: ${stats.unhandled}`,
  );
  console.log(
    `  resources leaked: fds ${fdsBefore} -> ${fdsAfter} (delta ${leaked}); Deno.resources: ${
      hasResources ? "checked" : "not available in this Deno, fd count used"
    }`,
  );
  console.log(
    `  rss: ${mib(rssBefore)} -> ${mib(Deno.memoryUsage().rss)}`,
  );
  if (leaked !== 0) {
    for (const [fd, target] of fdTargets()) {
      if (targetsBefore.get(fd) !== target) {
        console.log(`  new descriptor ${fd} -> ${target}${socketInfo(target)}`);
      }
    }
  }
  for (const text of firstProblems) console.log(`  problem: ${text}`);

  const failed = stats.checksumFailures > 0 || stats.timeouts > 0 ||
    stats.doubleLost > 0 || stats.afterLost > 0 || stats.unhandled > 0 ||
    stats.unexpectedContexts > 0 || leaked !== 0 ||
    stats.served !== stats.serverLost ||
    stats.expectedContexts !== stats.injectedThrows || stats.clientErrors > 0;
  console.log(failed ? "soak: FAILED" : "soak: ok");
  return failed ? 1 : 0;
}

Deno.exit(await main());

// Copyright 2026 the denio authors. MIT license.
/**
 * The benchmark suite: `deno task bench` (= `deno run -A bench/run.ts`).
 *
 * Compiles the C load client, the C echo server and the bulk reader with
 * `cc -O2` into bench/results/bin/, makes a throwaway TLS certificate with
 * `openssl`, then runs every case once per round, rounds interleaved (round 1
 * of every case, then round 2, …). Every row leads with CPU time per
 * operation and its ratio to the group's raw Deno baseline (the median of the
 * per-round ratios, rounds paired, with their min – max), then the rate
 * (median of the rounds). The table is printed and written to
 * bench/results.md; every round's figures go to bench/results/*.json.
 * A peer that cannot run here (no node, no uvloop, no TLS headers, an API
 * not exported yet) is reported as "absent (reason)", never dropped.
 *
 * Environment:
 * - BENCH_SECONDS: measured seconds per echo, churn and UDP case (default 5;
 *   churn, UDP and TLS use at most 3)
 * - BENCH_WARMUP: seconds of load before counting starts (default 0.5)
 * - BENCH_ROUNDS: rounds, the median is taken over them (default 3)
 * - BENCH_BULK_MIB: bytes of the bulk case in MiB (default 1024)
 * - BENCH_PIPE_MIB: bytes of the subprocess case in MiB (default 256)
 * - BENCH_ONLY: a regular expression; only cases whose "group / name" match
 *   (plus their group's baseline); e.g. `BENCH_ONLY=scale`
 * - BENCH_SCALE_N: idle connections of the scale case (default 20000, kept
 *   500 under the descriptor hard limit, which the bench raises the soft
 *   limit to)
 * - BENCH_SCALE_PROBES: connections whose accept is timed at each level
 *   (default 10000: about half a second at these rates; 3000, a sixth of a
 *   second, left the rate to whatever else the two cores ran then)
 * - BENCH_INSTALL=0: never run apt-get for a missing peer (it does by
 *   default when running as root on Debian/Ubuntu)
 * - BENCH_OUT: where to write the markdown table (default bench/results.md)
 *
 * @module
 */

const BENCH_DIR = new URL(".", import.meta.url).pathname;
const ROOT = new URL("..", import.meta.url).pathname;
const BIN_DIR = `${BENCH_DIR}results/bin`;
const RESULTS_DIR = `${BENCH_DIR}results`;

function envNumber(name: string, fallback: number): number {
  const raw = Deno.env.get(name);
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(
      `Cannot read ${name} as it is not a positive number: current value is ${raw}`,
    );
  }
  return value;
}

const SECONDS = envNumber("BENCH_SECONDS", 5);
const SHORT_SECONDS = Math.min(SECONDS, 3);
const WARMUP = Deno.env.get("BENCH_WARMUP") === "0"
  ? 0
  : envNumber("BENCH_WARMUP", 0.5);
const ROUNDS = Math.max(1, Math.round(envNumber("BENCH_ROUNDS", 3)));
const BULK_BYTES = Math.round(envNumber("BENCH_BULK_MIB", 1024) * 1048576);
const PIPE_BYTES = Math.round(envNumber("BENCH_PIPE_MIB", 256) * 1048576);
const ONLY = Deno.env.get("BENCH_ONLY")
  ? new RegExp(Deno.env.get("BENCH_ONLY")!, "i")
  : undefined;
const INSTALL = Deno.env.get("BENCH_INSTALL") !== "0";
const OUT = Deno.env.get("BENCH_OUT") ?? `${BENCH_DIR}results.md`;
const MiB = 1048576;

// ------------------------------------------------------------------ helpers

/** A case that cannot run here, with the reason. */
class Absent extends Error {}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(cmd: string[], cwd = ROOT): Promise<RunResult> {
  try {
    const out = await new Deno.Command(cmd[0]!, {
      args: cmd.slice(1),
      cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decoder = new TextDecoder();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return { code: 127, stdout: "", stderr: `${cmd[0]}: not found` };
    }
    throw error;
  }
}

async function has(cmd: string[]): Promise<boolean> {
  return (await run(cmd)).code === 0;
}

function lastJson(text: string): Record<string, number> {
  const line = text.trim().split("\n").filter((l) => l.startsWith("{")).at(
    -1,
  );
  if (line === undefined) throw new Error(`no JSON result in: ${text.trim()}`);
  return JSON.parse(line);
}

function firstLines(text: string, count = 6): string {
  return text.trim().split("\n").slice(0, count).join(" | ");
}

let aptUpdated = false;

/** Installs Debian packages if allowed; returns why not otherwise. */
async function aptInstall(packages: string[]): Promise<string | null> {
  if (!INSTALL) return "BENCH_INSTALL=0";
  if (Deno.uid() !== 0) return "not root, cannot apt-get install";
  if (!await has(["apt-get", "--version"])) return "no apt-get here";
  console.log(`bench: apt-get install ${packages.join(" ")}`);
  const args = ["apt-get", "install", "-y", "-q", "--no-install-recommends"];
  let result = await run([...args, ...packages]);
  if (result.code !== 0 && !aptUpdated) {
    aptUpdated = true;
    console.log("bench: apt-get update");
    await run(["apt-get", "update", "-q"]);
    result = await run([...args, ...packages]);
  }
  return result.code === 0
    ? null
    : `apt-get install ${packages.join(" ")} failed: ${
      firstLines(result.stderr, 2)
    }`;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2
    ? sorted[mid]!
    : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

// ------------------------------------------------------------------ machine

const cpus = navigator.hardwareConcurrency;
const tasksetOk = cpus >= 2 && await has(["taskset", "-c", "0", "true"]);
const SERVER_CPU = "0";
const CLIENT_CPU = "1";
const pinNote = tasksetOk
  ? `server/sender on CPU ${SERVER_CPU}, load client/reader on CPU ${CLIENT_CPU} (taskset)`
  : cpus < 2
  ? "not pinned (one CPU)"
  : "not pinned (taskset not found: apt-get install util-linux)";

function pinned(cpu: string, cmd: string[]): string[] {
  return tasksetOk ? ["taskset", "-c", cpu, ...cmd] : cmd;
}

function cpuModel(): string {
  try {
    const info = Deno.readTextFileSync("/proc/cpuinfo");
    return /^model name\s*:\s*(.+)$/m.exec(info)?.[1] ?? "unknown";
  } catch {
    return "unknown";
  }
}

function loadAverage(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(
      " ",
    );
  } catch {
    return "unknown";
  }
}

// -------------------------------------------------------------------- peers

await Deno.mkdir(BIN_DIR, { recursive: true });
const tmp = await Deno.makeTempDir({ prefix: "denio-bench-" });

/** Compiles the C programs; the reason they are absent otherwise. */
async function buildC(): Promise<
  { absent: string | null; tls: string | null }
> {
  if (!await has(["cc", "--version"])) {
    const why = await aptInstall(["gcc", "libc6-dev"]);
    if (why !== null) return { absent: `no C compiler (${why})`, tls: "no C" };
  }
  for (const name of ["echo_server", "bulk_reader", "idle_client"]) {
    const result = await run([
      "cc",
      "-O2",
      "-o",
      `${BIN_DIR}/${name}`,
      `${BENCH_DIR}${name}.c`,
    ]);
    if (result.code !== 0) {
      return {
        absent: `cc failed on ${name}.c: ${firstLines(result.stderr)}`,
        tls: "no C",
      };
    }
  }
  const client = ["cc", "-O2", "-o", `${BIN_DIR}/echo_client`];
  const source = `${BENCH_DIR}echo_client.c`;
  const withTls = [...client, "-DWITH_TLS", source, "-lssl", "-lcrypto"];
  let result = await run(withTls);
  let tls: string | null = null;
  if (result.code !== 0) {
    const why = await aptInstall(["libssl-dev"]);
    result = why === null ? await run(withTls) : result;
    if (result.code !== 0) {
      tls = `load client built without TLS (${why ?? "libssl-dev missing"})`;
      result = await run([...client, source]);
    }
  }
  if (result.code !== 0) {
    return {
      absent: `cc failed on echo_client.c: ${firstLines(result.stderr)}`,
      tls: "no C",
    };
  }
  return { absent: null, tls };
}

async function makeCert(): Promise<string | null> {
  if (!await has(["openssl", "version"])) {
    const why = await aptInstall(["openssl"]);
    if (why !== null) return `no openssl (${why})`;
  }
  const result = await run([
    "openssl",
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    `${tmp}/key.pem`,
    "-out",
    `${tmp}/cert.pem`,
    "-days",
    "2",
    "-subj",
    "/CN=localhost",
    "-addext",
    "subjectAltName=DNS:localhost,IP:127.0.0.1",
  ]);
  return result.code === 0
    ? null
    : `openssl could not make a certificate: ${firstLines(result.stderr, 2)}`;
}

async function findNode(): Promise<{ version: string } | { absent: string }> {
  let result = await run(["node", "--version"]);
  if (result.code !== 0) {
    const why = await aptInstall(["nodejs"]);
    if (why !== null) return { absent: `node not found (${why})` };
    result = await run(["node", "--version"]);
    if (result.code !== 0) return { absent: "node not found" };
  }
  return { version: result.stdout.trim() };
}

interface Python {
  path: string;
  version: string;
  uvloop: string | null;
}

async function findPython(): Promise<
  { python: Python; uvloopAbsent: string | null } | { absent: string }
> {
  const probe =
    "import sys\ntry:\n import uvloop; u=uvloop.__version__\nexcept ImportError: u=''\nprint(sys.version.split()[0], u)";
  async function look(): Promise<Python[]> {
    const found: Python[] = [];
    for (const path of ["/usr/bin/python3", "python3"]) {
      const result = await run([path, "-c", probe]);
      if (result.code !== 0) continue;
      const [version, uvloop] = result.stdout.trim().split(" ");
      found.push({ path, version: version!, uvloop: uvloop || null });
    }
    return found;
  }
  let found = await look();
  // Debian's python3-uvloop is for /usr/bin/python3: install it when no
  // interpreter here has uvloop. asyncio then runs on the same interpreter.
  let why: string | null = null;
  if (!found.some((p) => p.uvloop)) {
    why = await aptInstall(["python3-uvloop"]);
    found = await look();
  }
  const python = found.find((p) => p.uvloop) ?? found[0];
  if (python === undefined) return { absent: "python3 not found" };
  return {
    python,
    uvloopAbsent: python.uvloop
      ? null
      : `uvloop not installed (${why ?? "python3-uvloop did not provide it"})`,
  };
}

console.log("bench: preparing peers …");
const built = await buildC();
const certAbsent = built.absent ? null : await makeCert();
const node = await findNode();
const py = await findPython();

// --------------------------------------------------------------- processes

const DENO = Deno.execPath();

function denoScript(script: string, ...args: string[]): string[] {
  return [
    DENO,
    "run",
    "-A",
    "--quiet",
    "--unstable-net",
    `${BENCH_DIR}${script}`,
    ...args,
  ];
}

/**
 * Starts `cmd` (pinned), waits for its "LISTENING <port>" line and runs `fn`
 * with the port; the process is killed afterwards. "ABSENT <reason>" instead
 * makes the case absent.
 */
async function withServer<T>(
  cmd: string[],
  cpu: string,
  fn: (port: number, child: Deno.ChildProcess) => Promise<T>,
): Promise<T> {
  const full = pinned(cpu, cmd);
  const child = new Deno.Command(full[0]!, {
    args: full.slice(1),
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  const errDone = (async () => {
    for await (
      const text of child.stderr.pipeThrough(new TextDecoderStream())
    ) {
      if (stderr.length < 8192) stderr += text;
    }
  })();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  try {
    let pending = "";
    let port = 0;
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }, 60_000);
    try {
      while (port === 0) {
        const { value, done } = await lines.read();
        if (done) {
          await errDone;
          throw new Error(
            `server exited before listening: ${
              firstLines(stderr) || "no output"
            }`,
          );
        }
        pending += value;
        let nl: number;
        while ((nl = pending.indexOf("\n")) >= 0) {
          const line = pending.slice(0, nl).trim();
          pending = pending.slice(nl + 1);
          if (line.startsWith("ABSENT ")) throw new Absent(line.slice(7));
          const match = /^LISTENING (\d+)$/.exec(line);
          if (match) port = Number(match[1]);
        }
      }
    } finally {
      clearTimeout(timer);
    }
    // Keep draining stdout so the server never blocks on it.
    (async () => {
      try {
        while (!(await lines.read()).done) { /* discard */ }
      } catch {
        // Closed.
      }
    })();
    try {
      return await fn(port, child);
    } catch (error) {
      if (exited) {
        await errDone;
        throw new Error(
          `${error instanceof Error ? error.message : error}; server stderr: ${
            firstLines(stderr) || "none"
          }`,
        );
      }
      throw error;
    }
  } finally {
    if (!exited) {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      const killer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // Already gone.
        }
      }, 3000);
      await status;
      clearTimeout(killer);
    }
    await errDone.catch(() => {});
  }
}

/** Runs a client to completion (pinned) and returns its JSON line. */
async function client(
  cmd: string[],
  cpu: string,
): Promise<Record<string, number>> {
  const result = await run(pinned(cpu, cmd));
  const absent = /^ABSENT (.*)$/m.exec(result.stdout);
  if (absent) throw new Absent(absent[1]!);
  if (result.code !== 0) {
    throw new Error(
      `${
        cmd.map((c) => c.split("/").at(-1)).slice(0, 4).join(" ")
      } exited ${result.code}: ${
        firstLines(result.stderr) || firstLines(result.stdout) || "no output"
      }`,
    );
  }
  return lastJson(result.stdout);
}

function loadClient(
  mode: "echo" | "tls" | "churn" | "udp",
  port: number,
  conns: number,
  size: number,
  seconds: number,
): string[] {
  return [
    `${BIN_DIR}/echo_client`,
    mode,
    String(port),
    String(conns),
    String(size),
    String(seconds),
    String(WARMUP),
  ];
}

/** User + system CPU seconds of process `pid` so far (Linux), else NaN. */
/**
 * CPU seconds of `pid` and the processes it started (a server with workers),
 * those still running: a worker's time counts while it runs.
 */
function processCpu(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    let total = (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
    for (const child of childPids(pid)) total += processCpu(child);
    return total;
  } catch {
    return NaN;
  }
}

function childPids(pid: number): number[] {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`).trim()
      .split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

const CLOCK_TICKS = Number((await run(["getconf", "CLK_TCK"])).stdout) || 100;

/**
 * Runs the load client against the server `cmd`; the result has the
 * client's rate and the server's CPU time per operation (warm-up included).
 */
async function loadRun(
  cmd: string[],
  mode: "echo" | "tls" | "churn" | "udp",
  conns: number,
  size: number,
  seconds: number,
  serverCpu: string = SERVER_CPU,
): Promise<Measurement> {
  const result = await withServer(
    cmd,
    serverCpu,
    async (port, child): Promise<Record<string, number>> => {
      const before = processCpu(child.pid);
      const out = await client(
        loadClient(mode, port, conns, size, seconds),
        CLIENT_CPU,
      );
      const cpu = processCpu(child.pid) - before;
      return { ...out, cpuPerOp: cpu / out.allOps! * 1e6 };
    },
  );
  return { value: result.rate!, extra: result };
}

// -------------------------------------------------------------------- cases

interface Measurement {
  value: number;
  extra?: Record<string, number>;
  /** The round it was measured in (set by the runner). */
  round?: number;
}

interface Case {
  group: string;
  name: string;
  unit: string;
  baseline?: boolean;
  /** Set before the run when the case cannot run here. */
  absent?: string | null | undefined;
  /** A target ratio to the group's baseline, checked in the table. */
  target?: number;
  /** Names of cases in the group this one should beat. */
  ahead?: string[];
  /** Extra figures shown in the notes: key, label, scale. */
  show?: [string, string, number][];
  run(): Promise<Measurement>;
}

const cases: Case[] = [];
const cAbsent = built.absent;

const RAW = "raw Deno loop (conn.read/conn.write)";
const PROTOCOL = "denio Protocol";
const BUFFERED = "denio BufferedProtocol";
const NODE = "Node net (socket.pipe)";
const UVLOOP = "Python uvloop Protocol";
const IDLE = "denio Protocol + idleTimeout (30 s)";
const PROTOCOL_NATIVE = "denio Protocol (native)";
const BUFFERED_NATIVE = "denio BufferedProtocol (native)";
const RAW_NATIVE = "raw native loop (denio reactor, read/write)";

for (const [conns, size] of [[50, 1024], [10, 65536]] as const) {
  const group = `TCP echo, ${conns} connections x ${size / 1024} KiB messages`;
  const unit = "round trips/s";
  const echo = (cmd: string[]) => async (): Promise<Measurement> => {
    return await loadRun(cmd, "echo", conns, size, SECONDS);
  };
  const python = "python" in py ? py.python.path : "python3";
  cases.push(
    {
      group,
      name: RAW,
      unit,
      baseline: true,
      absent: cAbsent,
      run: echo(denoScript("servers/deno_raw.ts")),
    },
    {
      group,
      name: PROTOCOL,
      unit,
      absent: cAbsent,
      target: 0.95,
      ahead: [NODE, UVLOOP],
      run: echo(denoScript("servers/denio_protocol.ts")),
    },
    {
      group,
      name: BUFFERED,
      unit,
      absent: cAbsent,
      target: 1.0,
      ahead: [NODE, UVLOOP],
      run: echo(denoScript("servers/denio_buffered.ts")),
    },
    ...(size === 1024
      ? [{
        group,
        name: IDLE,
        unit,
        absent: cAbsent,
        run: echo(
          denoScript("servers/denio_protocol.ts", "--idle-timeout", "30000"),
        ),
      }]
      : []),
    {
      group,
      name: PROTOCOL_NATIVE,
      unit,
      absent: cAbsent,
      target: 0.95,
      ahead: [UVLOOP],
      run: echo(denoScript("servers/denio_protocol.ts", "--native")),
    },
    {
      group,
      name: BUFFERED_NATIVE,
      unit,
      absent: cAbsent,
      target: 0.92,
      ahead: [UVLOOP],
      run: echo(denoScript("servers/denio_buffered.ts", "--native")),
    },
    {
      group,
      name: RAW_NATIVE,
      unit,
      absent: cAbsent,
      run: echo(denoScript("servers/native_raw.ts")),
    },
    {
      group,
      name: "Deno web streams (readable.pipeTo(writable))",
      unit,
      absent: cAbsent,
      run: echo(denoScript("servers/deno_streams.ts")),
    },
    {
      group,
      name: NODE,
      unit,
      absent: cAbsent ?? ("absent" in node ? node.absent : null),
      run: echo(["node", `${BENCH_DIR}servers/node_net.mjs`]),
    },
    {
      group,
      name: "Python asyncio Protocol",
      unit,
      absent: cAbsent ?? ("absent" in py ? py.absent : null),
      run: echo([python, `${BENCH_DIR}servers/py_asyncio.py`]),
    },
    {
      group,
      name: UVLOOP,
      unit,
      absent: cAbsent ??
        ("absent" in py ? py.absent : py.uvloopAbsent),
      run: echo([python, `${BENCH_DIR}servers/py_asyncio.py`, "--uvloop"]),
    },
    {
      group,
      name: "C epoll server (machine limit)",
      unit,
      absent: cAbsent,
      run: echo([`${BIN_DIR}/echo_server`, "tcp"]),
    },
  );
}

{
  // SO_REUSEPORT workers. The load client holds core 1, so two workers on
  // core 0 show what the split costs, and two free to use both cores show
  // how much a second core helps while it is shared with the client; this
  // 2-core machine cannot show two uncontended server cores.
  const group = "TCP echo, 50 connections x 1 KiB, several processes";
  const unit = "round trips/s";
  const echo =
    (cpu: string, ...args: string[]) => async (): Promise<Measurement> =>
      await loadRun(
        denoScript("servers/denio_protocol.ts", ...args),
        "echo",
        50,
        1024,
        SECONDS,
        cpu,
      );
  cases.push(
    {
      group,
      name: "denio Protocol, 1 process (core 0)",
      unit,
      baseline: true,
      absent: cAbsent,
      run: echo(SERVER_CPU),
    },
    {
      group,
      name: "denio Protocol, 2 processes with reusePort (both on core 0)",
      unit,
      absent: cAbsent,
      run: echo(SERVER_CPU, "--processes", "2"),
    },
    {
      group,
      name: "denio Protocol, 2 processes with reusePort (cores 0 and 1)",
      unit,
      absent: cAbsent,
      run: echo("0,1", "--processes", "2"),
    },
  );
}

{
  const group = `Bulk send, ${
    BULK_BYTES / MiB
  } MiB one way (reader slow for 1 s)`;
  const run = (script: string) => async (): Promise<Measurement> => {
    const { readerResult, sender } = await runBulk(script);
    if (readerResult.bytes !== BULK_BYTES) {
      throw new Error(
        `reader got ${readerResult.bytes} bytes of ${BULK_BYTES}`,
      );
    }
    return {
      value: readerResult.fastRate! / MiB,
      extra: {
        ...readerResult,
        rssPeak: sender.rssPeak!,
        cpuSeconds: sender.cpuSeconds!,
      },
    };
  };
  const show: [string, string, number][] = [
    ["rssPeak", "sender peak RSS MiB", MiB],
    ["seconds", "total s", 1],
  ];
  cases.push(
    {
      group,
      name: "raw Deno sender (await conn.write loop)",
      unit: "MiB/s after the slow second",
      baseline: true,
      absent: cAbsent,
      show,
      run: run("clients/bulk_raw.ts"),
    },
    {
      group,
      name: "denio sender (createConnection, pause/resumeWriting)",
      unit: "MiB/s after the slow second",
      absent: cAbsent,
      target: 0.9,
      show,
      run: run("clients/bulk_denio.ts"),
    },
  );
}

/** Runs one bulk transfer: the reader on the client CPU, the sender on the server CPU. */
async function runBulk(
  script: string,
): Promise<
  { readerResult: Record<string, number>; sender: Record<string, number> }
> {
  const full = pinned(CLIENT_CPU, [`${BIN_DIR}/bulk_reader`, "1"]);
  const reader = new Deno.Command(full[0]!, {
    args: full.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = reader.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  try {
    while (!/LISTENING (\d+)\n/.test(text)) {
      const { value, done } = await stdout.read();
      if (done) throw new Error("bulk_reader exited before listening");
      text += value;
    }
    const port = /LISTENING (\d+)\n/.exec(text)![1]!;
    const sender = await client(
      denoScript(script, port, String(BULK_BYTES)),
      SERVER_CPU,
    );
    for (;;) {
      const { value, done } = await stdout.read();
      if (done) break;
      text += value;
    }
    return { readerResult: lastJson(text), sender };
  } finally {
    try {
      reader.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await reader.status;
    await reader.stderr.cancel().catch(() => {});
  }
}

{
  const group =
    "Connection churn (connect, one 64 B round trip, close), 10 at a time";
  const unit = "connections/s";
  const churn = (cmd: string[]) => async (): Promise<Measurement> => {
    return await loadRun(cmd, "churn", 10, 64, SHORT_SECONDS);
  };
  cases.push(
    {
      group,
      name: RAW,
      unit,
      baseline: true,
      absent: cAbsent,
      run: churn(denoScript("servers/deno_raw.ts")),
    },
    {
      group,
      name: PROTOCOL,
      unit,
      absent: cAbsent,
      run: churn(denoScript("servers/denio_protocol.ts")),
    },
    {
      group,
      name: PROTOCOL_NATIVE,
      unit,
      absent: cAbsent,
      run: churn(denoScript("servers/denio_protocol.ts", "--native")),
    },
    {
      group,
      name: BUFFERED_NATIVE,
      unit,
      absent: cAbsent,
      run: churn(denoScript("servers/denio_buffered.ts", "--native")),
    },
    {
      group,
      name: UVLOOP,
      unit,
      absent: cAbsent ?? ("absent" in py ? py.absent : py.uvloopAbsent),
      run: churn([
        "python" in py ? py.python.path : "python3",
        `${BENCH_DIR}servers/py_asyncio.py`,
        "--uvloop",
      ]),
    },
    {
      group,
      name: "C epoll server (machine limit)",
      unit,
      absent: cAbsent,
      run: churn([`${BIN_DIR}/echo_server`, "tcp"]),
    },
  );
}

// The scale case raises the descriptor limit to the hard limit (raising the
// hard limit itself needs CAP_SYS_RESOURCE); N stays under what is allowed.
const NOFILE_HARD = Number(
  (await run(["sh", "-c", "ulimit -Hn"])).stdout.trim(),
) || 1024;
const SCALE_TOP = Math.min(
  Math.round(envNumber("BENCH_SCALE_N", 20_000)),
  NOFILE_HARD === Infinity ? 20_000 : NOFILE_HARD - 500,
);
const SCALE_LOW = Math.min(1000, SCALE_TOP);
const SCALE_PROBES = Math.round(envNumber("BENCH_SCALE_PROBES", 10_000));

/** `cmd` run with `ulimit -n` raised to the hard limit. */
function withNofile(cmd: string[]): string[] {
  return [
    "sh",
    "-c",
    'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"',
    "sh",
    ...cmd,
  ];
}

{
  const group =
    `Scale: idle connections (${SCALE_LOW} then ${SCALE_TOP}), accept rate while they are open`;
  const unit = `accepts/s at ${SCALE_TOP}`;
  const scale = (cmd: string[]) => async (): Promise<Measurement> => {
    const result = await withServer(
      withNofile(cmd),
      SERVER_CPU,
      async (port, child) => {
        const out = await run(pinned(
          CLIENT_CPU,
          withNofile([
            `${BIN_DIR}/idle_client`,
            String(port),
            String(child.pid),
            `${SCALE_LOW},${SCALE_TOP}`,
            String(SCALE_PROBES),
          ]),
        ));
        if (out.code !== 0) {
          throw new Error(
            `idle_client exited ${out.code}: ${
              firstLines(out.stderr) || "no output"
            }`,
          );
        }
        const line = out.stdout.trim().split("\n").at(-1)!;
        return JSON.parse(line) as {
          levels: {
            n: number;
            kibPerConn: number;
            acceptRate: number;
            cpuPerAccept: number;
          }[];
          echoed: number;
          lost: number;
        };
      },
    );
    const low = result.levels[0]!;
    const top = result.levels.at(-1)!;
    return {
      value: top.acceptRate,
      extra: {
        cpuPerOp: top.cpuPerAccept,
        cpuPerAcceptLow: low.cpuPerAccept,
        kibPerConnLow: low.kibPerConn,
        kibPerConnTop: top.kibPerConn,
        acceptRateLow: low.acceptRate,
        acceptRateTop: top.acceptRate,
        topVsLow: top.acceptRate / low.acceptRate,
        nTop: top.n,
        echoed: result.echoed,
        lost: result.lost,
      },
    };
  };
  const show: [string, string, number][] = [
    ["kibPerConnLow", `KiB RSS/conn at ${SCALE_LOW}`, 1],
    ["kibPerConnTop", `KiB RSS/conn at ${SCALE_TOP}`, 1],
    ["acceptRateLow", `accepts/s at ${SCALE_LOW}`, 1],
    ["topVsLow", `rate at ${SCALE_TOP} / at ${SCALE_LOW}`, 1],
    ["cpuPerAcceptLow", `CPU µs/accept at ${SCALE_LOW}`, 1],
    ["lost", "1 KiB echoes lost", 1],
  ];
  const python = "python" in py ? py.python.path : "python3";
  cases.push(
    {
      group,
      name: "raw Deno loop, 64 KiB buffer",
      unit,
      baseline: true,
      absent: cAbsent,
      show,
      run: scale(denoScript("servers/deno_raw.ts")),
    },
    {
      group,
      name: "raw Deno loop, 16 KiB buffer",
      unit,
      absent: cAbsent,
      show,
      run: scale(denoScript("servers/deno_raw.ts", "--buffer", "16384")),
    },
    {
      group,
      name: PROTOCOL,
      unit,
      absent: cAbsent,
      show,
      target: 1.0,
      run: scale(denoScript("servers/denio_protocol.ts")),
    },
    {
      group,
      name: PROTOCOL_NATIVE,
      unit,
      absent: cAbsent,
      show,
      ahead: [UVLOOP],
      run: scale(denoScript("servers/denio_protocol.ts", "--native")),
    },
    {
      group,
      name: NODE,
      unit,
      absent: cAbsent ?? ("absent" in node ? node.absent : null),
      show,
      run: scale(["node", `${BENCH_DIR}servers/node_net.mjs`]),
    },
    {
      group,
      name: UVLOOP,
      unit,
      absent: cAbsent ?? ("absent" in py ? py.absent : py.uvloopAbsent),
      show,
      run: scale([python, `${BENCH_DIR}servers/py_asyncio.py`, "--uvloop"]),
    },
  );
}

{
  const group = `Subprocess pipes, ${PIPE_BYTES / MiB} MiB through cat`;
  const unit = "MiB/s";
  // cat runs on the other CPU, like a load client.
  const cat = tasksetOk ? ["taskset", "-c", CLIENT_CPU, "cat"] : ["cat"];
  const pipe = (script: string) => async (): Promise<Measurement> => {
    const result = await client(
      denoScript(script, String(PIPE_BYTES), ...cat),
      SERVER_CPU,
    );
    return { value: result.bytes! / MiB / result.seconds!, extra: result };
  };
  cases.push(
    {
      group,
      name: "Deno.Command web streams",
      unit,
      baseline: true,
      show: [["rssPeak", "peak RSS MiB", MiB]],
      run: pipe("clients/subprocess_raw.ts"),
    },
    {
      group,
      name: "denio subprocessExec",
      unit,
      show: [["rssPeak", "peak RSS MiB", MiB]],
      target: 0.9,
      run: pipe("clients/subprocess_denio.ts"),
    },
  );
}

{
  const group = "UDP echo, 32 flows x 256 B datagrams, one in flight each";
  const unit = "datagrams/s";
  const udp = (cmd: string[]) => async (): Promise<Measurement> => {
    return await loadRun(cmd, "udp", 32, 256, SHORT_SECONDS);
  };
  cases.push(
    {
      group,
      name: "raw Deno.listenDatagram (receive/send loop)",
      unit,
      baseline: true,
      absent: cAbsent,
      run: udp(denoScript("servers/deno_udp_raw.ts")),
    },
    {
      group,
      name: "denio createDatagramEndpoint",
      unit,
      absent: cAbsent,
      target: 0.9,
      run: udp(denoScript("servers/denio_datagram.ts")),
    },
    {
      group,
      name: "C epoll server (machine limit)",
      unit,
      absent: cAbsent,
      run: udp([`${BIN_DIR}/echo_server`, "udp"]),
    },
  );
}

{
  const group = "TLS echo, 50 connections x 1 KiB messages";
  const unit = "round trips/s";
  const tlsAbsent = cAbsent ?? built.tls ?? certAbsent;
  const tls = (script: string) => async (): Promise<Measurement> => {
    return await loadRun(
      denoScript(script, "--tls", `${tmp}/cert.pem`, `${tmp}/key.pem`),
      "tls",
      50,
      1024,
      SHORT_SECONDS,
    );
  };
  cases.push(
    {
      group,
      name: "raw Deno.listenTls loop",
      unit,
      baseline: true,
      absent: tlsAbsent,
      run: tls("servers/deno_raw.ts"),
    },
    {
      group,
      name: "denio createServer({ tls })",
      unit,
      absent: tlsAbsent,
      run: tls("servers/denio_protocol.ts"),
    },
  );
}

// ---------------------------------------------------------------------- run

// A selected case always brings its group's baseline, for the ratio.
const matched = new Set(
  cases.filter((c) => ONLY === undefined || ONLY.test(`${c.group} / ${c.name}`))
    .map((c) => c.group),
);
const selected = cases.filter((c) =>
  ONLY === undefined || ONLY.test(`${c.group} / ${c.name}`) ||
  (c.baseline === true && matched.has(c.group))
);
const samples = new Map<Case, Measurement[]>();
const failures = new Map<Case, string>();

function estimateSeconds(): number {
  let total = 0;
  for (const c of selected) {
    if (c.absent) continue;
    if (c.group.startsWith("TCP echo")) total += SECONDS + WARMUP + 0.7;
    else if (c.group.startsWith("Bulk")) total += 1 + BULK_BYTES / (400 * MiB);
    else if (c.group.startsWith("Subprocess")) {
      total += PIPE_BYTES / (300 * MiB) + 0.5;
    } else if (c.group.startsWith("Scale")) {
      total += 2 + SCALE_TOP / 4000 + SCALE_PROBES / 2000;
    } else total += SHORT_SECONDS + WARMUP + 0.7;
  }
  return total * ROUNDS;
}

const startedAt = new Date();
const loadBefore = loadAverage();
const versions = {
  deno: `${Deno.version.deno} (V8 ${Deno.version.v8})`,
  node: "version" in node ? node.version : node.absent,
  python: "python" in py
    ? `${py.python.version} (${py.python.path}), uvloop ${
      py.python.uvloop ?? "absent"
    }`
    : py.absent,
};
console.log(
  `bench: ${selected.length} cases x ${ROUNDS} rounds, about ${
    Math.ceil(estimateSeconds() / 60)
  } min; ${pinNote}`,
);
for (const c of selected) {
  if (c.absent) {
    console.log(`bench: absent: ${c.group} / ${c.name}: ${c.absent}`);
  }
}
const t0 = performance.now();
for (let round = 1; round <= ROUNDS; round++) {
  for (const c of selected) {
    if (c.absent) continue;
    const label = `[${round}/${ROUNDS}] ${c.group} / ${c.name}`;
    try {
      const m = await c.run();
      if (!samples.has(c)) samples.set(c, []);
      m.round = round;
      samples.get(c)!.push(m);
      console.log(`${label}: ${format(m.value)} ${c.unit}`);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (error instanceof Absent) {
        c.absent = message;
        console.log(`${label}: absent (${message})`);
      } else {
        failures.set(c, message);
        console.log(`${label}: FAILED: ${message}`);
      }
    }
  }
}
const elapsed = (performance.now() - t0) / 1000;
await Deno.remove(tmp, { recursive: true }).catch(() => {});

// ------------------------------------------------------------------- report

function format(value: number): string {
  if (value >= 100) return Math.round(value).toLocaleString("en-US");
  return value.toFixed(value >= 10 ? 1 : 2);
}

function medianOfExtra(c: Case, key: string): number | undefined {
  const values = (samples.get(c) ?? []).map((m) => m.extra?.[key]).filter((
    v,
  ) => Number.isFinite(v)) as number[];
  return values.length ? median(values) : undefined;
}

function medianOf(c: Case): number | undefined {
  const list = samples.get(c);
  return list && list.length > 0 ? median(list.map((m) => m.value)) : undefined;
}

const lines: string[] = [];
lines.push("# denio benchmark results", "");
lines.push(
  `Command: \`${
    [
      "BENCH_SECONDS",
      "BENCH_ROUNDS",
      "BENCH_WARMUP",
      "BENCH_BULK_MIB",
      "BENCH_PIPE_MIB",
      "BENCH_ONLY",
    ].filter((n) => Deno.env.get(n)).map((n) => `${n}='${Deno.env.get(n)}' `)
      .join("")
  }deno task bench\` (${startedAt.toISOString()}, ${Math.round(elapsed)} s)`,
  "",
  `- Machine: ${cpus} CPUs, ${cpuModel()}, Linux ${Deno.osRelease()}; load average ${loadBefore} before, ${loadAverage()} after`,
  ...(Math.max(...[loadBefore, loadAverage()].map((l) => parseFloat(l))) >
      0.5
    ? [
      "- NOISY: other processes were using the CPUs during this run (see the load average); compare ratios and CPU per operation rather than absolute rates",
    ]
    : []),
  `- Deno ${versions.deno}; Node ${versions.node}; Python ${versions.python}`,
  `- ${pinNote}`,
  `- Median of ${ROUNDS} interleaved rounds; echo cases ${SECONDS} s, churn/UDP/TLS ${SHORT_SECONDS} s, each after ${WARMUP} s of warm-up`,
  "- First figure of every row: CPU time per operation (user + system of the server process, all its threads, warm-up included; for bulk and subprocess the whole CPU time of the Deno sender), then (Nx): the median over rounds of the ratio to the group's raw baseline measured in the same round, and the spread of that per-round ratio (min – max). On a shared machine CPU per operation is steadier than throughput, which depends on what else runs on the two cores; the rate columns follow",
  "",
);
const groups = [...new Set(selected.map((c) => c.group))];
/** Per-round ratios of `key` between `c` and `base`, rounds paired. */
function pairedRatios(c: Case, base: Case, key: string): number[] {
  const baseByRound = new Map(
    (samples.get(base) ?? []).map((m) => [m.round, m.extra?.[key]]),
  );
  const ratios: number[] = [];
  for (const m of samples.get(c) ?? []) {
    const mine = m.extra?.[key];
    const theirs = baseByRound.get(m.round);
    if (Number.isFinite(mine) && Number.isFinite(theirs) && theirs! > 0) {
      ratios.push(mine! / theirs!);
    }
  }
  return ratios;
}
/** The spread of a list as "min – max" of value / median, in percent. */
function spread(values: number[]): string {
  if (values.length < 2) return "–";
  const mid = median(values);
  const lo = (Math.min(...values) / mid - 1) * 100;
  const hi = (Math.max(...values) / mid - 1) * 100;
  return `${lo.toFixed(0)}% / +${hi.toFixed(0)}%`;
}
const noise: string[] = [];
for (const group of groups) {
  const members = selected.filter((c) => c.group === group);
  const base = members.find((c) => c.baseline);
  const baseValue = base ? medianOf(base) : undefined;
  const has = (key: string) =>
    members.some((c) =>
      (samples.get(c) ?? []).some((m) => Number.isFinite(m.extra?.[key]))
    );
  const cpuKey = has("cpuPerOp")
    ? "cpuPerOp"
    : has("cpuSeconds")
    ? "cpuSeconds"
    : undefined;
  const cpuLabel = cpuKey === "cpuPerOp"
    ? "server CPU µs/op (vs raw)"
    : "sender CPU s (vs raw)";
  lines.push(`## ${group}`, "");
  lines.push(
    `| Implementation |${
      cpuKey ? ` ${cpuLabel} | per-round ratio min – max |` : ""
    } ${members[0]!.unit} (median) | vs raw | min – max | Notes |`,
  );
  lines.push(
    `| --- |${cpuKey ? " ---: | --- |" : ""} ---: | ---: | --- | --- |`,
  );
  for (const c of members) {
    const value = medianOf(c);
    const list = samples.get(c) ?? [];
    const notes: string[] = [];
    if (c.absent) notes.push(`absent (${c.absent})`);
    if (failures.has(c)) {
      notes.push(
        `${list.length < ROUNDS ? "failed" : "error"}: ${failures.get(c)}`,
      );
    }
    if (list.length > 0 && list.length < ROUNDS) {
      notes.push(`${list.length} of ${ROUNDS} rounds`);
    }
    for (const [key, label, scale] of c.show ?? []) {
      const v = medianOfExtra(c, key);
      if (v !== undefined) notes.push(`${label} ${format(v / scale)}`);
    }
    const cpu = cpuKey ? medianOfExtra(c, cpuKey) : undefined;
    if (cpuKey) {
      const own = list.map((m) => m.extra?.[cpuKey]).filter((v) =>
        Number.isFinite(v)
      ) as number[];
      if (own.length > 1) {
        noise.push(`${group} / ${c.name}: CPU/op ${spread(own)}`);
      }
    }
    const errors = Math.max(0, ...list.map((m) => m.extra?.errors ?? 0));
    if (errors > 0) {
      notes.push(
        `${
          group.startsWith("UDP") ? "datagrams resent" : "failed connections"
        }: up to ${format(errors)} per round`,
      );
    }
    const ratios = cpuKey && base && base !== c
      ? pairedRatios(c, base, cpuKey)
      : [];
    const cpuText = cpu === undefined
      ? "–"
      : `${format(cpu)}${
        ratios.length ? ` (${median(ratios).toFixed(2)}x)` : ""
      }`;
    const ratioSpread = ratios.length
      ? `${Math.min(...ratios).toFixed(2)} – ${Math.max(...ratios).toFixed(2)}`
      : "–";
    const ratio = value !== undefined && baseValue
      ? value / baseValue
      : undefined;
    if (c.target !== undefined && ratio !== undefined) {
      notes.push(
        `rate target >= ${c.target.toFixed(2)}x: ${
          ratio >= c.target ? "met" : "NOT met"
        }`,
      );
    }
    for (const other of c.ahead ?? []) {
      const peer = members.find((m) => m.name === other);
      const peerValue = peer ? medianOf(peer) : undefined;
      if (value !== undefined && peerValue !== undefined) {
        notes.push(`${value > peerValue ? "ahead of" : "BEHIND"} ${other}`);
      }
    }
    const name = c.baseline ? `**${c.name}** (baseline)` : c.name;
    lines.push(
      `| ${name} |${cpuKey ? ` ${cpuText} | ${ratioSpread} |` : ""} ${
        value === undefined ? "absent" : format(value)
      } | ${ratio === undefined ? "–" : `${ratio.toFixed(2)}x`} | ${
        list.length
          ? `${format(Math.min(...list.map((m) => m.value)))} – ${
            format(Math.max(...list.map((m) => m.value)))
          }`
          : "–"
      } | ${notes.join("; ")} |`,
    );
  }
  lines.push("");
}
if (noise.length > 0) {
  lines.push(
    "## Noise",
    "",
    "Spread of each case's own CPU per operation across rounds (min and max against its median):",
    "",
    ...noise.map((n) => `- ${n}`),
    "",
  );
}
const table = lines.join("\n");
console.log("\n" + table);
await Deno.writeTextFile(OUT, table);
// Formatted as `deno task test`'s `deno fmt --check` expects.
await run([DENO, "fmt", "--quiet", OUT]);
const stamp = startedAt.toISOString().replace(/[:.]/g, "-");
await Deno.writeTextFile(
  `${RESULTS_DIR}/${stamp}.json`,
  JSON.stringify(
    {
      startedAt,
      versions,
      cpus,
      cpu: cpuModel(),
      pin: pinNote,
      settings: {
        SECONDS,
        SHORT_SECONDS,
        WARMUP,
        ROUNDS,
        BULK_BYTES,
        PIPE_BYTES,
      },
      results: selected.map((c) => ({
        group: c.group,
        name: c.name,
        absent: c.absent ?? null,
        failure: failures.get(c) ?? null,
        samples: samples.get(c) ?? [],
      })),
    },
    null,
    2,
  ),
);
console.log(`bench: wrote ${OUT} and ${RESULTS_DIR}/${stamp}.json`);

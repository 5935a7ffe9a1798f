// Copyright 2026 the denio authors. MIT license.
/**
 * Idle connections: resident memory per idle connection and accept rate.
 *
 *   deno run -A bench/idle.ts            (IDLE_CONNS=19000 by default)
 *
 * For each echo server (pinned to CPU 0) two `hold_client` processes (CPU 1)
 * open IDLE_CONNS connections in all as fast as they can (64 connects in
 * flight each) and then send nothing. The accept rate is IDLE_CONNS over the
 * time from the first connect until the server holds that many more
 * descriptors (/proc/PID/fd); the memory figure is the growth of the
 * server's VmRSS from before the first connect to 1 s after the last
 * accept, divided by IDLE_CONNS. The soft and hard descriptor limit here
 * is 20,000 per process, hence 19,000 rather than 20,000 connections.
 * Needs `cc`; uvloop is measured where /usr/bin/python3 has it (Debian's
 * python3-uvloop). Set IDLE_ONLY to a regular expression to run some rows.
 *
 * @module
 */

const BENCH_DIR = new URL(".", import.meta.url).pathname;
const BIN = `${BENCH_DIR}results/bin/hold_client`;
const COUNT = Number(Deno.env.get("IDLE_CONNS") ?? 19000);
const ROUNDS = Number(Deno.env.get("IDLE_ROUNDS") ?? 1);

await Deno.mkdir(`${BENCH_DIR}results/bin`, { recursive: true });
{
  const cc = await new Deno.Command("cc", {
    args: ["-O2", "-o", BIN, `${BENCH_DIR}hold_client.c`],
  }).output();
  if (!cc.success) throw new Error(new TextDecoder().decode(cc.stderr));
  await new Deno.Command("cc", {
    args: [
      "-O2",
      "-o",
      `${BENCH_DIR}results/bin/echo_server`,
      `${BENCH_DIR}echo_server.c`,
    ],
  }).output();
}

const deno = (script: string, ...args: string[]) => [
  Deno.execPath(),
  "run",
  "-A",
  "--quiet",
  "--unstable-net",
  `${BENCH_DIR}servers/${script}`,
  ...args,
];

const servers: [string, string[]][] = [
  ["raw Deno loop (64 KiB buffer each)", deno("deno_raw.ts")],
  ["denio Protocol", deno("denio_protocol.ts")],
  ["denio Protocol (native)", deno("denio_protocol.ts", "--native")],
  ["raw native loop (64 KiB buffer each)", deno("native_raw.ts")],
  ["Python uvloop Protocol", [
    "/usr/bin/python3",
    `${BENCH_DIR}servers/py_asyncio.py`,
    "--uvloop",
  ]],
  ["C epoll server", [`${BENCH_DIR}results/bin/echo_server`, "tcp"]],
];

function rssKiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]);
}

function fdCount(pid: number): number {
  let n = 0;
  for (const _ of Deno.readDirSync(`/proc/${pid}/fd`)) n++;
  return n;
}

async function measure(
  cmd: string[],
): Promise<{ kibPerConn: number; acceptRate: number }> {
  const server = new Deno.Command("taskset", {
    args: ["-c", "0", ...cmd],
    stdout: "piped",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
  const reader = server.stdout.pipeThrough(new TextDecoderStream())
    .getReader();
  let text = "";
  while (!/LISTENING (\d+)/.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${cmd.join(" ")} exited`);
    text += value;
  }
  const port = /LISTENING (\d+)/.exec(text)![1]!;
  // The server's own pid: taskset execs it.
  const pid = server.pid;
  await new Promise((r) => setTimeout(r, 500));
  const rss0 = rssKiB(pid);
  const fd0 = fdCount(pid);
  const clients = [0, 1].map(() =>
    new Deno.Command("taskset", {
      args: ["-c", "1", BIN, port, String(COUNT / 2)],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn()
  );
  const t0 = performance.now();
  const deadline = t0 + 120_000;
  while (fdCount(pid) < fd0 + COUNT) {
    if (performance.now() > deadline) throw new Error("accepts stalled");
    await new Promise((r) => setTimeout(r, 50));
  }
  const seconds = (performance.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 1000));
  const rss1 = rssKiB(pid);
  for (const c of clients) {
    await c.stdin.close();
    await c.output();
  }
  server.kill("SIGKILL");
  await server.status;
  await reader.cancel().catch(() => {});
  return { kibPerConn: (rss1 - rss0) / COUNT, acceptRate: COUNT / seconds };
}

const rows: string[] = [];
const ONLY = Deno.env.get("IDLE_ONLY");
for (const [name, cmd] of servers) {
  if (ONLY && !new RegExp(ONLY, "i").test(name)) continue;
  const kib: number[] = [];
  const rate: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    try {
      const m = await measure(cmd);
      kib.push(m.kibPerConn);
      rate.push(m.acceptRate);
    } catch (error) {
      console.log(`${name}: absent (${error})`);
    }
  }
  if (kib.length === 0) continue;
  const line = `| ${name} | ${kib.map((k) => k.toFixed(1)).join(", ")} | ${
    rate.map((r) => Math.round(r).toLocaleString("en-US")).join(", ")
  } |`;
  console.log(line);
  rows.push(line);
}
console.log(
  `\n${COUNT} idle connections (${ROUNDS} round(s))\n\n| server | RSS KiB per idle connection | accepts/s |\n| --- | ---: | ---: |\n${
    rows.join("\n")
  }`,
);

// Copyright 2026 the denio authors. MIT license.
/**
 * Profiles one echo server under the C load client and prints the top
 * self-time entries of its V8 CPU profile.
 *
 *   deno run -A bench/profile.ts [SERVER] [CONNS] [SIZE] [SECONDS]
 *   deno run -A bench/profile.ts FILE.cpuprofile   (summarize only)
 *
 * SERVER is a file name in bench/servers/ (default denio_protocol.ts);
 * defaults: 50 connections, 1024-byte messages, 5 seconds. BENCH_MODE picks
 * the load: echo (default), churn, udp or tls (a throwaway certificate is
 * made with openssl); BENCH_SERVER_ARGS adds arguments to the server's
 * command line (e.g. "--native"). Self times are also given per operation. Needs
 * bench/results/bin/echo_client, which `deno task bench` compiles (or
 * `cc -O2 -o bench/results/bin/echo_client bench/echo_client.c`). The raw
 * profile is kept in bench/results/profiles/ for Chrome DevTools.
 *
 * @module
 */

const BENCH_DIR = new URL(".", import.meta.url).pathname;
/** Operations the load client finished, warm-up included. */
let allOps = 0;

/** Runs the server under load with --cpu-prof; returns the profile's path. */
async function profileServer(): Promise<string> {
  const server = Deno.args[0] ?? "denio_protocol.ts";
  const conns = Deno.args[1] ?? "50";
  const size = Deno.args[2] ?? "1024";
  const seconds = Number(Deno.args[3] ?? "5");
  const mode = Deno.env.get("BENCH_MODE") ?? "echo";
  // BENCH_SERVER_ARGS: extra arguments for the server (e.g. --native).
  const extra: string[] = (Deno.env.get("BENCH_SERVER_ARGS") ?? "").split(" ")
    .filter((arg) => arg !== "");
  if (mode === "tls") {
    const dir = await Deno.makeTempDir({ prefix: "denio-profile-" });
    const made = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        `${dir}/key.pem`,
        "-out",
        `${dir}/cert.pem`,
        "-days",
        "2",
        "-subj",
        "/CN=localhost",
      ],
      stderr: "null",
    }).output();
    if (!made.success) throw new Error("openssl could not make a certificate");
    extra.push("--tls", `${dir}/cert.pem`, `${dir}/key.pem`);
  }
  const outDir = `${BENCH_DIR}results/profiles/${
    server.replace(/\W/g, "_")
  }-${Date.now()}`;
  await Deno.mkdir(outDir, { recursive: true });

  const pin = (cpu: string, cmd: string[]): string[] =>
    navigator.hardwareConcurrency >= 2 ? ["taskset", "-c", cpu, ...cmd] : cmd;

  const serverCmd = pin("0", [
    Deno.execPath(),
    "run",
    "-A",
    "--quiet",
    "--unstable-net",
    "--cpu-prof",
    `--cpu-prof-dir=${outDir}`,
    `${BENCH_DIR}servers/_exit_after.ts`,
    String(seconds + 1.5),
    `${BENCH_DIR}servers/${server}`,
    ...extra,
  ]);
  const child = new Deno.Command(serverCmd[0]!, {
    args: serverCmd.slice(1),
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/LISTENING (\d+)/.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${server} exited before listening`);
    text += value;
  }
  const port = /LISTENING (\d+)/.exec(text)![1]!;
  const clientCmd = pin("1", [
    `${BENCH_DIR}results/bin/echo_client`,
    mode,
    port,
    conns,
    size,
    String(seconds),
    "0.5",
  ]);
  const load = await new Deno.Command(clientCmd[0]!, {
    args: clientCmd.slice(1),
  }).output();
  const line = new TextDecoder().decode(load.stdout).trim();
  console.log(`load: ${line}`);
  allOps = JSON.parse(line || "{}").allOps ?? 0;
  reader.cancel().catch(() => {});
  await child.status;
  const file = [...Deno.readDirSync(outDir)].find((e) =>
    e.name.endsWith(".cpuprofile")
  );
  if (!file) throw new Error(`no profile written in ${outDir}`);
  return `${outDir}/${file.name}`;
}

interface Node {
  id: number;
  callFrame: {
    functionName: string;
    url: string;
    lineNumber: number;
    columnNumber: number;
  };
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}
const path = Deno.args[0]?.endsWith(".cpuprofile")
  ? Deno.args[0]
  : await profileServer();
const profile: Profile = JSON.parse(Deno.readTextFileSync(path));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map<string, number>();
let total = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const node = byId.get(profile.samples[i]!)!;
  const dt = profile.timeDeltas[i] ?? 0;
  const f = node.callFrame;
  const where = f.url
    ? `${f.url.replace(/^.*\/(main|bench)\//, "")}:${f.lineNumber + 1}`
    : "";
  const key = `${f.functionName || "(anonymous)"} ${where}`.trim();
  self.set(key, (self.get(key) ?? 0) + dt);
  total += dt;
}
const idle = self.get("(idle)") ?? 0;
console.log(
  `profile: ${path}; ${(total / 1e6).toFixed(2)} s sampled, ${
    ((1 - idle / total) * 100).toFixed(1)
  }% busy`,
);
console.log(`self time  share${allOps ? "   µs/op" : ""}  function`);
for (const [key, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 30)) {
  const perOp = allOps ? (us / allOps).toFixed(3).padStart(8) : "";
  console.log(
    `${(us / 1000).toFixed(0).padStart(7)} ms ${
      (us / total * 100).toFixed(1).padStart(5)
    }%${perOp}  ${key}`,
  );
}

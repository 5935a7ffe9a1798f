// Copyright 2026 the denio authors. MIT license.
// The one probe for optional peer programs (socat, openssl, python3, redis,
// haproxy, node, a C compiler, sh...). A test that needs one computes
// `ignore:` from `peerMissing()` up front; the reason is printed once per run.
//
// The probe runs `<command> <args>` synchronously with every stream closed and
// never throws: a missing program (NotFound), a missing --allow-run
// (NotCapable / PermissionDenied), a program that fails, or anything else
// becomes a printable reason. Results are cached per command line.

/** The optional programs the tests know how to probe. */
export type Peer =
  | "socat"
  | "openssl"
  | "python3"
  | "redis-server"
  | "redis-cli"
  | "haproxy"
  | "node"
  | "cc"
  | "sh";

/** How each peer is probed, and how to get it when it is absent. */
const PROBES: Record<Peer, { args: string[]; install: string }> = {
  socat: { args: ["-V"], install: "apt-get install -y socat" },
  openssl: { args: ["version"], install: "apt-get install -y openssl" },
  python3: { args: ["--version"], install: "apt-get install -y python3" },
  "redis-server": {
    args: ["--version"],
    install: "apt-get install -y redis-server",
  },
  "redis-cli": {
    args: ["--version"],
    install: "apt-get install -y redis-tools",
  },
  haproxy: { args: ["-v"], install: "apt-get install -y haproxy" },
  node: { args: ["--version"], install: "apt-get install -y nodejs" },
  cc: { args: ["--version"], install: "apt-get install -y gcc" },
  sh: { args: ["-c", "exit 0"], install: "a POSIX sh on PATH" },
};

const cache = new Map<string, string | null>();

/** Runs the probe; returns null when it exited 0, else the reason. */
function probe(
  command: string,
  args: string[],
  install: string,
): string | null {
  const line = [command, ...args].join(" ");
  try {
    const { success, code } = new Deno.Command(command, {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).outputSync();
    return success ? null : `\`${line}\` exited with code ${code}`;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return `${command} is not on PATH (${install})`;
    }
    if (
      error instanceof Deno.errors.NotCapable ||
      error instanceof Deno.errors.PermissionDenied
    ) {
      return `no permission to run ${command} (run the tests with --allow-run or --allow-all)`;
    }
    const message = error instanceof Error ? error.message : String(error);
    return `\`${line}\` could not run: ${message}`;
  }
}

/**
 * Why `peer` cannot be used, or `null` when `peer args` runs and exits 0.
 * `args` overrides the default probe (a version query) to test a capability,
 * e.g. `peerMissing("sh", ["-c", "ulimit -n 64"])`. Never throws; the first
 * time a probe fails its reason is printed, once.
 */
export function peerMissing(peer: Peer, args?: string[]): string | null {
  const { args: defaultArgs, install } = PROBES[peer];
  return commandMissing(peer, args ?? defaultArgs, install);
}

/**
 * {@linkcode peerMissing} for a program that is not a known {@linkcode Peer}:
 * why `command args` cannot run and exit 0, or `null`. Never throws; cached;
 * a failure is printed once.
 */
export function commandMissing(
  command: string,
  args: string[],
  install = "install it",
): string | null {
  const key = JSON.stringify([command, args]);
  if (cache.has(key)) return cache.get(key) ?? null;
  // `deno test` runs each test file in its own isolate, so a module-level
  // cache alone would probe and print once per file: the process-wide
  // environment carries the answer to the other files of the same run.
  const envName = `DENIO_TEST_PEER_${
    [command, ...args].join("_").replace(/[^A-Za-z0-9]/g, "_").slice(0, 100)
  }`;
  // The value starts with this process's pid: a child process (which
  // inherits the environment) probes for itself.
  const shared = readEnv(envName);
  const mark = `${Deno.pid}:`;
  if (shared !== undefined && shared.startsWith(mark)) {
    const reason = shared.slice(mark.length) || null;
    cache.set(key, reason);
    return reason;
  }
  let reason: string | null;
  try {
    reason = probe(command, args, install);
  } catch (error) {
    // probe() catches everything; this only guards against the unforeseen.
    reason = `probing ${command} failed: ${String(error)}`;
  }
  cache.set(key, reason);
  writeEnv(envName, mark + (reason ?? ""));
  if (reason !== null) {
    console.log(`skipping tests that need ${command}: ${reason}`);
  }
  return reason;
}

function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env: probe in every file
  }
}

function writeEnv(name: string, value: string): void {
  try {
    Deno.env.set(name, value);
  } catch {
    // no --allow-env: each file probes (and prints) for itself
  }
}

/** The first reason any of `peers` is missing, or `null` when all are there. */
export function peersMissing(...peers: Peer[]): string | null {
  for (const peer of peers) {
    const reason = peerMissing(peer);
    if (reason !== null) return reason;
  }
  return null;
}

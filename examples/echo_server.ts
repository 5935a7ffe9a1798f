// Copyright 2026 the denio authors. MIT license.
/**
 * An echo server: every connection gets back what it sends, and is closed
 * once the client half-closes (EOF). SIGINT (Ctrl-C) or SIGTERM stops it
 * gracefully: it stops accepting, closes every client (flushing its echo),
 * waits up to `--grace` milliseconds, then aborts whoever is left.
 *
 * Run it:
 *
 * ```sh
 * deno run --allow-net examples/echo_server.ts                # 0.0.0.0:8888
 * deno run --allow-net examples/echo_server.ts --port 9000 --hostname 127.0.0.1
 * deno run --allow-net --allow-read --allow-write examples/echo_server.ts --unix /tmp/echo.sock
 * # Silent clients dropped after 30 s, at most 1000 at a time:
 * deno run --allow-net examples/echo_server.ts --idle-timeout 30000 --max-connections 1000
 * # Two processes on one port (SO_REUSEPORT: Linux, the net unstable flag):
 * deno run --allow-net --allow-run --allow-read --unstable-net examples/echo_server.ts --processes 2
 * ```
 *
 * With `--processes N` this process starts N workers (this same script with
 * `--worker`), each listening on the same port with `reusePort`, so the
 * kernel spreads connections across them; a signal to this process is passed
 * on to every worker and it exits when they have.
 *
 * Talk to it with `examples/echo_client.ts`, or `echo hello | socat - TCP:127.0.0.1:8888`.
 * `--port 0` picks a free port; the first line printed says which.
 *
 * @module
 */

import {
  createServer,
  type Protocol,
  type ServeOptions,
  type Transport,
} from "@denio/protocols";

/** Formats a Deno address for a log line. */
function formatAddr(addr: unknown): string {
  const a = addr as Deno.Addr | undefined;
  if (a === undefined) return "?";
  if ("hostname" in a) return `${a.hostname}:${a.port}`;
  if ("path" in a) return a.path || "(unnamed unix socket)";
  return a.transport;
}

/** Starts each log line: which worker speaks, with `--processes`. */
let logPrefix = "";

/** Echoes data back, pausing reading while its own write buffer is full. */
class EchoProtocol implements Protocol {
  #transport?: Transport;
  #peer = "?";
  #bytes = 0;

  connectionMade(transport: Transport): void {
    this.#transport = transport;
    this.#peer = formatAddr(transport.getExtraInfo("peername"));
    console.log(`${logPrefix}connection from ${this.#peer}`);
  }

  dataReceived(data: Uint8Array): void {
    this.#bytes += data.length;
    this.#transport!.write(data);
  }

  eofReceived(): void {
    // Returning nothing closes the transport once the echo is flushed.
  }

  pauseWriting(): void {
    this.#transport!.pauseReading();
  }

  resumeWriting(): void {
    this.#transport!.resumeReading();
  }

  connectionLost(error: Error | null): void {
    const how = error === null ? "closed" : `lost (${error.message})`;
    console.log(
      `${logPrefix}connection from ${this.#peer} ${how}, ${this.#bytes} bytes echoed`,
    );
  }
}

function usage(message: string): never {
  console.error(message);
  console.error(
    "usage: echo_server.ts [--port N] [--hostname H] | [--unix PATH]\n" +
      "                      [--idle-timeout MS] [--max-connections N] [--grace MS] [--processes N]",
  );
  Deno.exit(2);
}

interface Settings {
  serve: ServeOptions;
  /** Workers to start; 0 serves in this process. */
  processes: number;
  /** Milliseconds clients get to finish when stopping. */
  grace: number;
  /** This process is a worker started by `--processes`. */
  worker: boolean;
}

function parseArgs(args: string[]): Settings {
  let port = 8888;
  let hostname = "0.0.0.0";
  let unix: string | undefined;
  let idleTimeout: number | undefined;
  let maxConnections: number | undefined;
  let processes = 0;
  let grace = 5000;
  let worker = false;
  function count(flag: string, value: string | undefined): number {
    if (value === undefined || !/^\d+$/.test(value)) {
      usage(`${flag} needs a number, got ${value}`);
    }
    return Number(value);
  }
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    const value = args[i + 1];
    switch (flag) {
      case "--port":
        port = count(flag, value);
        i++;
        break;
      case "--hostname":
        if (value === undefined) usage("--hostname needs a value");
        hostname = value;
        i++;
        break;
      case "--unix":
        if (value === undefined) usage("--unix needs a path");
        unix = value;
        i++;
        break;
      case "--idle-timeout":
        idleTimeout = count(flag, value);
        i++;
        break;
      case "--max-connections":
        maxConnections = count(flag, value);
        i++;
        break;
      case "--grace":
        grace = count(flag, value);
        i++;
        break;
      case "--processes":
        processes = count(flag, value);
        i++;
        break;
      case "--worker":
        worker = true;
        break;
      default:
        usage(`unknown argument ${flag}`);
    }
  }
  if (processes > 0 && unix !== undefined) {
    usage("--processes is for TCP (SO_REUSEPORT), not --unix");
  }
  const limits = {
    ...(idleTimeout ? { idleTimeout } : {}),
    ...(maxConnections ? { maxConnections } : {}),
  };
  const serve: ServeOptions = unix === undefined
    ? { hostname, port, ...limits, ...(worker ? { reusePort: true } : {}) }
    : { transport: "unix", path: unix, ...limits };
  return { serve, processes, grace, worker };
}

const SIGNALS: Deno.Signal[] = Deno.build.os === "windows"
  ? ["SIGINT"]
  : ["SIGINT", "SIGTERM"];

/** Serves in this process until a signal, then stops gracefully. */
async function serve(settings: Settings): Promise<void> {
  const server = await createServer(() => new EchoProtocol(), settings.serve);
  const stopping = Promise.withResolvers<void>();
  const onSignal = () => stopping.resolve();
  for (const signal of SIGNALS) Deno.addSignalListener(signal, onSignal);
  const who = settings.worker ? `worker ${Deno.pid}` : "echo server";
  if (settings.worker) logPrefix = `${who}: `;
  console.log(`${who} listening on ${formatAddr(server.addrs[0])}`);
  await stopping.promise;
  console.log(`${who} shutting down (${server.connectionCount} open)`);
  server.close();
  server.closeClients();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), settings.grace);
  });
  if (await Promise.race([server.waitClosed(), late]) === "late") {
    console.log(
      `${who}: aborting ${server.connectionCount} after ${settings.grace} ms`,
    );
    server.abortClients();
  }
  clearTimeout(timer);
  await server.waitClosed();
  for (const signal of SIGNALS) Deno.removeSignalListener(signal, onSignal);
  console.log(`${who} closed`);
}

/** Starts `settings.processes` workers on one port and waits for them. */
async function supervise(settings: Settings): Promise<void> {
  const serve = settings.serve as Deno.NetAddr;
  // Hold the port (port 0 picks one) until every worker listens on it too.
  const holder = Deno.listen({
    hostname: serve.hostname,
    port: serve.port,
    reusePort: true,
  } as Deno.TcpListenOptions);
  const { port } = holder.addr as Deno.NetAddr;
  const args = Deno.args.filter((_, i, all) =>
    all[i] !== "--processes" && all[i - 1] !== "--processes" &&
    all[i] !== "--port" && all[i - 1] !== "--port"
  );
  const workers = Array.from(
    { length: settings.processes },
    () =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-net",
          "--unstable-net",
          import.meta.url,
          ...args,
          "--port",
          String(port),
          "--worker",
        ],
        stdin: "null",
        stdout: "piped",
      }).spawn(),
  );
  // Pass each worker's lines through; close the holder once all listen.
  let listening = 0;
  const relays = workers.map(async (child) => {
    const lines = child.stdout.pipeThrough(new TextDecoderStream());
    let rest = "";
    for await (const chunk of lines) {
      rest += chunk;
      let end: number;
      while ((end = rest.indexOf("\n")) >= 0) {
        const line = rest.slice(0, end);
        rest = rest.slice(end + 1);
        console.log(line);
        if (line.includes(" listening on ") && ++listening === workers.length) {
          holder.close();
          console.log(
            `echo server listening on ${serve.hostname}:${port} (${workers.length} processes)`,
          );
        }
      }
    }
  });
  const onSignal = () => {
    for (const child of workers) {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
    }
  };
  for (const signal of SIGNALS) Deno.addSignalListener(signal, onSignal);
  const statuses = await Promise.all(workers.map((child) => child.status));
  await Promise.all(relays);
  for (const signal of SIGNALS) Deno.removeSignalListener(signal, onSignal);
  if (listening < workers.length) holder.close();
  const failed = statuses.filter((status) => !status.success).length;
  console.log(
    `echo server closed${failed ? ` (${failed} workers failed)` : ""}`,
  );
  if (failed) Deno.exitCode = 1;
}

const settings = parseArgs(Deno.args);
if (settings.processes > 0 && !settings.worker) {
  await supervise(settings);
} else {
  await serve(settings);
}

// Copyright 2026 the denio authors. MIT license.
/**
 * An echo server: every connection gets back what it sends, and is closed
 * once the client half-closes (EOF). Ctrl-C (SIGINT) closes it cleanly.
 *
 * Run it:
 *
 * ```sh
 * deno run --allow-net examples/echo_server.ts                # 0.0.0.0:8888
 * deno run --allow-net examples/echo_server.ts --port 9000 --hostname 127.0.0.1
 * deno run --allow-net --allow-read --allow-write examples/echo_server.ts --unix /tmp/echo.sock
 * ```
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

/** Echoes data back, pausing reading while its own write buffer is full. */
class EchoProtocol implements Protocol {
  #transport?: Transport;
  #peer = "?";
  #bytes = 0;

  connectionMade(transport: Transport): void {
    this.#transport = transport;
    this.#peer = formatAddr(transport.getExtraInfo("peername"));
    console.log(`connection from ${this.#peer}`);
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
      `connection from ${this.#peer} ${how}, ${this.#bytes} bytes echoed`,
    );
  }
}

function usage(message: string): never {
  console.error(message);
  console.error(
    "usage: echo_server.ts [--port N] [--hostname H] | [--unix PATH]",
  );
  Deno.exit(2);
}

function parseArgs(args: string[]): ServeOptions {
  let port = 8888;
  let hostname = "0.0.0.0";
  let unix: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    const value = args[i + 1];
    switch (flag) {
      case "--port":
        if (value === undefined || !/^\d+$/.test(value)) {
          usage(`--port needs a number, got ${value}`);
        }
        port = Number(value);
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
      default:
        usage(`unknown argument ${flag}`);
    }
  }
  return unix === undefined
    ? { hostname, port }
    : { transport: "unix", path: unix };
}

const server = await createServer(
  () => new EchoProtocol(),
  parseArgs(Deno.args),
);
const signals: Deno.Signal[] = Deno.build.os === "windows"
  ? ["SIGINT"]
  : ["SIGINT", "SIGTERM"];
function onSignal(): void {
  console.log("shutting down");
  server.close();
  server.closeClients();
}
for (const signal of signals) Deno.addSignalListener(signal, onSignal);
console.log(`echo server listening on ${formatAddr(server.addrs[0])}`);

await server.serveForever();
await server.waitClosed();
for (const signal of signals) Deno.removeSignalListener(signal, onSignal);
console.log("echo server closed");

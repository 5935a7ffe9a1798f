// Copyright 2026 the denio authors. MIT license.
/**
 * A UDP echo server: every datagram goes back to its sender.
 *
 * It runs with or without the net unstable flag: with it the socket is a
 * `Deno.listenDatagram` one, without it a `node:dgram` one.
 *
 * ```sh
 * deno run --allow-net examples/udp_echo.ts --port 9999
 * deno run --allow-net --unstable-net examples/udp_echo.ts --port 9999
 * # in another terminal:
 * echo hi | socat - UDP:127.0.0.1:9999
 * ```
 *
 * Options: `--port N` (default 9999; 0 picks a free port) and
 * `--hostname H` (default 127.0.0.1). It prints `listening on HOST:PORT`
 * once ready and stops on Ctrl-C.
 *
 * @module
 */

import {
  createDatagramEndpoint,
  type DatagramProtocol,
  type DatagramTransport,
} from "../mod.ts";

/** Sends every datagram back to where it came from. */
class EchoProtocol implements DatagramProtocol {
  #transport: DatagramTransport | undefined;

  connectionMade(transport: DatagramTransport): void {
    this.#transport = transport;
  }

  datagramReceived(data: Uint8Array, addr: Deno.Addr): void {
    this.#transport!.sendto(data, addr);
  }

  errorReceived(error: Error): void {
    console.error(`echo: ${error.message}`);
  }
}

function flag(name: string, fallback: string): string {
  const index = Deno.args.indexOf(`--${name}`);
  if (index >= 0 && Deno.args[index + 1] !== undefined) {
    return Deno.args[index + 1]!;
  }
  const inline = Deno.args.find((arg) => arg.startsWith(`--${name}=`));
  return inline === undefined ? fallback : inline.slice(name.length + 3);
}

if (import.meta.main) {
  const port = Number(flag("port", "9999"));
  const hostname = flag("hostname", "127.0.0.1");
  const [transport] = await createDatagramEndpoint(() => new EchoProtocol(), {
    localAddr: { hostname, port },
  });
  const addr = transport.getExtraInfo("sockname") as Deno.NetAddr;
  const native = typeof (Deno as { listenDatagram?: unknown })
    .listenDatagram === "function";
  const backend = native ? "Deno.listenDatagram" : "node:dgram";
  console.log(`listening on ${addr.hostname}:${addr.port} (${backend})`);
  Deno.addSignalListener("SIGINT", () => {
    transport.close();
    Deno.exit(0);
  });
}

// Copyright 2026 the denio authors. MIT license.
/**
 * A TLS echo server: every connection gets back what it sends, and is closed
 * once the client half-closes. Ctrl-C (SIGINT) closes it cleanly.
 *
 * Make a certificate (a throwaway self-signed one for 127.0.0.1 and
 * localhost) and run the server:
 *
 * ```sh
 * openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
 *   -keyout key.pem -out cert.pem -days 30 -subj /CN=localhost \
 *   -addext subjectAltName=IP:127.0.0.1,DNS:localhost \
 *   -addext basicConstraints=critical,CA:FALSE
 * deno run --allow-net --allow-read examples/tls_echo.ts --cert cert.pem --key key.pem
 * ```
 *
 * Talk to it (the self-signed certificate is its own CA):
 *
 * ```sh
 * openssl s_client -connect 127.0.0.1:8443 -CAfile cert.pem -quiet
 * ```
 *
 * Flags: `--cert PATH` and `--key PATH` (PEM, required), `--port N`
 * (default 8443, 0 picks a free one), `--hostname H` (default 127.0.0.1),
 * `--alpn P1,P2` (ALPN protocols to accept). The first line printed says
 * where it listens.
 *
 * @module
 */

import { createServer, type Protocol, type Transport } from "@denio/protocols";

interface Options {
  cert: string;
  key: string;
  port: number;
  hostname: string;
  alpn: string[] | undefined;
}

/** Echoes data back, pausing reading while its own write buffer is full. */
class TlsEcho implements Protocol {
  #transport?: Transport;
  #peer = "?";
  #bytes = 0;

  connectionMade(transport: Transport): void {
    this.#transport = transport;
    const peer = transport.getExtraInfo("peername") as Deno.NetAddr;
    this.#peer = `${peer.hostname}:${peer.port}`;
    const alpn = transport.getExtraInfo("alpnProtocol");
    console.log(
      `TLS connection from ${this.#peer}${alpn ? ` (ALPN ${alpn})` : ""}`,
    );
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
      `TLS connection from ${this.#peer} ${how}, ${this.#bytes} bytes echoed`,
    );
  }
}

function usage(message: string): never {
  console.error(message);
  console.error(
    "usage: tls_echo.ts --cert PATH --key PATH [--port N] [--hostname H] [--alpn P1,P2]",
  );
  Deno.exit(2);
}

function parseArgs(args: string[]): Options {
  let cert: string | undefined;
  let key: string | undefined;
  let port = 8443;
  let hostname = "127.0.0.1";
  let alpn: string[] | undefined;
  for (let i = 0; i < args.length; i += 2) {
    const flag = args[i];
    const value = args[i + 1];
    if (value === undefined) usage(`${flag} needs a value`);
    switch (flag) {
      case "--cert":
        cert = value;
        break;
      case "--key":
        key = value;
        break;
      case "--port":
        if (!/^\d+$/.test(value)) usage(`--port needs a number, got ${value}`);
        port = Number(value);
        break;
      case "--hostname":
        hostname = value;
        break;
      case "--alpn":
        alpn = value.split(",");
        break;
      default:
        usage(`unknown argument ${flag}`);
    }
  }
  if (cert === undefined || key === undefined) {
    usage("--cert and --key are required");
  }
  return { cert, key, port, hostname, alpn };
}

const options = parseArgs(Deno.args);
const server = await createServer(() => new TlsEcho(), {
  hostname: options.hostname,
  port: options.port,
  tls: {
    cert: await Deno.readTextFile(options.cert),
    key: await Deno.readTextFile(options.key),
    ...(options.alpn ? { alpnProtocols: options.alpn } : {}),
  },
});
const signals: Deno.Signal[] = Deno.build.os === "windows"
  ? ["SIGINT"]
  : ["SIGINT", "SIGTERM"];
function onSignal(): void {
  console.log("shutting down");
  server.close();
  server.closeClients();
}
for (const signal of signals) Deno.addSignalListener(signal, onSignal);
const addr = server.addrs[0] as Deno.NetAddr;
console.log(`tls echo server listening on ${addr.hostname}:${addr.port}`);

await server.serveForever();
await server.waitClosed();
for (const signal of signals) Deno.removeSignalListener(signal, onSignal);
console.log("tls echo server closed");

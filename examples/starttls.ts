// Copyright 2026 the denio authors. MIT license.
/**
 * STARTTLS with {@linkcode startTls}: a tiny SMTP-like line protocol that
 * starts in plain text and upgrades the live connection to TLS.
 *
 * ```text
 * S: 220 denio STARTTLS demo          (plain text)
 * C: STARTTLS
 * S: 220 go ahead                     (then both ends upgrade)
 * C: HELLO secret                     (TLS from here on)
 * S: 250 HELLO secret
 * C: QUIT
 * S: 221 bye                          (the server closes)
 * ```
 *
 * Before STARTTLS the server refuses everything but STARTTLS and QUIT
 * (`530 say STARTTLS first`).
 *
 * Run it:
 *
 * ```sh
 * # server and client in one process; exits by itself
 * deno run --allow-net --allow-run=openssl --allow-read --allow-write examples/starttls.ts
 * # only the server (Ctrl-C stops it), for another client
 * deno run --allow-net --allow-run=openssl --allow-read --allow-write examples/starttls.ts --server   # port 8025
 * ```
 *
 * Without `--cert PATH --key PATH` it makes a throwaway self-signed
 * certificate for 127.0.0.1 and localhost with `openssl` in a temporary
 * directory, prints its path (a client's CA file) and removes it at exit.
 *
 * @module
 */

import {
  createConnection,
  createServer,
  type Protocol,
  startTls,
  type Transport,
} from "@denio/protocols";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Splits received bytes into CRLF- or LF-terminated lines. */
class Lines {
  #pending = "";
  push(data: Uint8Array): string[] {
    this.#pending += decoder.decode(data, { stream: true });
    const lines = this.#pending.split("\n");
    this.#pending = lines.pop()!;
    return lines.map((line) => line.replace(/\r$/, ""));
  }
}

/** The server side: one instance per connection. */
class StartTlsServer implements Protocol {
  #transport!: Transport;
  #lines = new Lines();
  #tls = false;
  #upgrading = false;
  #cert: string;
  #key: string;

  constructor(cert: string, key: string) {
    this.#cert = cert;
    this.#key = key;
  }

  connectionMade(transport: Transport): void {
    this.#transport = transport;
    this.#send("220 denio STARTTLS demo");
  }

  dataReceived(data: Uint8Array): void {
    for (const line of this.#lines.push(data)) this.#command(line);
  }

  #command(line: string): void {
    if (this.#upgrading) return; // A client must wait for the handshake.
    const verb = line.split(" ", 1)[0]!.toUpperCase();
    if (verb === "QUIT") {
      this.#send("221 bye");
      this.#transport.close();
    } else if (verb === "STARTTLS" && !this.#tls) {
      this.#send("220 go ahead");
      this.#upgrading = true;
      // "220 go ahead" is flushed in plain text, then the handshake runs.
      startTls(this.#transport, this, {
        serverSide: true,
        cert: this.#cert,
        key: this.#key,
        handshakeTimeout: 10_000,
      }).then((tls) => {
        this.#transport = tls;
        this.#tls = true;
        this.#upgrading = false;
        console.log("server: connection upgraded to TLS");
      }, (error) => {
        console.log(`server: TLS handshake failed: ${error.message}`);
      });
    } else if (!this.#tls) {
      this.#send("530 say STARTTLS first");
    } else {
      this.#send(`250 ${line}`);
    }
  }

  #send(line: string): void {
    this.#transport.write(encoder.encode(`${line}\r\n`));
  }

  connectionLost(error: Error | null): void {
    console.log(
      `server: connection ${error ? `lost: ${error.message}` : "closed"}`,
    );
  }
}

/** The client side: STARTTLS, upgrade, one command, QUIT. */
async function runClient(port: number, caCert: string): Promise<void> {
  const lines = new Lines();
  let waiting: { prefix: string; resolve: (line: string) => void } | null =
    null;
  const received: string[] = [];
  const done = Promise.withResolvers<void>();
  const client: Protocol = {
    dataReceived(data) {
      for (const line of lines.push(data)) {
        console.log(`client: <- ${line}`);
        received.push(line);
        if (waiting !== null && line.startsWith(waiting.prefix)) {
          const { resolve } = waiting;
          waiting = null;
          resolve(line);
        }
      }
    },
    connectionLost(error) {
      console.log(
        `client: connection ${error ? `lost: ${error.message}` : "closed"}`,
      );
      done.resolve();
    },
  };
  function expect(prefix: string): Promise<string> {
    const index = received.findIndex((line) => line.startsWith(prefix));
    if (index >= 0) return Promise.resolve(received.splice(index, 1)[0]!);
    return new Promise((resolve) => waiting = { prefix, resolve });
  }
  function send(transport: Transport, line: string): void {
    console.log(`client: -> ${line}`);
    transport.write(encoder.encode(`${line}\r\n`));
  }

  const [plain] = await createConnection(() => client, {
    hostname: "127.0.0.1",
    port,
  });
  await expect("220 denio");
  send(plain, "STARTTLS");
  await expect("220 go ahead");
  const tls = await startTls(plain, client, {
    hostname: "localhost",
    caCerts: [caCert],
  });
  console.log("client: connection upgraded to TLS");
  send(tls, "HELLO secret");
  await expect("250 HELLO secret");
  send(tls, "QUIT");
  await expect("221");
  await done.promise;
}

/** Makes a self-signed certificate with openssl; returns the directory. */
async function makeCertificate(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "denio_starttls_" });
  const { success, stderr } = await new Deno.Command("openssl", {
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
      "1",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "-addext",
      "basicConstraints=critical,CA:FALSE",
    ],
    stdout: "null",
    stderr: "piped",
  }).output().catch((error) => {
    throw new Error(
      `Cannot make a certificate as openssl did not run (${error.message}): pass --cert and --key`,
    );
  });
  if (!success) {
    await Deno.remove(dir, { recursive: true });
    throw new Error(`openssl failed: ${decoder.decode(stderr)}`);
  }
  return dir;
}

function usage(message: string): never {
  console.error(message);
  console.error(
    "usage: starttls.ts [--server] [--port N] [--cert PATH --key PATH]",
  );
  Deno.exit(2);
}

let serverOnly = false;
let port: number | undefined;
let certPath: string | undefined;
let keyPath: string | undefined;
for (let i = 0; i < Deno.args.length; i++) {
  const flag = Deno.args[i];
  const value = Deno.args[i + 1];
  if (flag === "--server") {
    serverOnly = true;
    continue;
  }
  if (value === undefined) usage(`${flag} needs a value`);
  i++;
  if (flag === "--port" && /^\d+$/.test(value)) port = Number(value);
  else if (flag === "--cert") certPath = value;
  else if (flag === "--key") keyPath = value;
  else usage(`unknown argument ${flag} ${value}`);
}
if ((certPath === undefined) !== (keyPath === undefined)) {
  usage("--cert and --key go together");
}

let tempDir: string | undefined;
if (certPath === undefined) {
  tempDir = await makeCertificate();
  certPath = `${tempDir}/cert.pem`;
  keyPath = `${tempDir}/key.pem`;
  console.log(`made a throwaway certificate: ${certPath}`);
}
const cert = await Deno.readTextFile(certPath);
const key = await Deno.readTextFile(keyPath!);

try {
  const server = await createServer(() => new StartTlsServer(cert, key), {
    hostname: "127.0.0.1",
    port: port ?? (serverOnly ? 8025 : 0),
  });
  const addr = server.addrs[0] as Deno.NetAddr;
  console.log(`starttls server listening on ${addr.hostname}:${addr.port}`);
  if (serverOnly) {
    const stop = () => {
      console.log("shutting down");
      server.close();
      server.closeClients();
    };
    Deno.addSignalListener("SIGINT", stop);
    await server.serveForever();
    await server.waitClosed();
    Deno.removeSignalListener("SIGINT", stop);
  } else {
    // The client trusts the server's certificate (self-signed: its own CA).
    await runClient(addr.port, cert);
    server.close();
    await server.waitClosed();
  }
  console.log("starttls example done");
} finally {
  if (tempDir !== undefined) await Deno.remove(tempDir, { recursive: true });
}

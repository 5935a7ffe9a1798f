// Copyright 2026 the denio authors. MIT license.
/**
 * An echo client: sends one message, half-closes its side (writeEof), prints
 * what comes back, and exits when the server closes the connection.
 *
 * Run it (with `examples/echo_server.ts` or any echo server listening):
 *
 * ```sh
 * deno run --allow-net examples/echo_client.ts "hello, denio"
 * deno run --allow-net examples/echo_client.ts --port 9000 --hostname 127.0.0.1 hi
 * deno run --allow-net --allow-read --allow-write examples/echo_client.ts --unix /tmp/echo.sock hi
 * ```
 *
 * @module
 */

import {
  type ConnectOptions,
  createConnection,
  type Protocol,
  type Transport,
} from "@denio/protocols";

function usage(message: string): never {
  console.error(message);
  console.error(
    "usage: echo_client.ts [--port N] [--hostname H] | [--unix PATH] [MESSAGE]",
  );
  Deno.exit(2);
}

function parseArgs(args: string[]): [ConnectOptions, string] {
  let port = 8888;
  let hostname = "127.0.0.1";
  let unix: string | undefined;
  const words: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const value = args[i + 1];
    if (arg === "--port") {
      if (value === undefined || !/^\d+$/.test(value)) {
        usage(`--port needs a number, got ${value}`);
      }
      port = Number(value);
      i++;
    } else if (arg === "--hostname") {
      if (value === undefined) usage("--hostname needs a value");
      hostname = value;
      i++;
    } else if (arg === "--unix") {
      if (value === undefined) usage("--unix needs a path");
      unix = value;
      i++;
    } else if (arg.startsWith("--")) {
      usage(`unknown argument ${arg}`);
    } else {
      words.push(arg);
    }
  }
  const options: ConnectOptions = unix === undefined
    ? { hostname, port }
    : { transport: "unix", path: unix };
  return [options, words.length > 0 ? words.join(" ") : "hello, denio"];
}

/** Sends the message, collects the echo, and reports when the connection ends. */
class EchoClient implements Protocol {
  readonly done: PromiseWithResolvers<Error | null> = Promise.withResolvers();
  #message: string;
  #received: Uint8Array[] = [];

  constructor(message: string) {
    this.#message = message;
  }

  connectionMade(transport: Transport): void {
    const data = new TextEncoder().encode(this.#message);
    transport.write(data);
    transport.writeEof(); // nothing more to send; the server can still answer
    console.log(`sent ${data.length} bytes: ${this.#message}`);
  }

  dataReceived(data: Uint8Array): void {
    this.#received.push(data);
  }

  eofReceived(): void {
    // The server is done too; returning nothing closes our side.
  }

  connectionLost(error: Error | null): void {
    const bytes = new Uint8Array(
      this.#received.reduce((size, chunk) => size + chunk.length, 0),
    );
    let offset = 0;
    for (const chunk of this.#received) {
      bytes.set(chunk, offset);
      offset += chunk.length;
    }
    console.log(`received: ${new TextDecoder().decode(bytes)}`);
    this.done.resolve(error);
  }
}

const [options, message] = parseArgs(Deno.args);
const client = new EchoClient(message);
try {
  await createConnection(() => client, options);
} catch (error) {
  console.error(`cannot connect: ${(error as Error).message}`);
  Deno.exit(1);
}
const error = await client.done.promise;
if (error !== null) {
  console.error(`connection lost: ${error.message}`);
  Deno.exit(1);
}
console.log("connection closed");

// Copyright 2026 the denio authors. MIT license.
/**
 * A server and a client in one process, showing a request/response exchange
 * and write-buffer flow control at work:
 *
 * 1. the client says hello and the server answers;
 * 2. the server stops reading for a moment (`pauseReading()`), a slow
 *    consumer, while the client sends 12 MiB in three 4 MiB writes. Each
 *    write goes over the client's high watermark, so `pauseWriting()` fires
 *    inside it; the client waits for `resumeWriting()` before the next one;
 * 3. the client half-closes (`writeEof()`), the server replies with a
 *    checksum of what it got and closes; the program prints a summary and
 *    exits by itself.
 *
 * Run it:
 *
 * ```sh
 * deno task demo
 * deno run --allow-net examples/demo.ts
 * ```
 *
 * @module
 */

import {
  createConnection,
  createServer,
  type Protocol,
  type Transport,
} from "@denio/protocols";

const CHUNK = 4 * 1024 * 1024;
const CHUNKS = 3;
const SERVER_PAUSE_MS = 300;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const started = performance.now();

function log(who: string, message: string): void {
  const ms = (performance.now() - started).toFixed(0).padStart(5);
  console.log(`${ms} ms  ${who.padEnd(6)} ${message}`);
}

function mib(bytes: number): string {
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / (1024 * 1024)).toFixed(2)} MiB`;
}

/** Adler-32, updated chunk by chunk. */
class Adler32 {
  #a = 1;
  #b = 0;
  update(data: Uint8Array): void {
    let a = this.#a;
    let b = this.#b;
    for (let i = 0; i < data.length; i++) {
      a += data[i]!;
      b += a;
      if ((i & 4095) === 4095) {
        a %= 65521;
        b %= 65521;
      }
    }
    this.#a = a % 65521;
    this.#b = b % 65521;
  }
  digest(): string {
    return ((this.#b << 16 | this.#a) >>> 0).toString(16).padStart(8, "0");
  }
}

/** The server: answers "hello" lines, then counts bulk bytes, slowly at first. */
class DemoServer implements Protocol {
  #transport?: Transport;
  #received = 0;
  #checksum = new Adler32();
  #greeted = false;
  #greeting = "";

  connectionMade(transport: Transport): void {
    this.#transport = transport;
  }

  dataReceived(data: Uint8Array): void {
    if (!this.#greeted) {
      this.#greeting += decoder.decode(data);
      if (!this.#greeting.includes("\n")) return;
      this.#greeted = true;
      const line = this.#greeting.trim();
      log("server", `<- ${JSON.stringify(line)}`);
      this.#transport!.write(encoder.encode(`hello, ${line.slice(6)}!\n`));
      // Be a slow consumer for a moment: stop reading.
      log("server", `pauseReading() for ${SERVER_PAUSE_MS} ms`);
      this.#transport!.pauseReading();
      setTimeout(() => {
        log("server", "resumeReading()");
        this.#transport!.resumeReading();
      }, SERVER_PAUSE_MS);
      return;
    }
    this.#received += data.length;
    this.#checksum.update(data);
  }

  eofReceived(): void {
    const digest = this.#checksum.digest();
    log("server", `EOF after ${mib(this.#received)}, adler32 ${digest}`);
    this.#transport!.write(encoder.encode(`${this.#received} ${digest}\n`));
    // Returning nothing: the transport flushes the reply, then closes.
  }
}

/** The client: greets, then sends CHUNKS writes of CHUNK bytes with flow control. */
class DemoClient implements Protocol {
  readonly done: PromiseWithResolvers<Error | null> = Promise.withResolvers();
  pauses = 0;
  resumes = 0;
  #transport?: Transport;
  #chunk = new Uint8Array(CHUNK);
  #sent = 0;
  #checksum = new Adler32();
  #reply = "";
  #bulkStarted = false;

  constructor() {
    for (let i = 0; i < CHUNK; i++) this.#chunk[i] = (i * 31 + 7) & 0xff;
  }

  connectionMade(transport: Transport): void {
    this.#transport = transport;
    log("client", 'connected; -> "hello denio"');
    transport.write(encoder.encode("hello denio\n"));
  }

  dataReceived(data: Uint8Array): void {
    this.#reply += decoder.decode(data, { stream: true });
    if (!this.#bulkStarted && this.#reply.includes("\n")) {
      this.#bulkStarted = true;
      log("client", `<- ${JSON.stringify(this.#reply.trim())}`);
      this.#reply = "";
      const { high, low } = this.#transport!.getWriteBufferLimits();
      log("client", `sending ${CHUNKS} x 4 MiB (watermarks ${low}/${high})`);
      this.#sendNext();
    }
  }

  #sendNext(): void {
    if (this.#sent === CHUNKS) {
      log("client", "all sent; writeEof()");
      this.#transport!.writeEof();
      return;
    }
    this.#sent++;
    this.#checksum.update(this.#chunk);
    this.#transport!.write(this.#chunk); // pauseWriting() fires in here
  }

  pauseWriting(): void {
    this.pauses++;
    const size = this.#transport!.getWriteBufferSize();
    log(
      "client",
      `pauseWriting()  inside write #${this.#sent}, ${mib(size)} buffered`,
    );
  }

  resumeWriting(): void {
    this.resumes++;
    const size = this.#transport!.getWriteBufferSize();
    log("client", `resumeWriting() ${mib(size)} buffered`);
    this.#sendNext();
  }

  connectionLost(error: Error | null): void {
    const [count, digest] = this.#reply.trim().split(" ");
    const ok = Number(count) === CHUNK * CHUNKS &&
      digest === this.#checksum.digest();
    log(
      "client",
      `<- server got ${mib(Number(count))}, adler32 ${digest}: ${
        ok ? "match" : "MISMATCH"
      }`,
    );
    if (!ok) error ??= new Error("The server's checksum does not match");
    this.done.resolve(error);
  }
}

const server = await createServer(() => new DemoServer(), {
  hostname: "127.0.0.1",
  port: 0,
});
const { port } = server.addrs[0] as Deno.NetAddr;
log("server", `listening on 127.0.0.1:${port}`);

const client = new DemoClient();
await createConnection(() => client, { port });
const error = await client.done.promise;
server.close();
await server.waitClosed();

const seconds = (performance.now() - started) / 1000;
console.log(
  `\nsummary: ${mib(CHUNK * CHUNKS)} sent in ${seconds.toFixed(2)} s; ` +
    `pauseWriting x${client.pauses}, resumeWriting x${client.resumes}; ` +
    `connection ${
      error === null ? "closed cleanly" : `failed: ${error.message}`
    }`,
);
if (error !== null) Deno.exit(1);

// Copyright 2026 the denio authors. MIT license.
/**
 * A small Redis-compatible server: PING, ECHO, SET, GET, DEL, INCR, EXISTS
 * (plus QUIT, and CONFIG GET / COMMAND enough for `redis-cli` and
 * `redis-benchmark`), in memory. It speaks RESP2: arrays of bulk strings, and
 * inline commands (`PING\r\n`, as typed into telnet). Pipelined commands that
 * arrive in one read are answered in one write: the replies are written in
 * the same tick, and the transport sends them together.
 *
 * It is built on {@linkcode LineProtocol}: each RESP header (`*3`, `$5`) is a
 * line, and `expectBytes()` reads a bulk string's bytes raw, so values are
 * binary-safe (CR and LF included) and arrive without a copy.
 *
 * Run it:
 *
 * ```sh
 * deno run --allow-net examples/resp_server.ts              # 127.0.0.1:6380
 * deno run --allow-net examples/resp_server.ts --port 7000 --hostname 0.0.0.0
 * redis-cli -p 6380 set greeting hello && redis-cli -p 6380 get greeting
 * redis-benchmark -t ping,set,get -n 100000 -P 16 -q -p 6380
 * ```
 *
 * `--port 0` picks a free port; the first line printed says which. Ctrl-C
 * (SIGINT) closes the server.
 *
 * @module
 */

import {
  createServer,
  LineProtocol,
  type ServeOptions,
  type Server,
} from "@denio/protocols";

/** Largest array a client may announce (redis: 1024 * 1024). */
const MAX_MULTIBULK = 1024 * 1024;
/** Largest bulk string (redis's proto-max-bulk-len, 512 MB). */
const MAX_BULK = 512 * 1024 * 1024;
/** Largest inline command or header line (redis: 64 KiB). */
const MAX_INLINE = 64 * 1024;

const encoder = new TextEncoder();
const utf8 = new TextDecoder();
const CRLF = encoder.encode("\r\n");
const OK = encoder.encode("+OK\r\n");
const PONG = encoder.encode("+PONG\r\n");
const NIL = encoder.encode("$-1\r\n");
const EMPTY_ARRAY = encoder.encode("*0\r\n");

/** Bytes as a string of one char per byte (true Latin-1, not windows-1252). */
function latin1(bytes: Uint8Array): string {
  // apply() takes the bytes as the argument list: no array is made.
  if (bytes.length <= 4096) {
    return String.fromCharCode.apply(null, bytes as unknown as number[]);
  }
  let out = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    const part = bytes.subarray(i, i + 4096) as unknown as number[];
    out += String.fromCharCode.apply(null, part);
  }
  return out;
}

/** The values, keyed by the key's bytes read as Latin-1 (one char per byte). */
export type RespStore = Map<string, Uint8Array>;

/** Parses a RESP header number (`*3`, `$5`): digits with an optional minus. */
function parseHeaderNumber(line: Uint8Array): number {
  if (line.length < 2 || line.length > 12) return NaN;
  const negative = line[1] === 0x2d; // -
  let i = negative ? 2 : 1;
  if (i === line.length) return NaN;
  let n = 0;
  for (; i < line.length; i++) {
    const digit = line[i]! - 0x30;
    if (digit < 0 || digit > 9) return NaN;
    n = n * 10 + digit;
  }
  return negative ? -n : n;
}

/** Redis's string2ll: a canonical 64-bit integer, or null. */
function parseInteger(value: Uint8Array): bigint | null {
  if (value.length === 0 || value.length > 20) return null;
  const text = latin1(value);
  if (!/^(0|-?[1-9][0-9]*)$/.test(text)) return null;
  const n = BigInt(text);
  return n >= INT64_MIN && n <= INT64_MAX ? n : null;
}
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * Splits an inline command into arguments as redis's `sdssplitargs`:
 * whitespace separates, "double quotes" allow \n, \r, \t, \" and \xHH
 * escapes, 'single quotes' allow \'. Returns null for unbalanced quotes.
 */
function splitInline(line: string): string[] | null {
  const args: string[] = [];
  let i = 0;
  while (true) {
    while (i < line.length && /\s/.test(line[i]!)) i++;
    if (i >= line.length) return args;
    let arg = "";
    let quote: '"' | "'" | null = null;
    for (;; i++) {
      const c = line[i];
      if (quote === null) {
        if (c === undefined || /\s/.test(c)) break;
        if (c === '"' || c === "'") quote = c;
        else arg += c;
        continue;
      }
      if (c === undefined) return null;
      if (c === quote) {
        const next = line[i + 1];
        if (next !== undefined && !/\s/.test(next)) return null;
        i++;
        break;
      }
      if (c === "\\" && i + 1 < line.length) {
        const e = line[i + 1]!;
        if (
          quote === '"' && e === "x" &&
          /^[0-9a-f]{2}$/i.test(line.slice(i + 2, i + 4))
        ) {
          arg += String.fromCharCode(parseInt(line.slice(i + 2, i + 4), 16));
          i += 3;
          continue;
        }
        const escapes: Record<string, string> = quote === '"'
          ? {
            n: "\n",
            r: "\r",
            t: "\t",
            b: "\b",
            a: "\x07",
            '"': '"',
            "\\": "\\",
          }
          : { "'": "'" };
        if (e in escapes) {
          arg += escapes[e];
          i++;
          continue;
        }
      }
      arg += c;
    }
    args.push(arg);
  }
}

/** Latin-1 string to bytes (the inverse of `latin1()`). */
function fromLatin1(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

/**
 * Runs one command (`name` is `args[0]` in lower case) and returns the
 * reply chunks. `args` are views into the receive buffer; anything kept is
 * copied.
 */
function execute(
  store: RespStore,
  name: string,
  args: Uint8Array[],
): Uint8Array[] {
  const argc = args.length;
  const wrongArgs = () =>
    error(`ERR wrong number of arguments for '${name}' command`);
  switch (name) {
    case "ping":
      if (argc === 1) return [PONG];
      return argc === 2 ? bulk(args[1]!) : wrongArgs();
    case "echo":
      return argc === 2 ? bulk(args[1]!) : wrongArgs();
    case "set":
      if (argc < 3) return wrongArgs();
      if (argc > 3) return error("ERR syntax error");
      store.set(latin1(args[1]!), args[2]!.slice());
      return [OK];
    case "get": {
      if (argc !== 2) return wrongArgs();
      const value = store.get(latin1(args[1]!));
      return value === undefined ? [NIL] : bulk(value);
    }
    case "del":
    case "exists": {
      if (argc < 2) return wrongArgs();
      let count = 0;
      for (let i = 1; i < argc; i++) {
        const key = latin1(args[i]!);
        if (name === "del" ? store.delete(key) : store.has(key)) count++;
      }
      return integer(count);
    }
    case "incr": {
      if (argc !== 2) return wrongArgs();
      const key = latin1(args[1]!);
      const old = store.get(key);
      const current = old === undefined ? 0n : parseInteger(old);
      if (current === null) {
        return error("ERR value is not an integer or out of range");
      }
      if (current === INT64_MAX) {
        return error("ERR increment or decrement would overflow");
      }
      const next = String(current + 1n);
      store.set(key, encoder.encode(next));
      return [encoder.encode(`:${next}\r\n`)];
    }
    case "config": {
      // Enough for redis-benchmark, which asks for "save" and "appendonly".
      const sub = argc > 1 ? latin1(args[1]!).toLowerCase() : "";
      if (sub !== "get" || argc !== 3) {
        return error(
          `ERR unknown subcommand or wrong number of arguments for 'config|${sub}' command`,
        );
      }
      const wanted = latin1(args[2]!).toLowerCase();
      const config: [string, string][] = [["save", ""], ["appendonly", "no"]];
      const found = config.filter(([key]) => wanted === "*" || key === wanted);
      const out: Uint8Array[] = [encoder.encode(`*${found.length * 2}\r\n`)];
      for (const [key, value] of found) {
        out.push(...bulk(encoder.encode(key)), ...bulk(encoder.encode(value)));
      }
      return out;
    }
    case "command":
      return [EMPTY_ARRAY]; // redis-cli asks for command docs; none here.
    default: {
      let message = `ERR unknown command '${
        utf8.decode(args[0]!.subarray(0, 128))
      }', with args beginning with: `;
      for (const arg of args.slice(1)) {
        message += `'${utf8.decode(arg.subarray(0, 128))}' `;
      }
      return error(message.replace(/[\r\n]/g, " "));
    }
  }
}

/** `$N\r\n` headers of short bulk strings, encoded once. */
const BULK_HEADERS = Array.from(
  { length: 256 },
  (_, n) => encoder.encode(`$${n}\r\n`),
);

function bulk(value: Uint8Array): Uint8Array[] {
  const header = BULK_HEADERS[value.length] ??
    encoder.encode(`$${value.length}\r\n`);
  return [header, value, CRLF];
}

function integer(n: number): Uint8Array[] {
  return [encoder.encode(`:${n}\r\n`)];
}

function error(message: string): Uint8Array[] {
  return [encoder.encode(`-${message}\r\n`)];
}

/**
 * Makes the protocol for one client connection: a {@linkcode LineProtocol}
 * whose handler runs the RESP state machine against `store`.
 *
 * @param store The shared key space.
 * @returns The protocol.
 */
export function createRespProtocol(store: RespStore): LineProtocol {
  // RESP state: null between commands; else the arguments read so far of a
  // `*N` array, how many are still to come, and the length of the bulk
  // string being read raw.
  let args: Uint8Array[] | null = null;
  let remaining = 0;
  let bulkLength = -1;

  function reply(lines: LineProtocol, chunks: Uint8Array[]): void {
    lines.transport!.writelines(chunks);
  }

  function protocolError(lines: LineProtocol, message: string): void {
    reply(lines, error(`ERR Protocol error: ${message}`));
    lines.transport!.close();
  }

  function run(lines: LineProtocol, command: Uint8Array[]): void {
    const name = latin1(command[0]!).toLowerCase();
    if (name === "quit") {
      reply(lines, [OK]);
      lines.transport!.close();
      return;
    }
    reply(lines, execute(store, name, command));
  }

  return new LineProtocol({
    lineReceived(raw, lines) {
      // "\n" frames lines, so a trailing "\r" is stripped (as redis does).
      const line = raw[raw.length - 1] === 13 ? raw.subarray(0, -1) : raw;
      if (args !== null) {
        // Inside `*N`: each element is a `$len` line, then len bytes + CRLF.
        if (line[0] !== 0x24 /* $ */) {
          const got = line.length === 0 ? "\\r" : String.fromCharCode(line[0]!);
          protocolError(lines, `expected '$', got '${got}'`);
          return;
        }
        const length = parseHeaderNumber(line);
        if (!(length >= 0 && length <= MAX_BULK)) {
          protocolError(lines, "invalid bulk length");
          return;
        }
        bulkLength = length;
        lines.expectBytes(length + 2);
        return;
      }
      if (line[0] === 0x2a /* * */) {
        const count = parseHeaderNumber(line);
        if (!(count <= MAX_MULTIBULK)) {
          protocolError(lines, "invalid multibulk length");
          return;
        }
        if (count <= 0) return; // `*0` and `*-1` are ignored, as by redis.
        args = [];
        remaining = count;
        return;
      }
      // An inline command.
      const words = splitInline(latin1(line));
      if (words === null) {
        protocolError(lines, "unbalanced quotes in request");
        return;
      }
      if (words.length > 0) run(lines, words.map(fromLatin1));
    },
    bytesReceived(data, lines) {
      // The value, then CRLF (redis skips those two bytes unchecked).
      args!.push(data.subarray(0, bulkLength));
      if (--remaining === 0) {
        const command = args!;
        args = null;
        run(lines, command);
      }
    },
  }, { delimiter: "\n", maxLineLength: MAX_INLINE });
}

/** Options of {@linkcode startRespServer}. */
export interface RespServerOptions {
  /** The address to listen on. @default {"127.0.0.1"} */
  hostname?: string;
  /** The port; 0 picks a free one. @default {6380} */
  port?: number;
  /** The key space, shared by every connection. @default {a new Map} */
  store?: RespStore;
}

/**
 * Starts the server.
 *
 * @param options Where to listen and the key space.
 * @returns The listening server.
 */
export function startRespServer(
  options: RespServerOptions = {},
): Promise<Server> {
  const store = options.store ?? new Map();
  const serve: ServeOptions = {
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 6380,
  };
  return createServer(() => createRespProtocol(store), serve);
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

if (import.meta.main) {
  const port = Number(flag(Deno.args, "--port") ?? 6380);
  const hostname = flag(Deno.args, "--hostname") ?? "127.0.0.1";
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`Cannot start server as --port is not a port: ${port}`);
    Deno.exit(2);
  }
  const server = await startRespServer({ hostname, port });
  const addr = server.addrs[0] as Deno.NetAddr;
  console.log(`resp server listening on ${addr.hostname}:${addr.port}`);
  Deno.addSignalListener("SIGINT", () => {
    server.close();
    server.closeClients();
  });
  await server.serveForever();
  await server.waitClosed();
  console.log("resp server closed");
}

// Copyright 2026 the denio authors. MIT license.
/**
 * {@linkcode createServer} and {@linkcode Server}: stream servers over TCP,
 * Unix and TLS, asyncio's `loop.create_server()` and `asyncio.Server`.
 *
 * @module
 */

import type { BufferedProtocol, Protocol } from "../mod.ts";
import { toError } from "./_call_soon.ts";
import {
  checkAddress,
  checkHandshakeTimeout,
  connExtra,
  DEFAULT_HANDSHAKE_TIMEOUT,
  handshake,
  makeProtocol,
} from "./_net.ts";
import {
  assertFactory,
  assertOptions,
  assertSignal,
  describe,
} from "./_validate.ts";
import { callExceptionHandler } from "./exception_handler.ts";
import { StreamTransport } from "./stream_transport.ts";
import { checkBackend, chooseBackend, listenNative } from "./_backend.ts";

/** TLS settings of a server. */
export interface TlsServeOptions {
  /** The PEM certificate chain. */
  cert: string;
  /** The PEM private key. */
  key: string;
  /** ALPN protocols to accept, in order of preference. */
  alpnProtocols?: string[];
  /**
   * Milliseconds a client's handshake may take before it is dropped.
   *
   * Deno 2.9 limits: a `Deno.TlsConn` closed before its handshake finished
   * keeps its TCP socket until the peer speaks or closes, so a silent peer
   * holds a descriptor past the timeout (no protocol ever sees it); and a TLS
   * server cannot disable Nagle's algorithm (`Deno.TlsConn` has no
   * `setNoDelay`), so the first small write after a handshake may wait for a
   * delayed ACK (about 40 ms on Linux).
   *
   * @default {60000}
   */
  handshakeTimeout?: number;
}

/** Where and how {@linkcode createServer} listens. */
export interface ServeOptions {
  /** The address to bind (TCP). @default {"0.0.0.0"} */
  hostname?: string;
  /** The port to bind (TCP); 0 picks a free one. @default {0} */
  port?: number;
  /** `"tcp"` or `"unix"`. @default {"tcp"} */
  transport?: "tcp" | "unix";
  /** The socket path (Unix, required). A stale socket file there is replaced. */
  path?: string;
  /** Serves TLS (TCP only). */
  tls?: TlsServeOptions;
  /** Start accepting at once. @default {true} */
  startServing?: boolean;
  /** Disables Nagle's algorithm on accepted TCP connections. @default {true} */
  noDelay?: boolean;
  /** Closes the server (as `close()`) when aborted. */
  signal?: AbortSignal;
  /**
   * The socket layer: `"deno"` (Deno's socket API), `"native"` (denio's
   * own epoll reactor over FFI to libc: Linux x86_64 and aarch64, needs
   * `--allow-ffi`, no TLS) or `"auto"` (native where FFI is permitted, the
   * platform is supported and no `tls` is given; Deno's API otherwise).
   * Callbacks, their order, flow control and extra info are the same on
   * both; `getExtraInfo("socket")` is the backend's connection object.
   *
   * @default {"deno"}
   *
   * @example Serve on the native reactor where it can run
   * ```ts
   * import { createServer } from "@denio/protocols";
   *
   * await using server = await createServer(() => ({
   *   dataReceived(data: Uint8Array) {
   *     console.log(data.length);
   *   },
   * }), { hostname: "127.0.0.1", port: 0, backend: "auto" });
   * console.log(server.addrs[0]);
   * ```
   */
  backend?: "native" | "auto" | "deno";
}

type ServerState = "idle" | "serving" | "closed";

/** Milliseconds `await using` lets clients flush before aborting them. */
const DISPOSE_GRACE = 5000;

/** Delay before accepting again after accept() failed (asyncio's ACCEPT_RETRY_DELAY). */
const ACCEPT_RETRY_DELAY = 1000;

/**
 * A listening server, asyncio's `asyncio.Server`. Made by
 * {@linkcode createServer}.
 *
 * `await using` closes it, closes every client (flushing their buffers; a
 * client still not done after 5 s is aborted) and waits until all are gone.
 * asyncio's `async with` only waits for the clients, which hangs while one
 * stays connected; closing them is what a scope's end usually means.
 */
export class Server implements AsyncDisposable {
  #listener: Deno.Listener;
  #factory: () => Protocol | BufferedProtocol;
  #options: ServeOptions;
  #state: ServerState = "idle";
  #transports = new Set<StreamTransport>();
  #pendingHandshakes = new Set<Deno.Conn>();
  #closed = Promise.withResolvers<void>();
  #waiters: (() => void)[] = [];
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #onAbort: (() => void) | undefined;
  #handshakeTimeout: number;

  /**
   * Wraps a listener. Use {@linkcode createServer} rather than this.
   *
   * @param listener The Deno listener.
   * @param protocolFactory Makes a protocol for each connection.
   * @param options The server's options.
   */
  constructor(
    listener: Deno.Listener,
    protocolFactory: () => Protocol | BufferedProtocol,
    options: ServeOptions = {},
  ) {
    this.#listener = listener;
    this.#factory = protocolFactory;
    this.#options = options;
    this.#handshakeTimeout = options.tls?.handshakeTimeout ??
      DEFAULT_HANDSHAKE_TIMEOUT;
    const signal = options.signal;
    if (signal !== undefined) {
      this.#onAbort = () => this.close();
      signal.addEventListener("abort", this.#onAbort, { once: true });
    }
  }

  /** The addresses the server listens on. */
  get addrs(): Deno.Addr[] {
    return this.#state === "closed" ? [] : [this.#listener.addr];
  }

  /** True while the server accepts connections. */
  isServing(): boolean {
    return this.#state === "serving";
  }

  /**
   * Starts accepting connections. Idempotent.
   *
   * @throws {Error} If the server is closed.
   */
  startServing(): void {
    if (this.#state === "closed") {
      throw new Error("Cannot start serving as the server is closed");
    }
    if (this.#state === "serving") return;
    this.#state = "serving";
    this.#acceptLoop();
  }

  /**
   * Starts serving if needed and resolves once the server is closed.
   *
   * @returns A promise that resolves when `close()` is called.
   */
  serveForever(): Promise<void> {
    if (this.#state === "closed") {
      return Promise.reject(
        new Error("Cannot serve forever as the server is closed"),
      );
    }
    this.startServing();
    return this.#closed.promise;
  }

  /**
   * Stops accepting connections and closes the listening socket. Connections
   * already accepted stay open. Idempotent.
   */
  close(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    clearTimeout(this.#retryTimer);
    if (this.#onAbort !== undefined) {
      this.#options.signal?.removeEventListener("abort", this.#onAbort);
    }
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    for (const conn of this.#pendingHandshakes) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
    this.#pendingHandshakes.clear();
    if (this.#options.transport === "unix" && this.#options.path) {
      removeSocketFile(this.#options.path);
    }
    this.#closed.resolve();
    this.#wakeWaiters();
  }

  /** Calls `close()` on every open connection (buffers are flushed first). */
  closeClients(): void {
    for (const transport of [...this.#transports]) transport.close();
  }

  /** Calls `abort()` on every open connection. */
  abortClients(): void {
    for (const transport of [...this.#transports]) transport.abort();
  }

  /**
   * Resolves once the server is closed and every connection it accepted is
   * gone (asyncio 3.12's `wait_closed()`).
   */
  waitClosed(): Promise<void> {
    if (this.#state === "closed" && this.#transports.size === 0) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /**
   * Closes the server and its clients (flushing their buffers), then waits
   * for them to be gone. A client that does not read its data within
   * 5 seconds is aborted, so leaving a scope never hangs.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    this.closeClients();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const grace = new Promise<"late">((resolve) => {
      timer = setTimeout(() => resolve("late"), DISPOSE_GRACE);
    });
    try {
      const first = await Promise.race([this.waitClosed(), grace]);
      if (first === "late") this.abortClients();
    } finally {
      clearTimeout(timer);
    }
    await this.waitClosed();
  }

  #wakeWaiters(): void {
    if (this.#state !== "closed" || this.#transports.size !== 0) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  async #acceptLoop(): Promise<void> {
    while (this.#state === "serving") {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#state !== "serving") return;
        if (
          error instanceof Deno.errors.ConnectionAborted ||
          error instanceof Deno.errors.ConnectionReset ||
          error instanceof Deno.errors.Interrupted
        ) {
          continue;
        }
        callExceptionHandler({
          message: `Error accepting a connection; retrying in ${
            ACCEPT_RETRY_DELAY / 1000
          } s`,
          error,
        });
        await new Promise<void>((resolve) => {
          this.#retryTimer = setTimeout(resolve, ACCEPT_RETRY_DELAY);
        });
        continue;
      }
      if (this.#state !== "serving") {
        conn.close();
        return;
      }
      if (this.#options.tls !== undefined) {
        this.#acceptTls(conn as Deno.TlsConn);
      } else {
        this.#attach(conn, {});
      }
    }
  }

  async #acceptTls(conn: Deno.TlsConn): Promise<void> {
    this.#pendingHandshakes.add(conn);
    let info: Deno.TlsHandshakeInfo;
    try {
      info = await handshake(conn, this.#handshakeTimeout);
    } catch {
      // A client that fails its handshake never reaches a protocol; asyncio
      // logs it at debug level only.
      return;
    } finally {
      this.#pendingHandshakes.delete(conn);
    }
    if (this.#state === "closed") {
      conn.close();
      return;
    }
    this.#attach(conn, { alpnProtocol: info.alpnProtocol });
  }

  #attach(conn: Deno.Conn, extra: Record<string, unknown>): void {
    let protocol: Protocol | BufferedProtocol;
    try {
      if (
        this.#options.noDelay !== false &&
        conn.remoteAddr.transport === "tcp"
      ) {
        (conn as Deno.TcpConn).setNoDelay?.(true);
      }
      protocol = makeProtocol(this.#factory, "accept connection");
    } catch (error) {
      callExceptionHandler({
        message: "Error in the protocol factory; connection closed",
        error: toError(error),
      });
      conn.close();
      return;
    }
    let transport: StreamTransport;
    try {
      transport = new StreamTransport(conn, protocol, {
        extra: { ...connExtra(conn), ...extra },
        onLost: () => {
          this.#transports.delete(transport);
          this.#wakeWaiters();
        },
      });
    } catch (error) {
      // A protocol whose properties throw (a getter, a Proxy) must not end
      // the accept loop.
      callExceptionHandler({
        message:
          "Error attaching the protocol to a connection; connection closed",
        error: toError(error),
        protocol,
      });
      conn.close();
      return;
    }
    this.#transports.add(transport);
  }
}

const ACTION = "create server";

/**
 * Listens for stream connections and gives each a protocol made by
 * `protocolFactory`, as asyncio's `loop.create_server()`.
 *
 * @param protocolFactory Makes a {@linkcode Protocol} or
 * {@linkcode BufferedProtocol} for each connection.
 * @param options Where to listen.
 * @returns The server, listening (and serving unless `startServing` is false).
 * @throws {TypeError} If an argument has the wrong type.
 * @throws {RangeError} If the port is out of range.
 *
 * @example A server that greets each client and closes
 * ```ts
 * import { createServer } from "@denio/protocols";
 * import { assertEquals } from "@std/assert";
 *
 * await using server = await createServer(() => ({
 *   connectionMade(transport) {
 *     transport.write(new TextEncoder().encode("hello\n"));
 *     transport.close();
 *   },
 * }), { hostname: "127.0.0.1", port: 0 });
 *
 * const { port } = server.addrs[0] as Deno.NetAddr;
 * const conn = await Deno.connect({ port });
 * const text = await new Response(conn.readable).text();
 * assertEquals(text, "hello\n");
 * ```
 */
export async function createServer(
  protocolFactory: () => Protocol | BufferedProtocol,
  options: ServeOptions,
): Promise<Server> {
  assertFactory(protocolFactory, ACTION);
  assertOptions(options, ACTION, false);
  const kind = checkAddress(options, ACTION, false);
  assertSignal(options.signal, ACTION);
  checkHandshakeTimeout(options.tls?.handshakeTimeout, ACTION);
  checkBackend(options.backend, ACTION);
  if (
    options.startServing !== undefined &&
    typeof options.startServing !== "boolean"
  ) {
    throw new TypeError(
      `Cannot create server as startServing is not a boolean: current value is ${
        describe(options.startServing)
      }`,
    );
  }
  options.signal?.throwIfAborted();
  const backend = chooseBackend(
    options.backend,
    ACTION,
    options.tls !== undefined,
  );
  let listener: Deno.Listener;
  if (backend === "native") {
    if (kind === "unix") removeSocketFile(options.path!);
    listener = await listenNative(
      kind === "unix" ? { transport: "unix", path: options.path! } : {
        transport: "tcp",
        hostname: options.hostname ?? "0.0.0.0",
        port: options.port ?? 0,
      },
    );
  } else if (kind === "unix") {
    if (options.tls !== undefined) {
      throw new TypeError(
        "Cannot create server as tls is not supported over Unix sockets: current value is an object",
      );
    }
    removeSocketFile(options.path!);
    listener = Deno.listen({ transport: "unix", path: options.path! });
  } else if (options.tls !== undefined) {
    const tls = options.tls;
    if (typeof tls.cert !== "string" || typeof tls.key !== "string") {
      throw new TypeError(
        `Cannot create server as tls.cert and tls.key are not PEM strings: current value is ${
          describe(typeof tls.cert !== "string" ? tls.cert : tls.key)
        }`,
      );
    }
    listener = Deno.listenTls({
      hostname: options.hostname ?? "0.0.0.0",
      port: options.port ?? 0,
      cert: tls.cert,
      key: tls.key,
      ...(tls.alpnProtocols ? { alpnProtocols: tls.alpnProtocols } : {}),
    });
  } else {
    listener = Deno.listen({
      hostname: options.hostname ?? "0.0.0.0",
      port: options.port ?? 0,
    });
  }
  const server = new Server(listener, protocolFactory, options);
  if (options.startServing !== false) server.startServing();
  return server;
}

/** Removes a stale Unix socket file, as asyncio does; leaves anything else. */
function removeSocketFile(path: string): void {
  try {
    if (Deno.lstatSync(path).isSocket) Deno.removeSync(path);
  } catch {
    // Absent, or no permission to look: Deno.listen reports what matters.
  }
}

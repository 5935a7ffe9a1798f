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
  checkServiceOptions,
  connExtra,
  DEFAULT_HANDSHAKE_TIMEOUT,
  handshake,
  makeProtocol,
} from "./_net.ts";
import {
  assertBoolean,
  assertFactory,
  assertOptions,
  assertPositiveInteger,
  assertSignal,
  describe,
} from "./_validate.ts";
import { callExceptionHandler } from "./exception_handler.ts";
import {
  type BufferBudget,
  StreamTransport,
  type StreamTransportOptions,
} from "./stream_transport.ts";
import {
  acceptProxied,
  checkProxyOptions,
  checkProxyTls,
  type ProxySettings,
} from "./_proxy_server.ts";
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
   * Milliseconds without a byte read or written after which each
   * connection's protocol is asked `timeoutReached()`, and the connection is
   * aborted with a `Deno.errors.TimedOut` unless it answers `true` (see
   * `Transport.setIdleTimeout`). Node's `socket.setTimeout()`, Bun's
   * `socket.timeout()`, Twisted's `TimeoutMixin`.
   *
   * @example Reap connections silent for 10 seconds
   * ```ts
   * import { createServer } from "@denio/protocols";
   *
   * await using server = await createServer(() => ({}), {
   *   hostname: "127.0.0.1",
   *   port: 0,
   *   idleTimeout: 10_000,
   * });
   * ```
   *
   * @default {undefined} (none)
   */
  idleTimeout?: number;
  /**
   * Enables TCP keepalive probes on accepted connections, so a peer whose
   * host vanished is noticed (`TcpConn.setKeepAlive`; Node's
   * `socket.setKeepAlive()`). Not for Unix sockets (a TypeError), nor with
   * `tls`, whose `Deno.TlsConn` has no keepalive control in Deno 2.9
   * (unless `proxyProtocol` is set: that server listens on plain TCP).
   *
   * @example Keepalive probes on every accepted connection
   * ```ts
   * import { createServer } from "@denio/protocols";
   *
   * await using server = await createServer(() => ({}), {
   *   hostname: "127.0.0.1",
   *   port: 0,
   *   keepAlive: true,
   * });
   * ```
   *
   * @default {false}
   */
  keepAlive?: boolean;
  /**
   * At most this many open connections: at the limit the server stops
   * accepting (new peers wait in the kernel's backlog) and starts again as
   * soon as one is gone. TLS handshakes in progress count. Node's
   * `server.maxConnections` (which accepts and drops instead), Twisted's
   * `LimitTotalConnectionsFactory`.
   *
   * @example One client at a time
   * ```ts
   * import { createServer } from "@denio/protocols";
   *
   * await using server = await createServer(() => ({}), {
   *   hostname: "127.0.0.1",
   *   port: 0,
   *   maxConnections: 1,
   * });
   * console.log(server.connectionCount); // 0
   * ```
   *
   * @default {undefined} (no limit)
   */
  maxConnections?: number;
  /**
   * Sets SO_REUSEPORT, so several processes can listen on the same port and
   * the kernel spreads connections across them (TCP, Linux). Deno gates it
   * behind the net unstable flag (`--unstable-net`, or `"unstable": ["net"]`
   * in deno.json): without it `createServer` rejects with a
   * `Deno.errors.NotSupported`, unless `backend` is `"native"` (which sets
   * the option itself). See `examples/echo_server.ts --processes`.
   *
   * @example Two servers (in one process here; normally one per process) on one port
   * ```ts
   * import { createServer } from "@denio/protocols";
   *
   * await using first = await createServer(() => ({}), {
   *   hostname: "127.0.0.1",
   *   port: 0,
   *   reusePort: true,
   * });
   * const { port } = first.addrs[0] as Deno.NetAddr;
   * await using second = await createServer(() => ({}), {
   *   hostname: "127.0.0.1",
   *   port,
   *   reusePort: true,
   * });
   * ```
   *
   * @default {false}
   */
  reusePort?: boolean;
  /**
   * The most bytes all of this server's connections together may buffer:
   * their write buffers (bytes written and not yet taken by the OS) and what
   * the framing protocols (`LineProtocol`, `LengthPrefixedProtocol`,
   * `ContentLengthProtocol`)
   * hold of incomplete messages. The connection whose write or read takes
   * the total over the limit is aborted: the exception handler is told and
   * its `connectionLost` gets a RangeError; the others are served on. So a
   * protocol that ignores `pauseWriting` against a peer that never reads, or
   * many peers announcing huge bodies, cannot take the process's memory.
   * Bytes a protocol keeps by itself are its own to bound.
   *
   * @example At most 64 MiB buffered across all connections
   * ```ts
   * import { createServer, LineProtocol } from "@denio/protocols";
   *
   * await using server = await createServer(
   *   () => new LineProtocol({ lineReceived(line, lines) { lines.sendLine(line); } }),
   *   { hostname: "127.0.0.1", port: 0, maxBufferedBytes: 64 * 1024 * 1024 },
   * );
   * ```
   *
   * @default {undefined} (no limit)
   */
  maxBufferedBytes?: number;
  /**
   * Each connection starts with a PROXY protocol header (HAProxy's
   * `send-proxy` / `send-proxy-v2`, AWS NLB, nginx `stream`
   * `proxy_protocol on`): `true` accepts version 1 or 2 (told apart by the
   * first byte), `"v1"` or `"v2"` only that one. The header is read and
   * removed before the protocol is made; `getExtraInfo("peername")` and
   * `"sockname"` are then the addresses it carries (the socket's own for a
   * LOCAL command, an UNKNOWN line or an unspecified family) and
   * `getExtraInfo("proxy")` the parsed {@linkcode ProxyHeader}. Bytes sent
   * after the header reach the protocol intact.
   *
   * A connection whose header is missing, malformed, longer than the
   * specification's 107 bytes (v1) or 16 KiB (v2), or not complete within
   * `proxyProtocolTimeout`, is closed before any protocol sees it, and the
   * exception handler is told once, with the peer's address; the server
   * keeps serving. A peer that resets the connection during its header is
   * dropped without a report (HAProxy's health checks do that). Only enable it behind a proxy you trust: the header is
   * believed as sent.
   *
   * With `tls`, the header comes before the TLS handshake (HAProxy in TCP
   * mode in front of a TLS server): the server listens on plain TCP and
   * runs TLS through the loopback tunnel `startTls` uses (a socket pair on
   * 127.0.0.1 per connection); `getExtraInfo("socket")` is then the TCP
   * connection.
   *
   * @default {false}
   *
   * @example Behind HAProxy: the client's address, not the balancer's
   * ```ts
   * import { createServer } from "@denio/protocols";
   * import { assertEquals } from "@std/assert";
   *
   * const peer = Promise.withResolvers<unknown>();
   * await using server = await createServer(() => ({
   *   connectionMade(transport) {
   *     peer.resolve(transport.getExtraInfo("peername"));
   *     transport.close();
   *   },
   * }), { hostname: "127.0.0.1", port: 0, proxyProtocol: true });
   * const { port } = server.addrs[0] as Deno.NetAddr;
   *
   * // What HAProxy's `send-proxy` writes first on each connection.
   * const conn = await Deno.connect({ port });
   * await conn.write(
   *   new TextEncoder().encode("PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\n"),
   * );
   * assertEquals(await peer.promise, {
   *   transport: "tcp",
   *   hostname: "203.0.113.7",
   *   port: 51000,
   * });
   * await new Response(conn.readable).arrayBuffer();
   * ```
   */
  proxyProtocol?: boolean | "v1" | "v2";
  /**
   * Milliseconds a connection may take to send its whole PROXY header
   * (with `proxyProtocol`). The specification asks a receiver to wait "at
   * least 3 seconds to cover a TCP retransmit"; a proxy sends the header at
   * once on connecting.
   *
   * @default {5000}
   */
  proxyProtocolTimeout?: number;
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
  /** The options of every plain connection's transport (made once). */
  #connOptions: StreamTransportOptions | undefined;
  /** Every connection's onLost hook (one function per server). */
  #onLost = (transport: StreamTransport): void => {
    this.#transports.delete(transport);
    this.#release();
    this.#wakeWaiters();
  };
  #pendingHandshakes = new Set<Deno.Conn>();
  #closed = Promise.withResolvers<void>();
  #waiters: (() => void)[] = [];
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #onAbort: (() => void) | undefined;
  #handshakeTimeout: number;
  #maxConnections: number;
  // Accepted connections not yet gone: handshaking or attached.
  #open = 0;
  #slotFree: (() => void) | null = null;
  #budget: BufferBudget | undefined;
  #proxy: ProxySettings | undefined;

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
    this.#maxConnections = options.maxConnections ?? Infinity;
    if (options.maxBufferedBytes !== undefined) {
      this.#budget = { limit: options.maxBufferedBytes, used: 0 };
    }
    const proxy = checkProxyOptions(options, "create server");
    if (proxy !== undefined) {
      const tls = options.tls;
      this.#proxy = tls === undefined ? proxy : {
        ...proxy,
        tls: { ...tls, handshakeTimeout: this.#handshakeTimeout },
      };
    }
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

  /**
   * How many connections the server accepted that are still open (TLS
   * handshakes and PROXY headers in progress included).
   *
   * @example Count the open connections
   * ```ts
   * import { createServer } from "@denio/protocols";
   * import { assertEquals } from "@std/assert";
   *
   * await using server = await createServer(() => ({}), {
   *   hostname: "127.0.0.1",
   *   port: 0,
   * });
   * const { port } = server.addrs[0] as Deno.NetAddr;
   * const conn = await Deno.connect({ port });
   * while (server.connectionCount === 0) {
   *   await new Promise((resolve) => setTimeout(resolve, 5));
   * }
   * assertEquals(server.connectionCount, 1);
   * conn.close();
   * ```
   */
  get connectionCount(): number {
    return this.#open;
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

  /** True once serveForever() is pending (asyncio's `_serving_forever_fut`). */
  #servingForever = false;

  /**
   * Starts serving if needed and resolves once the server is closed.
   *
   * @returns A promise that resolves when `close()` is called. It rejects at
   * once if the server is closed, or if another `serveForever()` is still
   * pending (asyncio raises `RuntimeError` for both).
   */
  serveForever(): Promise<void> {
    if (this.#state === "closed") {
      return Promise.reject(
        new Error("Cannot serve forever as the server is closed"),
      );
    }
    if (this.#servingForever) {
      return Promise.reject(
        new Error(
          "Cannot serve forever as the server is already being awaited on serveForever()",
        ),
      );
    }
    this.#servingForever = true;
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
    this.#wakeAcceptor();
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

  /** One accepted connection is gone: count it and maybe accept again. */
  #release(): void {
    this.#open--;
    if (this.#open < this.#maxConnections) this.#wakeAcceptor();
  }

  #wakeAcceptor(): void {
    const wake = this.#slotFree;
    this.#slotFree = null;
    wake?.();
  }

  #wakeWaiters(): void {
    if (this.#state !== "closed" || this.#transports.size !== 0) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  async #acceptLoop(): Promise<void> {
    while (this.#state === "serving") {
      if (this.#open >= this.#maxConnections) {
        // At the limit: leave new peers in the kernel's backlog.
        await new Promise<void>((resolve) => this.#slotFree = resolve);
        continue;
      }
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#state !== "serving") return;
        if (
          error instanceof Deno.errors.ConnectionAborted ||
          error instanceof Deno.errors.ConnectionReset ||
          // Reset before Deno asked for its address (HAProxy's checks).
          error instanceof Deno.errors.NotConnected ||
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
      this.#open++;
      if (this.#proxy !== undefined) {
        this.#acceptProxied(conn);
      } else if (this.#options.tls !== undefined) {
        this.#acceptTls(conn as Deno.TlsConn);
      } else {
        this.#attach(conn, NO_EXTRA);
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
      this.#release();
      return;
    } finally {
      this.#pendingHandshakes.delete(conn);
    }
    if (this.#state === "closed") {
      conn.close();
      this.#release();
      return;
    }
    this.#attach(conn, { alpnProtocol: info.alpnProtocol });
  }

  async #acceptProxied(conn: Deno.Conn): Promise<void> {
    this.#pendingHandshakes.add(conn);
    const accepted = await acceptProxied(
      conn,
      this.#proxy!,
      () => this.#state === "closed",
    ).finally(() => this.#pendingHandshakes.delete(conn));
    if (accepted === null) {
      this.#release();
      return;
    }
    if (this.#state === "closed") {
      accepted.abort();
      this.#release();
      return;
    }
    this.#attach(conn, accepted.extra, accepted.transport);
  }

  #attach(
    conn: Deno.Conn,
    extra: Record<string, unknown>,
    make?: (
      protocol: Protocol | BufferedProtocol,
      options: StreamTransportOptions,
    ) => StreamTransport,
  ): void {
    let protocol: Protocol | BufferedProtocol;
    try {
      if (conn.remoteAddr.transport === "tcp") {
        const tcp = conn as Partial<Deno.TcpConn>;
        if (this.#options.noDelay !== false) tcp.setNoDelay?.(true);
        if (this.#options.keepAlive === true) tcp.setKeepAlive?.(true);
      }
      protocol = makeProtocol(this.#factory, "accept connection");
    } catch (error) {
      callExceptionHandler({
        message: "Error in the protocol factory; connection closed",
        error: toError(error),
      });
      conn.close();
      this.#release();
      return;
    }
    let transport: StreamTransport;
    try {
      const shared = this.#connOptions ??= {
        connExtra: true,
        idleTimeout: this.#options.idleTimeout ?? null,
        ...(this.#budget ? { budget: this.#budget } : {}),
        onLost: this.#onLost,
      };
      const options: StreamTransportOptions = extra === NO_EXTRA ? shared : {
        ...shared,
        connExtra: false,
        extra: { ...connExtra(conn), ...extra },
      };
      transport = make === undefined
        ? new StreamTransport(conn, protocol, options)
        : make(protocol, options);
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
      this.#release();
      return;
    }
    this.#transports.add(transport);
  }
}

const ACTION = "create server";
/** The extra info a plain connection adds to connExtra(): none. */
const NO_EXTRA: Record<string, unknown> = Object.freeze({});

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
  assertBoolean(options.startServing, "startServing", ACTION);
  checkServiceOptions(options, kind, ACTION);
  const proxy = checkProxyOptions(options, ACTION);
  assertPositiveInteger(options.maxConnections, "maxConnections", ACTION);
  assertPositiveInteger(options.maxBufferedBytes, "maxBufferedBytes", ACTION);
  assertBoolean(options.reusePort, "reusePort", ACTION);
  if (options.reusePort === true) {
    if (kind === "unix") {
      throw new TypeError(
        'Cannot create server as reusePort is for TCP, not Unix sockets: current value is transport "unix"',
      );
    }
  }
  // With proxyProtocol a TLS server listens on plain TCP, which has it.
  checkBackend(options.backend, ACTION);
  if (
    options.keepAlive === true && options.tls !== undefined &&
    proxy === undefined
  ) {
    throw new TypeError(
      "Cannot create server as keepAlive is not supported with tls: Deno.TlsConn has no keepalive control in Deno 2.9: current value is true",
    );
  }
  options.signal?.throwIfAborted();
  const backend = chooseBackend(
    options.backend,
    ACTION,
    options.tls !== undefined,
  );
  // Deno.listen({ reusePort }) ends the process without the net flag (the
  // native backend sets SO_REUSEPORT itself); the flag's other APIs tell
  // whether it is on.
  if (
    options.reusePort === true && backend !== "native" &&
    typeof (Deno as { listenDatagram?: unknown }).listenDatagram !== "function"
  ) {
    throw new Deno.errors.NotSupported(
      'Cannot create server as reusePort needs the net unstable flag (--unstable-net, or "unstable": ["net"] in deno.json) or backend "native": current value is true',
    );
  }
  let listener: Deno.Listener;
  if (backend === "native") {
    if (kind === "unix") removeSocketFile(options.path!);
    listener = await listenNative(
      kind === "unix" ? { transport: "unix", path: options.path! } : {
        transport: "tcp",
        hostname: options.hostname ?? "0.0.0.0",
        port: options.port ?? 0,
        ...(options.reusePort ? { reusePort: true } : {}),
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
    // A PROXY header comes before the TLS handshake: plain TCP, TLS later.
    if (proxy !== undefined) checkProxyTls(tls);
    listener = proxy !== undefined
      ? Deno.listen({
        hostname: options.hostname ?? "0.0.0.0",
        port: options.port ?? 0,
        ...(options.reusePort ? { reusePort: true } : {}),
      })
      : Deno.listenTls({
        hostname: options.hostname ?? "0.0.0.0",
        port: options.port ?? 0,
        ...(options.reusePort ? { reusePort: true } : {}),
        cert: tls.cert,
        key: tls.key,
        ...(tls.alpnProtocols ? { alpnProtocols: tls.alpnProtocols } : {}),
      });
  } else {
    listener = Deno.listen({
      hostname: options.hostname ?? "0.0.0.0",
      port: options.port ?? 0,
      ...(options.reusePort ? { reusePort: true } : {}),
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

// Copyright 2026 the denio authors. MIT license.
/**
 * {@linkcode createConnection}: a client stream connection over TCP, Unix or
 * TLS. It uses no unstable API and no `node:` module, so it runs on Deno
 * Deploy.
 *
 * @module
 */

import type { BaseProtocol, Transport } from "../mod.ts";
import {
  checkAddress,
  checkHandshakeTimeout,
  checkServiceOptions,
  connExtra,
  DEFAULT_HANDSHAKE_TIMEOUT,
  handshake,
  makeProtocol,
} from "./_net.ts";
import { encodeProxyHeader, type ProxyHeader } from "./_proxy_protocol.ts";
import { assertFactory, assertOptions, assertSignal } from "./_validate.ts";
import { StreamTransport } from "./stream_transport.ts";
import { checkBackend, chooseBackend, connectNative } from "./_backend.ts";

/** TLS settings of a client connection. */
export interface TlsConnectOptions {
  /** The name the server certificate must match. @default {the connection's hostname} */
  hostname?: string;
  /** PEM root certificates trusted in addition to the default ones. */
  caCerts?: string[];
  /** ALPN protocols to offer. */
  alpnProtocols?: string[];
  /**
   * Milliseconds the handshake may take before the connection fails. On a
   * timeout or abort the promise rejects at once; Deno 2.9 releases the TCP
   * socket of an unfinished handshake only when the peer speaks or closes.
   *
   * @default {60000}
   */
  handshakeTimeout?: number;
}

/** Where and how {@linkcode createConnection} connects. */
export interface ConnectOptions {
  /** The host to connect to (TCP). @default {"127.0.0.1"} */
  hostname?: string;
  /** The port to connect to (TCP, required). */
  port?: number;
  /** `"tcp"` or `"unix"`. @default {"tcp"} */
  transport?: "tcp" | "unix";
  /** The socket path (Unix, required). */
  path?: string;
  /** Disables Nagle's algorithm, as asyncio does. @default {true} */
  noDelay?: boolean;
  /** Wraps the connection in TLS (TCP only). */
  tls?: TlsConnectOptions;
  /** Aborts the connection attempt. */
  signal?: AbortSignal;
  /**
   * Milliseconds without a byte read or written after which the protocol is
   * asked `timeoutReached()`, and the connection is aborted with a
   * `Deno.errors.TimedOut` unless it answers `true` (see
   * `Transport.setIdleTimeout`; Node's `socket.setTimeout()`).
   *
   * @example Give up on a server that stays silent
   * ```ts ignore
   * import { createConnection } from "@denio/protocols";
   *
   * const [transport] = await createConnection(() => ({
   *   connectionLost(error: Error | null) {
   *     if (error instanceof Deno.errors.TimedOut) console.log("server went quiet");
   *   },
   * }), { hostname: "example.com", port: 7, idleTimeout: 5_000 });
   * ```
   *
   * @default {undefined} (none)
   */
  idleTimeout?: number;
  /**
   * Enables TCP keepalive probes (`TcpConn.setKeepAlive`), so a server whose
   * host vanished is noticed. Not for Unix sockets (a TypeError).
   *
   * @example A long-lived client connection with keepalive
   * ```ts ignore
   * import { createConnection } from "@denio/protocols";
   *
   * const [transport] = await createConnection(() => ({}), {
   *   hostname: "db.internal",
   *   port: 5432,
   *   keepAlive: true,
   * });
   * ```
   *
   * @default {false}
   */
  keepAlive?: boolean;
  /**
   * A PROXY protocol header to send first, before anything else (and
   * before the TLS handshake with `tls`), as a load balancer would: for
   * testing a server with `proxyProtocol`, or for a proxy that relays
   * connections itself. Version 1 sends `PROXY UNKNOWN` and version 2 the
   * `AF_UNSPEC` family when there are no addresses. Checked at the call.
   *
   * @example Tell a server with `proxyProtocol` who the client is
   * ```ts
   * import { createConnection, createServer } from "@denio/protocols";
   * import { assertEquals } from "@std/assert";
   *
   * const peer = Promise.withResolvers<unknown>();
   * await using server = await createServer(() => ({
   *   connectionMade(transport) {
   *     peer.resolve(transport.getExtraInfo("peername"));
   *   },
   * }), { hostname: "127.0.0.1", port: 0, proxyProtocol: "v1" });
   * const { port } = server.addrs[0] as Deno.NetAddr;
   *
   * const [transport] = await createConnection(() => ({}), {
   *   port,
   *   proxyHeader: {
   *     version: 1,
   *     command: "PROXY",
   *     source: { transport: "tcp", hostname: "2001:db8::7", port: 40000 },
   *     destination: { transport: "tcp", hostname: "2001:db8::1", port: 80 },
   *   },
   * });
   * assertEquals(await peer.promise, {
   *   transport: "tcp",
   *   hostname: "2001:db8::7",
   *   port: 40000,
   * });
   * transport.close();
   * ```
   */
  proxyHeader?: ProxyHeader;
  /**
   * The socket layer: `"deno"` (Deno's socket API), `"native"` (denio's
   * own epoll reactor over FFI to libc: Linux x86_64 and aarch64, needs
   * `--allow-ffi`, no TLS) or `"auto"` (native where FFI is permitted, the
   * platform is supported and no `tls` is given; Deno's API otherwise).
   * The native module is loaded only when chosen, so this module stays
   * usable where there is no FFI (Deno Deploy).
   *
   * @default {"deno"}
   *
   * @example Connect over the native reactor where it can run
   * ```ts
   * import { createConnection, createServer } from "@denio/protocols";
   *
   * await using server = await createServer(() => ({}), {
   *   hostname: "127.0.0.1",
   *   port: 0,
   * });
   * const { port } = server.addrs[0] as Deno.NetAddr;
   * const [transport] = await createConnection(() => ({}), {
   *   port,
   *   backend: "auto",
   * });
   * transport.close();
   * ```
   */
  backend?: "native" | "auto" | "deno";
}

const ACTION = "create connection";

/**
 * Opens a stream connection and attaches a protocol made by
 * `protocolFactory`. Resolves once `connectionMade` has been called, as
 * asyncio's `loop.create_connection()` does.
 *
 * @typeParam P The protocol type.
 * @param protocolFactory Returns the protocol for the connection.
 * @param options Where to connect.
 * @returns The transport and the protocol.
 * @throws {TypeError} If an argument has the wrong type.
 * @throws {RangeError} If the port (or a number in `proxyHeader`) is out of
 * range.
 *
 * @example Send a line to a server and close
 * ```ts
 * import { createConnection, createServer } from "@denio/protocols";
 * import { assertEquals } from "@std/assert";
 *
 * const got = Promise.withResolvers<string>();
 * await using server = await createServer(() => ({
 *   dataReceived: (data: Uint8Array) => got.resolve(new TextDecoder().decode(data)),
 * }), { hostname: "127.0.0.1", port: 0 });
 * const { port } = server.addrs[0] as Deno.NetAddr;
 *
 * const [transport] = await createConnection(() => ({}), { port });
 * transport.write(new TextEncoder().encode("hi"));
 * assertEquals(await got.promise, "hi");
 * transport.close();
 * ```
 */
export async function createConnection<P extends BaseProtocol>(
  protocolFactory: () => P,
  options: ConnectOptions,
): Promise<[Transport, P]> {
  assertFactory(protocolFactory, ACTION);
  assertOptions(options, ACTION, false);
  const kind = checkAddress(options, ACTION, true);
  assertSignal(options.signal, ACTION);
  checkServiceOptions(options, kind, ACTION);
  checkBackend(options.backend, ACTION);
  const timeout = checkHandshakeTimeout(
    options.tls?.handshakeTimeout,
    ACTION,
  ) ?? DEFAULT_HANDSHAKE_TIMEOUT;
  const proxyHeader = options.proxyHeader === undefined
    ? undefined
    : encodeProxyHeader(options.proxyHeader, ACTION);
  const signal = options.signal;
  signal?.throwIfAborted();

  const backend = chooseBackend(
    options.backend,
    ACTION,
    options.tls !== undefined,
  );
  let conn: Deno.Conn;
  const extra: Record<string, unknown> = {};
  if (backend === "native") {
    const native = await connectNative(
      kind === "unix" ? { transport: "unix", path: options.path! } : {
        transport: "tcp",
        hostname: options.hostname ?? "127.0.0.1",
        port: options.port!,
      },
      signal,
    );
    if (kind === "tcp" && options.noDelay !== false) native.setNoDelay(true);
    if (options.keepAlive === true) native.setKeepAlive(true);
    conn = native;
    if (proxyHeader !== undefined) await writeAll(native, proxyHeader);
  } else if (kind === "unix") {
    if (options.tls !== undefined) {
      throw new TypeError(
        "Cannot create connection as tls is not supported over Unix sockets: current value is an object",
      );
    }
    conn = await abortable(
      Deno.connect({ transport: "unix", path: options.path! }),
      signal,
      (late) => late.close(),
    );
    if (proxyHeader !== undefined) await writeAll(conn, proxyHeader);
  } else {
    const hostname = options.hostname ?? "127.0.0.1";
    const tcp = await Deno.connect({
      hostname,
      port: options.port!,
      ...(signal ? { signal } : {}),
    });
    if (options.noDelay !== false) tcp.setNoDelay(true);
    if (options.keepAlive === true) tcp.setKeepAlive(true);
    conn = tcp;
    if (proxyHeader !== undefined) await writeAll(tcp, proxyHeader);
    const tls = options.tls;
    if (tls !== undefined) {
      let tlsConn: Deno.TlsConn;
      try {
        tlsConn = await Deno.startTls(tcp, {
          hostname: tls.hostname ?? hostname,
          ...(tls.caCerts ? { caCerts: tls.caCerts } : {}),
          ...(tls.alpnProtocols ? { alpnProtocols: tls.alpnProtocols } : {}),
        });
      } catch (error) {
        tcp.close();
        throw error;
      }
      const info = await abortable(
        handshake(tlsConn, timeout),
        signal,
        () => {},
        () => tlsConn.close(),
      );
      extra.alpnProtocol = info.alpnProtocol;
      conn = tlsConn;
    }
  }

  let protocol: P;
  try {
    signal?.throwIfAborted();
    protocol = makeProtocol(protocolFactory, ACTION);
  } catch (error) {
    conn.close();
    throw error;
  }
  const made = Promise.withResolvers<void>();
  let transport: StreamTransport;
  try {
    transport = new StreamTransport(conn, protocol, {
      extra: { ...connExtra(conn), ...extra },
      idleTimeout: options.idleTimeout ?? null,
      onMade: made.resolve,
    });
  } catch (error) {
    // A protocol whose getters throw while it is attached.
    conn.close();
    throw error;
  }
  await made.promise;
  return [transport, protocol];
}

/**
 * Races `promise` with `signal`. On abort, `onAbort` runs at once and a value
 * that still arrives later is handed to `release`.
 */
async function abortable<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  release: (value: T) => void,
  onAbort?: () => void,
): Promise<T> {
  if (signal === undefined) return await promise;
  // Handled (and released) even when the signal aborted already: the
  // operation is under way and must not leak or reject unhandled.
  promise.then((value) => {
    if (signal.aborted) release(value);
  }, () => {});
  const aborted = Promise.withResolvers<never>();
  const abort = () => {
    aborted.reject(signal.reason);
    try {
      onAbort?.();
    } catch {
      // Already closed.
    }
  };
  if (signal.aborted) {
    abort();
    return await aborted.promise;
  }
  signal.addEventListener("abort", abort, { once: true });
  try {
    return await Promise.race([promise, aborted.promise]);
  } finally {
    signal.removeEventListener("abort", abort);
  }
}

/** Writes all of `data` (the PROXY header) before anything else; closes `conn` on failure. */
async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  try {
    while (data.length > 0) data = data.subarray(await conn.write(data));
  } catch (error) {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
    throw error;
  }
}

// Copyright 2026 the denio authors. MIT license.
// The server side of the PROXY protocol: the option checks of createServer,
// reading and removing the header of an accepted connection (with a
// deadline), the adapter that hands the bytes read past the header to the
// transport first, and TLS after the header (HAProxy in TCP mode in front of
// a TLS server) through the loopback tunnel that startTls uses.

import type { BaseProtocol } from "../mod.ts";
import {
  type ProxyHeader,
  ProxyHeaderParser,
  type ProxyMode,
  ProxyProtocolError,
} from "./_proxy_protocol.ts";
import { Tunnel, TunnelListener, TunnelTransport } from "./_tls_tunnel.ts";
import { isPeerGone } from "./_call_soon.ts";
import { describe } from "./_validate.ts";
import { callExceptionHandler } from "./exception_handler.ts";
import {
  type StreamIo,
  StreamTransport,
  type StreamTransportOptions,
} from "./stream_transport.ts";

/**
 * Milliseconds a connection may take to send its PROXY header: 5 s. The
 * specification asks for "at least 3 seconds to cover a TCP retransmit";
 * HAProxy's `accept-proxy` waits `timeout client` (tens of seconds in
 * common configurations), Twisted's HAProxyWrappingFactory has no limit.
 * A proxy sends the header at once, right after connecting, so a few
 * seconds only ever cuts off peers that are not a proxy.
 */
export const DEFAULT_PROXY_TIMEOUT = 5000;

/** Bytes asked for per read while the header is incomplete. */
const HEADER_READ_SIZE = 4096;

/** TLS settings for a server that reads a PROXY header before TLS. */
export interface ProxyTls {
  cert: string;
  key: string;
  alpnProtocols?: string[];
  handshakeTimeout: number;
}

/** A server's PROXY protocol settings, checked. */
export interface ProxySettings {
  mode: ProxyMode;
  timeout: number;
  tls?: ProxyTls;
}

/**
 * Checks `proxyProtocol` and `proxyProtocolTimeout` of createServer's
 * options; returns the settings, or undefined when the option is off.
 */
export function checkProxyOptions(
  options: { proxyProtocol?: unknown; proxyProtocolTimeout?: unknown },
  action: string,
): Omit<ProxySettings, "tls"> | undefined {
  const value = options.proxyProtocol;
  const timeout = options.proxyProtocolTimeout;
  if (
    value !== undefined && typeof value !== "boolean" && value !== "v1" &&
    value !== "v2"
  ) {
    throw new TypeError(
      `Cannot ${action} as proxyProtocol is not a boolean, "v1" or "v2": current value is ${
        describe(value)
      }`,
    );
  }
  if (timeout !== undefined) {
    if (typeof timeout !== "number") {
      throw new TypeError(
        `Cannot ${action} as proxyProtocolTimeout is not a number: current value is ${
          describe(timeout)
        }`,
      );
    }
    if (!(timeout > 0) || timeout > 2 ** 31 - 1) {
      throw new RangeError(
        `Cannot ${action} as proxyProtocolTimeout is not from 1 to 2147483647: current value is ${timeout}`,
      );
    }
  }
  if (value === undefined || value === false) return undefined;
  return {
    mode: value === true ? "any" : value,
    timeout: timeout ?? DEFAULT_PROXY_TIMEOUT,
  };
}

/**
 * Checks a TLS certificate and key the way `Deno.listenTls` does, for a
 * server that listens on plain TCP and starts TLS after the PROXY header.
 */
export function checkProxyTls(
  tls: Omit<ProxyTls, "handshakeTimeout">,
): void {
  new TunnelListener({
    serverSide: true,
    hostname: "127.0.0.1",
    cert: tls.cert,
    key: tls.key,
    ...(tls.alpnProtocols ? { alpnProtocols: tls.alpnProtocols } : {}),
  }).close();
}

/**
 * Reads the PROXY header at the start of `conn` within `timeout` ms.
 * Resolves to the header and the bytes read past it; on a malformed or
 * missing header, EOF, a read error or the timeout, `conn` is closed and
 * the promise rejects (a {@linkcode ProxyProtocolError},
 * `Deno.errors.TimedOut` or the read's error).
 */
export async function readProxyHeader(
  conn: Deno.Conn,
  mode: ProxyMode,
  timeout: number,
): Promise<{ header: ProxyHeader; rest: Uint8Array }> {
  const parser = new ProxyHeaderParser(mode);
  const buffer = new Uint8Array(HEADER_READ_SIZE);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    closeQuietly(conn);
  }, timeout);
  let received = 0;
  try {
    while (true) {
      let n: number | null;
      try {
        n = await conn.read(buffer);
      } catch (error) {
        if (timedOut) break;
        throw error;
      }
      if (timedOut) break;
      if (n === null) {
        throw new ProxyProtocolError(
          received === 0
            ? "The connection closed before sending a PROXY protocol header"
            : `The connection closed after ${received} bytes of an incomplete PROXY protocol header`,
        );
      }
      received += n;
      const result = parser.push(buffer.subarray(0, n));
      if (result !== null) return result;
    }
    throw new Deno.errors.TimedOut(
      `No complete PROXY protocol header within ${timeout} ms (${received} bytes received)`,
    );
  } catch (error) {
    closeQuietly(conn);
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A `Deno.Conn` whose first reads return `rest` (bytes read past the PROXY
 * header), then read from the connection itself.
 */
export class PrefixedIo implements StreamIo {
  #conn: Deno.Conn;
  #rest: Uint8Array | null;

  /** Wraps `conn`; `rest` must not be empty. */
  constructor(conn: Deno.Conn, rest: Uint8Array) {
    this.#conn = conn;
    this.#rest = rest;
  }

  /** The leftover bytes first, then the connection's. */
  read(buffer: Uint8Array): Promise<number | null> {
    const rest = this.#rest;
    if (rest === null) return this.#conn.read(buffer);
    const n = Math.min(rest.length, buffer.length);
    buffer.set(rest.subarray(0, n));
    this.#rest = n === rest.length ? null : rest.subarray(n);
    return Promise.resolve(n);
  }

  /** Writes to the connection. */
  write(data: Uint8Array): Promise<number> {
    return this.#conn.write(data);
  }

  /** Shuts down the connection's write side. */
  closeWrite(): Promise<void> {
    return this.#conn.closeWrite();
  }

  /** Closes the connection. */
  close(): void {
    this.#rest = null;
    this.#conn.close();
  }
}

/** What the server needs to attach a connection whose header was read. */
export interface ProxiedConnection {
  /** Extra info that replaces the connection's own (peername, sockname, proxy, …). */
  extra: Record<string, unknown>;
  /** Makes the transport (schedules `connectionMade`). */
  transport(
    protocol: BaseProtocol,
    options: StreamTransportOptions,
  ): StreamTransport;
  /** Drops the connection (the server closed meanwhile). */
  abort(): void;
}

/**
 * Reads the header of an accepted connection (and runs the TLS handshake
 * after it when the server has `tls`). Never rejects: a bad header, EOF
 * before it or a timeout closes the connection, is reported once to the
 * exception handler (unless `closed()` says the server closed meanwhile,
 * or the peer reset the connection) and resolves to null; so does a failed TLS handshake, unreported as on a plain TLS
 * server (asyncio logs it at debug level only).
 */
export async function acceptProxied(
  conn: Deno.Conn,
  settings: ProxySettings,
  closed: () => boolean,
): Promise<ProxiedConnection | null> {
  let header: ProxyHeader;
  let rest: Uint8Array;
  try {
    ({ header, rest } = await readProxyHeader(
      conn,
      settings.mode,
      settings.timeout,
    ));
  } catch (error) {
    // A peer that resets the connection is gone, not wrong (HAProxy's
    // health checks reset theirs right after the header).
    if (!closed() && !isPeerGone(error)) {
      const reason = error instanceof Error ? error : new Error(String(error));
      callExceptionHandler({
        message: `Cannot accept the connection from ${
          formatAddr(conn.remoteAddr)
        } as its PROXY protocol header was rejected: ${reason.message}; connection closed`,
        error: reason,
      });
    }
    return null;
  }
  const extra: Record<string, unknown> = {
    peername: header.source ?? conn.remoteAddr,
    sockname: header.destination ?? conn.localAddr,
    proxy: header,
  };
  const tls = settings.tls;
  if (tls === undefined) {
    const io: StreamIo = rest.length > 0 ? new PrefixedIo(conn, rest) : conn;
    return {
      extra,
      transport: (protocol, options) =>
        new StreamTransport(io, protocol, options),
      abort: () => closeQuietly(conn),
    };
  }
  let tunnel: Tunnel;
  try {
    const listener = new TunnelListener({
      serverSide: true,
      hostname: "127.0.0.1",
      cert: tls.cert,
      key: tls.key,
      ...(tls.alpnProtocols ? { alpnProtocols: tls.alpnProtocols } : {}),
    });
    const pair = await listener.connect();
    tunnel = new Tunnel(
      pair.tls,
      pair.raw,
      conn,
      Promise.resolve(rest.length > 0 ? rest : undefined),
    );
  } catch (error) {
    closeQuietly(conn);
    if (!closed()) {
      callExceptionHandler({
        message: `Cannot start TLS for the connection from ${
          formatAddr(conn.remoteAddr)
        }; connection closed`,
        error: error instanceof Error ? error : new Error(String(error)),
      });
    }
    return null;
  }
  let info: Deno.TlsHandshakeInfo;
  try {
    info = await tunnel.handshake(tls.handshakeTimeout);
  } catch {
    return null;
  }
  extra.alpnProtocol = info.alpnProtocol;
  return {
    extra,
    transport: (protocol, options) =>
      new TunnelTransport(tunnel, protocol, options),
    abort: () => void tunnel.destroy(),
  };
}

/** `host:port` (IPv6 in brackets) or a Unix path, for messages. */
function formatAddr(addr: Deno.Addr): string {
  switch (addr.transport) {
    case "tcp":
    case "udp":
      return addr.hostname.includes(":")
        ? `[${addr.hostname}]:${addr.port}`
        : `${addr.hostname}:${addr.port}`;
    case "unix":
    case "unixpacket":
      return addr.path === "" ? "an unnamed Unix socket" : addr.path;
    case "vsock":
      return `vsock ${addr.cid}:${addr.port}`;
    default: {
      const never: never = addr;
      return String(never);
    }
  }
}

function closeQuietly(resource: { close(): unknown }): void {
  try {
    resource.close();
  } catch {
    // Already closed.
  }
}

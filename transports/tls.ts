// Copyright 2026 the denio authors. MIT license.
/**
 * {@linkcode startTls}: upgrades a live connection to TLS, asyncio's
 * `loop.start_tls()`, for STARTTLS protocols (SMTP, IMAP, PostgreSQL, …).
 *
 * @module
 */

import type { BaseProtocol, Transport } from "../mod.ts";
import { checkHandshakeTimeout, DEFAULT_HANDSHAKE_TIMEOUT } from "./_net.ts";
import { Tunnel, TunnelListener, TunnelTransport } from "./_tls_tunnel.ts";
import { assertOptions, assertString, describe } from "./_validate.ts";
import {
  type DetachedIo,
  detachIo,
  StreamTransport,
} from "./stream_transport.ts";

/** How {@linkcode startTls} upgrades a connection. */
export interface StartTlsOptions {
  /**
   * Client side: the name the server certificate must match.
   * @default {the peer's address, from the transport's "peername"}
   */
  hostname?: string;
  /** Client side: PEM root certificates trusted in addition to the default ones. */
  caCerts?: string[];
  /** ALPN protocols to offer (client) or accept, in order of preference (server). */
  alpnProtocols?: string[];
  /** Act as the TLS server (needs `cert` and `key`). @default {false} */
  serverSide?: boolean;
  /** Server side: the PEM certificate chain. */
  cert?: string;
  /** Server side: the PEM private key. */
  key?: string;
  /** Milliseconds the handshake may take before the upgrade fails. @default {60000} */
  handshakeTimeout?: number;
}

const ACTION = "start TLS";

/**
 * Upgrades a plain stream connection to TLS, as asyncio's
 * `loop.start_tls()`, and resolves to a new {@linkcode Transport} whose
 * protocol is `protocol`, once the handshake has completed.
 *
 * - It may be called at any time, also from `dataReceived` while the
 *   transport has a read in flight (it always has). Reading stops at once
 *   (asyncio's `pause_reading()`): bytes that arrive after the call are TLS
 *   records for the handshake, never `dataReceived`. Data written before the
 *   call is sent, in plain text, before the handshake starts. No byte is lost
 *   or reordered.
 * - Do not use the old transport afterwards: it is detached (writes to it are
 *   dropped) and calls no `connectionLost`; its `close()` and `abort()` act
 *   on the upgrade (cancelling it while the handshake runs) and then on the
 *   new transport, so `Server.closeClients()` and `waitClosed()` cover
 *   upgraded connections. `protocol` gets no second `connectionMade`; it gets
 *   `connectionLost` once, from the new transport.
 * - A failure before the handshake starts (a key or certificate Deno cannot
 *   load, a host name it refuses, the transport closing) leaves the transport
 *   as it was, reading again.
 * - A failed handshake (a certificate that does not verify, a peer that is
 *   not speaking TLS or goes away, `handshakeTimeout`) closes the connection
 *   and rejects with the reason (Deno's message, e.g. "invalid peer
 *   certificate: UnknownIssuer"); as in asyncio, the protocol then gets
 *   neither `connectionMade` nor `connectionLost`: the rejection is the one
 *   report.
 * - The new transport's `getExtraInfo` answers `peername`, `sockname` and
 *   `socket` (the original connection's) and `alpnProtocol` (the negotiated
 *   protocol or `null`). Deno exposes neither the peer certificate nor the
 *   cipher, so `peercert` and `cipher` give the default value. Its write
 *   buffer limits are those of the old transport. `writeEof()` sends TLS
 *   close_notify and shuts down the write side (asyncio's SSL transport
 *   cannot half-close; TLS 1.3 can, and Deno's TLS does).
 *
 * How: Deno puts TLS only on a socket that has no read pending and only as a
 * client (`Deno.startTls`), or on a socket it accepted itself
 * (`Deno.listenTls`). So the TLS session runs on a fresh socket pair on
 * 127.0.0.1, and the TLS records are copied unchanged between that pair and
 * the original connection: only ciphertext crosses the loopback, stable APIs
 * only, no `node:` modules. It needs permission to listen on and connect to
 * 127.0.0.1 (`--allow-net=127.0.0.1`), and costs one more copy through the
 * kernel per record. `close()` on the new transport sends close_notify and
 * lets the records in flight reach the peer (at most 30 s, asyncio's
 * shutdown timeout) before `connectionLost`; `abort()` does not wait.
 * Throughput matches Deno's own TLS; as with `Deno.listenTls`, the server
 * side cannot disable Nagle's algorithm on its TLS socket, which can delay
 * the first write after the handshake by a delayed-ACK interval (~40 ms).
 *
 * @param transport A TCP or Unix transport from `createConnection` or
 * `createServer` (or one returned by `startTls`), not closing.
 * @param protocol The protocol of the TLS transport, usually the current one.
 * @param options Client or server settings.
 * @returns The TLS transport.
 * @throws {TypeError} If an argument has the wrong type, or `serverSide` is
 * set without `cert` and `key`.
 * @throws {RangeError} If `handshakeTimeout` is not positive.
 * @throws {Error} If the transport is closing or wrote EOF, or the handshake
 * failed or timed out (`Deno.errors.TimedOut`), or the old transport was
 * closed during the handshake (`Deno.errors.Interrupted`).
 *
 * @example Upgrade both ends of a connection (STARTTLS)
 * ```ts
 * import {
 *   createConnection,
 *   createServer,
 *   type Protocol,
 *   startTls,
 *   type Transport,
 * } from "@denio/protocols";
 * import { assertEquals } from "@std/assert";
 *
 * // A self-signed certificate for 127.0.0.1 and localhost (examples only!).
 * const cert = `-----BEGIN CERTIFICATE-----
 * MIIBIzCB1qADAgECAgEBMAUGAytlcDAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwIBcN
 * MDAwMTAxMDAwMDAwWhgPMjEyNTAxMDEwMDAwMDBaMBQxEjAQBgNVBAMMCWxvY2Fs
 * aG9zdDAqMAUGAytlcAMhAHXiRU/s56alPvQU7Fz3w6ZJcwVNtfyadfEkqXvIJkta
 * o0swSTAMBgNVHRMBAf8EAjAAMBoGA1UdEQQTMBGHBH8AAAGCCWxvY2FsaG9zdDAd
 * BgNVHQ4EFgQUQlYdfZFdQkAgDnOUxSRYYvx9LnYwBQYDK2VwA0EAbNPFOYUCOW8Q
 * sR6Ln22raqLKDx9mc16VE6smR8cAiBMfPzIhL3VDbwe+5kJ5bcipvClunXlBQ7HX
 * t8CytvrZDg==
 * -----END CERTIFICATE-----`;
 * const key = `-----BEGIN PRIVATE KEY-----
 * MC4CAQAwBQYDK2VwBCIEIP7o9Z8y86PtxH6/aRPm8tfp5IXIZoXOqou2fY3+914j
 * -----END PRIVATE KEY-----`;
 *
 * // The server answers STARTTLS with OK, upgrades, then echoes.
 * class StartTlsEcho implements Protocol {
 *   #transport!: Transport;
 *   connectionMade(transport: Transport) {
 *     this.#transport = transport;
 *   }
 *   dataReceived(data: Uint8Array) {
 *     if (new TextDecoder().decode(data) !== "STARTTLS\r\n") {
 *       this.#transport.write(data);
 *       return;
 *     }
 *     this.#transport.write(new TextEncoder().encode("OK\r\n"));
 *     startTls(this.#transport, this, { serverSide: true, cert, key })
 *       .then((tls) => this.#transport = tls, () => {});
 *   }
 * }
 * await using server = await createServer(() => new StartTlsEcho(), {
 *   hostname: "127.0.0.1",
 *   port: 0,
 * });
 * const { port } = server.addrs[0] as Deno.NetAddr;
 *
 * // The client says STARTTLS, upgrades on OK, and sends a secret.
 * const ok = Promise.withResolvers<void>();
 * const echo = Promise.withResolvers<string>();
 * let upgraded = false;
 * const client: Protocol = {
 *   dataReceived(data) {
 *     if (upgraded) echo.resolve(new TextDecoder().decode(data));
 *     else ok.resolve();
 *   },
 * };
 * const [plain] = await createConnection(() => client, { port });
 * plain.write(new TextEncoder().encode("STARTTLS\r\n"));
 * await ok.promise;
 * upgraded = true;
 * const tls = await startTls(plain, client, { caCerts: [cert] });
 * tls.write(new TextEncoder().encode("secret"));
 * assertEquals(await echo.promise, "secret");
 * tls.close();
 * ```
 */
export async function startTls(
  transport: Transport,
  protocol: BaseProtocol,
  options: StartTlsOptions,
): Promise<Transport> {
  if (
    !(transport instanceof StreamTransport) ||
    typeof transport[detachIo] !== "function"
  ) {
    throw new TypeError(
      `Cannot ${ACTION} as transport is not a stream transport made by this module: current value is ${
        describe(transport)
      }`,
    );
  }
  if (protocol === null || typeof protocol !== "object") {
    throw new TypeError(
      `Cannot ${ACTION} as protocol is not an object: current value is ${
        describe(protocol)
      }`,
    );
  }
  assertOptions(options, ACTION, false);
  const timeout = checkHandshakeTimeout(options.handshakeTimeout, ACTION) ??
    DEFAULT_HANDSHAKE_TIMEOUT;
  const serverSide = options.serverSide ?? false;
  if (typeof serverSide !== "boolean") {
    throw new TypeError(
      `Cannot ${ACTION} as serverSide is not a boolean: current value is ${
        describe(serverSide)
      }`,
    );
  }
  assertString(options.hostname, "hostname", ACTION);
  assertStrings(options.caCerts, "caCerts");
  assertStrings(options.alpnProtocols, "alpnProtocols");
  if (serverSide) {
    for (const name of ["cert", "key"] as const) {
      if (typeof options[name] !== "string") {
        throw new TypeError(
          `Cannot ${ACTION} as ${name} is not a PEM string with serverSide set: current value is ${
            describe(options[name])
          }`,
        );
      }
    }
  }
  const peer = transport.getExtraInfo("peername") as Deno.Addr | undefined;
  const hostname = options.hostname ??
    (peer?.transport === "tcp" ? peer.hostname : "127.0.0.1");

  if (transport.isClosing()) {
    throw new Error("Cannot upgrade transport as it is closing");
  }

  // Synchronously, before any await: reading stops (as asyncio's
  // pause_reading() in start_tls), so the peer's first TLS record cannot
  // reach dataReceived, and a bad certificate or key fails here.
  const listener = new TunnelListener({
    serverSide,
    hostname,
    ...(options.caCerts ? { caCerts: options.caCerts } : {}),
    ...(options.alpnProtocols ? { alpnProtocols: options.alpnProtocols } : {}),
    ...(serverSide ? { cert: options.cert!, key: options.key! } : {}),
  });
  const wasReading = transport.isReading();
  transport.pauseReading();

  // Until the tunnel is ready the transport is untouched: a failure here
  // leaves it as it was.
  let pair: { tls: Deno.TlsConn; raw: Deno.Conn };
  let detached: DetachedIo;
  try {
    pair = await listener.connect();
  } catch (error) {
    if (wasReading) transport.resumeReading();
    throw error;
  } finally {
    listener.close();
  }
  try {
    detached = await transport[detachIo]();
  } catch (error) {
    closeQuietly(pair.tls);
    closeQuietly(pair.raw);
    if (wasReading) transport.resumeReading();
    throw error;
  }

  // From here on the connection is the tunnel's. close() or abort() on the
  // old transport cancels the upgrade.
  const { io, firstRead } = detached;
  const tunnel = new Tunnel(pair.tls, pair.raw, io, firstRead);
  let cancelled = false;
  function cancel(): void {
    cancelled = true;
    tunnel.destroy();
  }
  detached.forward({ close: cancel, abort: cancel });
  let info: Deno.TlsHandshakeInfo;
  try {
    if (typeof io.read !== "function" || typeof io.write !== "function") {
      throw new TypeError(
        `Cannot ${ACTION} as transport is not readable and writable: current value is ${
          describe(transport)
        }`,
      );
    }
    info = await tunnel.handshake(timeout);
    if (cancelled) throw new Error("cancelled");
  } catch (error) {
    await tunnel.destroy();
    detached.onLost();
    if (cancelled) {
      throw new Deno.errors.Interrupted(
        `Cannot ${ACTION} as the transport was closed during the upgrade`,
      );
    }
    throw error;
  }

  const limits = transport.getWriteBufferLimits();
  const tls = new TunnelTransport(tunnel, protocol, {
    connected: true,
    ...(detached.budget ? { budget: detached.budget } : {}),
    extra: {
      peername: transport.getExtraInfo("peername"),
      sockname: transport.getExtraInfo("sockname"),
      socket: transport.getExtraInfo("socket"),
      alpnProtocol: info.alpnProtocol,
    },
    onLost: detached.onLost,
  });
  tls.setWriteBufferLimits(limits);
  tls.setIdleTimeout(detached.idleTimeout);
  detached.forward(tls);
  return tls;
}

function assertStrings(value: unknown, name: string): void {
  if (value === undefined) return;
  if (!Array.isArray(value) || value.some((item) => typeof item !== "string")) {
    throw new TypeError(
      `Cannot ${ACTION} as ${name} is not an array of strings: current value is ${
        describe(value)
      }`,
    );
  }
}

function closeQuietly(resource: { close(): unknown }): void {
  try {
    const closing = resource.close();
    if (closing instanceof Promise) closing.catch(() => {});
  } catch {
    // Already closed.
  }
}

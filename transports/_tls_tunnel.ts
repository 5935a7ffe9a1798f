// Copyright 2026 the denio authors. MIT license.
// The loopback tunnel behind startTls(). Deno can put TLS only on a socket it
// owns and that has no read pending (`Deno.startTls`, client side only) or on
// a socket it accepted itself (`Deno.listenTls`). The connection to upgrade
// already has a read in flight, and may need the server side. So Deno's TLS
// engine runs on one end of a fresh loopback socket pair, and two pumps copy
// the TLS records, unchanged, between the other end of that pair and the
// original connection. Only ciphertext crosses the tunnel.

import { handshake } from "./_net.ts";
import type { StreamIo, StreamTransportOptions } from "./stream_transport.ts";
import { StreamTransport } from "./stream_transport.ts";
import type { BaseProtocol } from "../mod.ts";

/** How long a graceful close may wait for the tunnel to drain (asyncio's SSL_SHUTDOWN_TIMEOUT). */
const LINGER_TIMEOUT = 30_000;
const PUMP_BUFFER_SIZE = 64 * 1024;
/** Strangers accepted (and dropped) on a tunnel listener before giving up. */
const MAX_STRANGERS = 16;

type TunnelState = "pumping" | "draining" | "closed";

/**
 * A tunnel adapter's graceful close, for a tunnel running over it (TLS in
 * TLS): the outer close_notify is followed by the inner one.
 */
const closeGracefully: unique symbol = Symbol("denio.closeGracefully");
type GracefulIo = StreamIo & { [closeGracefully]?: () => Promise<void> };

/** Settings of the TLS end of a tunnel. */
export interface TunnelTls {
  serverSide: boolean;
  hostname: string;
  caCerts?: string[];
  alpnProtocols?: string[];
  cert?: string;
  key?: string;
}

/**
 * The listening half of a tunnel, made synchronously so that bad settings
 * (an unreadable certificate or key, no permission) fail before the
 * connection is touched.
 */
export class TunnelListener {
  #listener: Deno.Listener;
  #tls: TunnelTls;

  /** Listens on 127.0.0.1 (plain for a client upgrade, TLS for a server one). */
  constructor(tls: TunnelTls) {
    this.#tls = tls;
    this.#listener = tls.serverSide
      ? Deno.listenTls({
        hostname: "127.0.0.1",
        port: 0,
        cert: tls.cert!,
        key: tls.key!,
        ...(tls.alpnProtocols ? { alpnProtocols: tls.alpnProtocols } : {}),
      })
      : Deno.listen({ hostname: "127.0.0.1", port: 0 });
  }

  /** Connects the pair and closes the listener; returns the TLS and the raw end. */
  async connect(): Promise<{ tls: Deno.TlsConn; raw: Deno.Conn }> {
    const listener = this.#listener;
    const { port } = listener.addr as Deno.NetAddr;
    let mine: Deno.TcpConn;
    let theirs: Deno.Conn;
    try {
      mine = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        theirs = await acceptFrom(listener, mine.localAddr);
      } catch (error) {
        mine.close();
        throw error;
      }
    } finally {
      this.close();
    }
    const tls = this.#tls;
    if (tls.serverSide) {
      mine.setNoDelay(true);
      return { tls: theirs as Deno.TlsConn, raw: mine };
    }
    (theirs as Deno.TcpConn).setNoDelay(true);
    mine.setNoDelay(true);
    try {
      const tlsConn = await Deno.startTls(mine, {
        hostname: tls.hostname,
        ...(tls.caCerts ? { caCerts: tls.caCerts } : {}),
        ...(tls.alpnProtocols ? { alpnProtocols: tls.alpnProtocols } : {}),
      });
      return { tls: tlsConn, raw: theirs };
    } catch (error) {
      closeQuietly(mine);
      closeQuietly(theirs);
      throw error;
    }
  }

  /** Closes the listener. Idempotent. */
  close(): void {
    closeQuietly(this.#listener);
  }
}

/** Accepts until the connection from `from` arrives; drops any other. */
async function acceptFrom(
  listener: Deno.Listener,
  from: Deno.Addr,
): Promise<Deno.Conn> {
  const { port } = from as Deno.NetAddr;
  for (let i = 0; i <= MAX_STRANGERS; i++) {
    const conn = await listener.accept();
    if ((conn.remoteAddr as Deno.NetAddr).port === port) return conn;
    closeQuietly(conn);
  }
  throw new Deno.errors.ConnectionRefused(
    "Cannot start TLS as the loopback tunnel was flooded by other connections",
  );
}

/**
 * A connected tunnel: `tls` is Deno's TLS connection, `raw` the socket that
 * carries its records, `io` the original connection. The pumps copy
 * raw → io (up) and io → raw (down).
 */
export class Tunnel {
  #tls: Deno.TlsConn;
  #raw: Deno.Conn;
  #io: StreamIo;
  #state: TunnelState = "pumping";
  #error: Error | null = null;
  #up: Promise<void>;
  #down: Promise<void>;
  #upEnded = Promise.withResolvers<void>();
  #lingerTimer: ReturnType<typeof setTimeout> | undefined;
  #closed: Promise<void> | null = null;
  /** Set by a transport's `close()`: the next `close()` of the adapter drains. */
  graceful = false;

  /**
   * Starts the pumps. `firstRead` is the detached transport's read in flight;
   * its bytes go down the tunnel before anything else read from `io`.
   */
  constructor(
    tls: Deno.TlsConn,
    raw: Deno.Conn,
    io: StreamIo,
    firstRead: Promise<Uint8Array | null | undefined>,
  ) {
    this.#tls = tls;
    this.#raw = raw;
    this.#io = io;
    this.#up = this.#pumpUp();
    this.#down = this.#pumpDown(firstRead);
  }

  /** The TLS connection (Deno's). */
  get tls(): Deno.TlsConn {
    return this.#tls;
  }

  /** Runs the handshake within `timeout` ms; on failure everything is closed. */
  async handshake(timeout: number): Promise<Deno.TlsHandshakeInfo> {
    try {
      return await handshake(this.#tls, timeout);
    } catch (error) {
      await this.destroy();
      throw error;
    }
  }

  /** The adapter a StreamTransport drives. */
  adapter(): StreamIo {
    const io: GracefulIo = {
      read: (buffer) => this.#read(buffer),
      write: (data) => this.#write(data),
      close: () => this.#close(),
      [closeGracefully]: () => {
        this.graceful = true;
        return this.#close();
      },
    };
    if (typeof this.#io.closeWrite === "function") {
      io.closeWrite = () => this.#closeWrite();
    }
    return io;
  }

  /** Closes everything at once and resolves when both pumps have ended. */
  destroy(): Promise<void> {
    this.#hardClose();
    return this.#settled();
  }

  /** Cuts a graceful close short. */
  abort(): void {
    this.graceful = false;
    if (this.#state === "draining") this.#hardClose();
  }

  async #read(buffer: Uint8Array): Promise<number | null> {
    let n: number | null;
    try {
      n = await this.#tls.read(buffer);
    } catch (error) {
      throw this.#error ?? error;
    }
    if (n === null && this.#error !== null) throw this.#error;
    return n;
  }

  async #write(data: Uint8Array): Promise<number> {
    try {
      return await this.#tls.write(data);
    } catch (error) {
      throw this.#error ?? error;
    }
  }

  async #closeWrite(): Promise<void> {
    try {
      await this.#tls.closeWrite();
    } catch (error) {
      throw this.#error ?? error;
    }
  }

  /**
   * The adapter's close(): after `close()` on the transport the TLS side
   * sends close_notify and the tunnel drains to the peer (at most
   * LINGER_TIMEOUT ms); otherwise everything closes at once. Resolves when
   * every resource is released, so connectionLost comes after that.
   */
  #close(): Promise<void> {
    if (this.#closed !== null) return this.#closed;
    if (!this.graceful || this.#state !== "pumping") {
      this.#closed = this.destroy();
      return this.#closed;
    }
    this.#state = "draining";
    this.#closed = (async () => {
      const lingered = new Promise<void>((resolve) => {
        this.#lingerTimer = setTimeout(resolve, LINGER_TIMEOUT);
      });
      let drained = false;
      try {
        drained = await Promise.race([
          this.#drain().then(() => true),
          lingered.then(() => false),
        ]);
      } finally {
        clearTimeout(this.#lingerTimer);
        const inner = (this.#io as GracefulIo)[closeGracefully];
        if (drained && this.#error === null && inner !== undefined) {
          // TLS in TLS: the connection below closes gracefully too.
          this.#state = "closed";
          closeQuietly(this.#tls);
          closeQuietly(this.#raw);
          await inner();
        } else {
          this.#hardClose();
        }
      }
      await this.#settled();
    })();
    return this.#closed;
  }

  async #drain(): Promise<void> {
    try {
      await this.#tls.closeWrite();
    } catch {
      // EOF was written already, or the connection is gone.
    }
    closeQuietly(this.#tls);
    await this.#upEnded.promise;
  }

  #hardClose(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    clearTimeout(this.#lingerTimer);
    closeQuietly(this.#tls);
    closeQuietly(this.#raw);
    closeQuietly(this.#io);
  }

  async #settled(): Promise<void> {
    await Promise.all([this.#up, this.#down]);
  }

  #fail(error: unknown): void {
    if (this.#state === "closed") return;
    this.#error ??= error instanceof Error ? error : new Error(String(error));
    // The TLS side sees the tunnel end and reports #error.
    closeQuietly(this.#raw);
  }

  /** TLS records from Deno's engine to the peer. */
  async #pumpUp(): Promise<void> {
    const raw = this.#raw;
    const io = this.#io;
    const buffer = new Uint8Array(PUMP_BUFFER_SIZE);
    try {
      while (true) {
        const n = await raw.read(buffer);
        if (n === null) break;
        await writeAll(io, buffer.subarray(0, n));
      }
      // Our TLS side wrote close_notify and shut down its write side.
      if (this.#state === "pumping") await io.closeWrite?.();
    } catch (error) {
      this.#fail(error);
    } finally {
      this.#upEnded.resolve();
    }
  }

  /** TLS records from the peer to Deno's engine. */
  async #pumpDown(
    firstRead: Promise<Uint8Array | null | undefined>,
  ): Promise<void> {
    const raw = this.#raw;
    const io = this.#io;
    try {
      const first = await firstRead;
      if (first !== null) {
        if (first !== undefined) await writeAll(raw, first);
        const buffer = new Uint8Array(PUMP_BUFFER_SIZE);
        while (true) {
          const n = await io.read!(buffer);
          if (n === null) break;
          await writeAll(raw, buffer.subarray(0, n));
        }
      }
      // The peer shut down its write side: pass the EOF on.
      if (this.#state !== "closed") await raw.closeWrite();
    } catch (error) {
      this.#fail(error);
    }
  }
}

/**
 * A StreamTransport over a tunnel: `close()` lets the tunnel drain, `abort()`
 * does not.
 */
export class TunnelTransport extends StreamTransport {
  #tunnel: Tunnel;

  /** Wraps the tunnel's adapter; no connectionMade (options.connected). */
  constructor(
    tunnel: Tunnel,
    protocol: BaseProtocol,
    options: StreamTransportOptions,
  ) {
    super(tunnel.adapter(), protocol, options);
    this.#tunnel = tunnel;
  }

  /** As StreamTransport.close(), and the TLS records in flight reach the peer. */
  override close(): void {
    if (!this.isClosing()) this.#tunnel.graceful = true;
    super.close();
  }

  /** As StreamTransport.abort(); a close() still draining is cut short. */
  override abort(): void {
    this.#tunnel.abort();
    super.abort();
  }
}

async function writeAll(
  io: { write?(data: Uint8Array): Promise<number> },
  data: Uint8Array,
): Promise<void> {
  while (data.length > 0) {
    const n = await io.write!(data);
    data = data.subarray(n);
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

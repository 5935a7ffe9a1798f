// Copyright 2026 the denio authors. MIT license.
// The two socket backends of the datagram transport, behind one small
// adapter (DatagramIo): Deno.listenDatagram (udp and unixpacket; needs the
// `net` unstable flag) and node:dgram (udp only; no flag needed, imported
// lazily so that nothing outside the datagram path loads a node: module).
// Also the host resolution the endpoint needs to pick a family and to know
// its peer's address.

import type { Socket as NodeSocket } from "node:dgram";
import type {
  DatagramMulticastIo,
  DatagramSocketIo as DatagramIo,
} from "./datagram.ts";
import { describe } from "./_validate.ts";

/** Which socket API a datagram endpoint uses. */
export type DatagramBackend = "deno" | "node";

/** The two kinds of datagram socket. */
export type DatagramKind = "udp" | "unixpacket";

/** A resolved IP address. */
export interface ResolvedHost {
  /** The address, in canonical form ("127.0.0.1", "::1"). */
  address: string;
  /** 4 or 6. */
  family: 4 | 6;
}

/** The largest UDP payload (65,535 minus the IPv6 UDP header), rounded up. */
const UDP_RECEIVE_SIZE = 64 * 1024;
/** asyncio's max_size for datagram reads; Unix datagrams may exceed 64 KiB. */
const UNIX_RECEIVE_SIZE = 256 * 1024;

const IPV4_LITERAL = /^\d{1,3}(?:\.\d{1,3}){3}$/;

/** True when the running Deno offers `Deno.listenDatagram` (`--unstable-net`). */
export function hasListenDatagram(): boolean {
  return typeof (Deno as { listenDatagram?: unknown }).listenDatagram ===
    "function";
}

/** The canonical form of an IP literal, or `undefined` if `host` is a name. */
export function ipLiteral(host: string): ResolvedHost | undefined {
  if (IPV4_LITERAL.test(host)) {
    try {
      return { address: new URL(`http://${host}/`).hostname, family: 4 };
    } catch {
      return undefined;
    }
  }
  if (host.includes(":")) {
    const bare = host.startsWith("[") && host.endsWith("]")
      ? host.slice(1, -1)
      : host;
    try {
      return {
        address: new URL(`http://[${bare}]/`).hostname.slice(1, -1),
        family: 6,
      };
    } catch {
      // A scoped address ("fe80::1%eth0") is not a URL host: keep it as is.
      return { address: bare, family: 6 };
    }
  }
  return undefined;
}

/**
 * Resolves `host` to one address as getaddrinfo does (so /etc/hosts counts),
 * of `family` when given. IP literals need no lookup; names use node:dns,
 * loaded on first use.
 */
export async function resolveHost(
  host: string,
  family: 4 | 6 | undefined,
  action: string,
): Promise<ResolvedHost> {
  const literal = ipLiteral(host);
  if (literal !== undefined) {
    if (family !== undefined && literal.family !== family) {
      throw new RangeError(
        `Cannot ${action} as the local and remote addresses are of different families: current value is ${
          describe(host)
        }`,
      );
    }
    return literal;
  }
  const dns = await import("node:dns");
  const found = await dns.promises.lookup(host, { family: family ?? 0 });
  return {
    address: ipLiteral(found.address)?.address ?? found.address,
    family: found.family === 6 ? 6 : 4,
  };
}

/** What opening a socket needs. */
export interface OpenOptions {
  /** Socket kind. */
  kind: DatagramKind;
  /** The address to bind (udp). */
  local?: ResolvedHost & { port: number };
  /** The path to bind (unixpacket); unbound when absent. */
  path?: string;
  /** Sets SO_BROADCAST (node:dgram; Deno.listenDatagram always sets it). */
  broadcast: boolean;
}

/** Opens a socket with `backend`. */
export async function openDatagramIo(
  backend: DatagramBackend,
  options: OpenOptions,
): Promise<DatagramIo> {
  switch (backend) {
    case "deno":
      return openDeno(options);
    case "node":
      return await openNode(options);
    default: {
      const never: never = backend;
      throw new TypeError(`Unknown datagram backend: ${describe(never)}`);
    }
  }
}

// ------------------------------------------------------------------- inbox

type Received = [Uint8Array, Deno.Addr] | { error: unknown };

/**
 * Datagrams (and receive errors) waiting for the transport's receive(): for
 * the backends that receive on their own (node:dgram's events, the Unix
 * datagram pump). After end(), receive() rejects with the end reason.
 */
class Inbox {
  #items: Received[] = [];
  #head = 0;
  #waiter: PromiseWithResolvers<[Uint8Array, Deno.Addr]> | null = null;
  #end: { reason: unknown } | null = null;

  push(item: Received): void {
    if (this.#end !== null) return;
    const waiter = this.#waiter;
    if (waiter === null) {
      this.#items.push(item);
      return;
    }
    this.#waiter = null;
    if (Array.isArray(item)) waiter.resolve(item);
    else waiter.reject(item.error);
  }

  /** No more items; pending and later receive() calls reject with `reason`. */
  end(reason: unknown): void {
    if (this.#end !== null) return;
    this.#end = { reason };
    this.#items = [];
    this.#head = 0;
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.reject(reason);
  }

  // deno-lint-ignore require-await -- async so that every failure rejects
  async receive(): Promise<[Uint8Array, Deno.Addr]> {
    if (this.#head < this.#items.length) {
      const item = this.#items[this.#head++]!;
      if (this.#head === this.#items.length) {
        this.#items = [];
        this.#head = 0;
      }
      if (Array.isArray(item)) return item;
      throw item.error;
    }
    if (this.#end !== null) throw this.#end.reason;
    this.#waiter = Promise.withResolvers();
    return this.#waiter.promise;
  }
}

function canceled(): Error {
  return new Deno.errors.Interrupted("operation canceled");
}

// ------------------------------------------------------ Deno.listenDatagram

function openDeno(options: OpenOptions): DatagramIo {
  const listen = (Deno as {
    listenDatagram?: typeof Deno.listenDatagram;
  }).listenDatagram!;
  if (options.kind === "unixpacket") {
    if (options.path !== undefined) removeSocketFile(options.path);
    const conn = listen({
      transport: "unixpacket",
      ...(options.path !== undefined ? { path: options.path } : {}),
    });
    return new DenoUnixDatagramIo(conn, listen);
  }
  const local = options.local!;
  return new DenoDatagramIo(listen({
    transport: "udp",
    hostname: local.address,
    port: local.port,
  }));
}

/** UDP: Deno's receive and send may be in flight together. */
class DenoDatagramIo implements DatagramIo {
  #conn: Deno.DatagramConn;
  #buffer = new Uint8Array(UDP_RECEIVE_SIZE);
  readonly localAddr: Deno.Addr;
  readonly multicast: DatagramMulticastIo;

  constructor(conn: Deno.DatagramConn) {
    this.#conn = conn;
    this.localAddr = conn.addr;
    this.multicast = new DenoMulticastIo(conn);
  }

  get socket(): unknown {
    return this.#conn;
  }

  async receive(): Promise<[Uint8Array, Deno.Addr]> {
    const [view, addr] = await this.#conn.receive(this.#buffer);
    return [view.slice(), addr];
  }

  async send(data: Uint8Array, addr: Deno.Addr): Promise<void> {
    await this.#conn.send(data, addr);
  }

  close(): void {
    this.#conn.close();
  }
}

type Membership = Deno.MulticastV4Membership | Deno.MulticastV6Membership;

/**
 * Deno's multicast controls hang off a group membership; the loopback and
 * TTL they set are socket-wide (and still work after leave()), so the
 * latest membership is kept for them. IPv6 memberships have no setTTL.
 */
class DenoMulticastIo implements DatagramMulticastIo {
  #conn: Deno.DatagramConn;
  #memberships = new Map<string, Membership>();
  #latest: Membership | null = null;

  constructor(conn: Deno.DatagramConn) {
    this.#conn = conn;
  }

  async join(group: ResolvedHost, iface: string | undefined): Promise<void> {
    const membership = group.family === 4
      ? await this.#conn.joinMulticastV4(group.address, iface ?? "0.0.0.0")
      : await this.#conn.joinMulticastV6(group.address, 0);
    this.#memberships.set(groupKey(group, iface), membership);
    this.#latest = membership;
  }

  async leave(group: ResolvedHost, iface: string | undefined): Promise<void> {
    const key = groupKey(group, iface);
    await this.#memberships.get(key)?.leave();
    this.#memberships.delete(key);
  }

  async setLoopback(flag: boolean): Promise<void> {
    await this.#settings("set multicast loopback").setLoopback(flag);
  }

  async setTTL(ttl: number): Promise<void> {
    const membership = this.#settings("set multicast TTL");
    if (!("setTTL" in membership)) {
      throw new Deno.errors.NotSupported(
        `Cannot set multicast TTL as Deno.listenDatagram offers no TTL for IPv6 groups: current value is ${ttl}`,
      );
    }
    await membership.setTTL(ttl);
  }

  #settings(action: string): Membership {
    if (this.#latest === null) {
      throw new Deno.errors.NotSupported(
        `Cannot ${action} as Deno.listenDatagram sets it only through a group membership, so join a group first: current value is no group joined`,
      );
    }
    return this.#latest;
  }
}

/** The key of one (group, interface) membership. */
export function groupKey(
  group: ResolvedHost,
  iface: string | undefined,
): string {
  return `${group.address}%${iface ?? ""}`;
}

interface Outgoing {
  data: Uint8Array;
  addr: Deno.Addr;
  done: PromiseWithResolvers<void>;
}

/**
 * Unix datagrams. Deno (2.9) holds a Unix datagram socket for the whole of
 * a pending receive(), and a send() meanwhile fails with "Socket already in
 * use"; a send to a full peer queue blocks (Linux's max_dgram_qlen, often
 * 10) and holds the socket too. So one pump owns the socket and takes turns:
 * it receives into an inbox, and before each send it drains its own queue:
 * a second, unbound, send-only socket sends a random token to our path, the
 * pending receive ends, and the pump receives until it reads the token. Two
 * endpoints that both send much at each other thus never both wait on a
 * full queue. The tokens are dropped. An unbound socket cannot receive: it
 * only sends.
 */
class DenoUnixDatagramIo implements DatagramIo {
  #conn: Deno.DatagramConn;
  #listen: typeof Deno.listenDatagram;
  #buffer = new Uint8Array(UNIX_RECEIVE_SIZE);
  #inbox = new Inbox();
  #outbox: Outgoing[] = [];
  #token = crypto.getRandomValues(new Uint8Array(16));
  #tokenSent = false;
  #waker: Deno.DatagramConn | null = null;
  #bound: boolean;
  #closed = false;
  readonly localAddr: Deno.Addr;

  constructor(conn: Deno.DatagramConn, listen: typeof Deno.listenDatagram) {
    this.#conn = conn;
    this.#listen = listen;
    this.localAddr = conn.addr;
    this.#bound = Boolean((conn.addr as Deno.UnixAddr).path);
    if (this.#bound) this.#pump();
  }

  get socket(): unknown {
    return this.#conn;
  }

  receive(): Promise<[Uint8Array, Deno.Addr]> {
    return this.#inbox.receive();
  }

  async send(data: Uint8Array, addr: Deno.Addr): Promise<void> {
    if (!this.#bound) {
      await this.#conn.send(data, addr);
      return;
    }
    if (this.#closed) {
      throw new Deno.errors.BadResource("Socket has been closed");
    }
    const done = Promise.withResolvers<void>();
    this.#outbox.push({ data, addr, done });
    this.#sendToken();
    await done.promise;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#bound) this.#inbox.end(canceled());
    try {
      this.#waker?.close();
    } finally {
      this.#conn.close();
    }
  }

  /** Asks the pump to drain: our token, queued behind what already came. */
  #sendToken(): void {
    if (this.#tokenSent || this.#outbox.length === 0 || this.#closed) return;
    this.#tokenSent = true;
    let waker: Deno.DatagramConn;
    try {
      waker = this.#waker ??= this.#listen({ transport: "unixpacket" });
    } catch (error) {
      this.#tokenFailed(error);
      return;
    }
    waker.send(this.#token, this.localAddr).catch((error) =>
      this.#tokenFailed(error)
    );
  }

  /** Without a token there is no drain: the queued sends fail with its error. */
  #tokenFailed(error: unknown): void {
    this.#tokenSent = false;
    if (this.#closed) return;
    const failed = this.#outbox;
    this.#outbox = [];
    for (const item of failed) item.done.reject(error);
  }

  async #pump(): Promise<void> {
    try {
      while (!this.#closed) {
        let view: Uint8Array;
        let addr: Deno.Addr;
        try {
          [view, addr] = await this.#conn.receive(this.#buffer);
        } catch (error) {
          if (this.#closed) return;
          if (
            error instanceof Deno.errors.BadResource ||
            error instanceof Deno.errors.Interrupted
          ) {
            this.#inbox.end(error);
            return;
          }
          this.#inbox.push({ error });
          continue;
        }
        if (!this.#isToken(view, addr)) {
          this.#inbox.push([view.slice(), addr]);
          continue;
        }
        // Drained: send one, then drain again before the next.
        this.#tokenSent = false;
        const item = this.#outbox.shift();
        if (item === undefined) continue;
        try {
          await this.#conn.send(item.data, item.addr);
          item.done.resolve();
        } catch (error) {
          item.done.reject(error);
        }
        this.#sendToken();
      }
    } finally {
      this.#inbox.end(canceled());
    }
  }

  #isToken(view: Uint8Array, addr: Deno.Addr): boolean {
    if ((addr as Deno.UnixAddr).path || view.length !== this.#token.length) {
      return false;
    }
    return view.every((byte, i) => byte === this.#token[i]);
  }
}

/** Removes a stale Unix socket file before binding, as asyncio does. */
export function removeSocketFile(path: string): void {
  try {
    if (Deno.lstatSync(path).isSocket) Deno.removeSync(path);
  } catch {
    // Absent, or no permission to look: binding reports what matters.
  }
}

// ---------------------------------------------------------------- node:dgram

async function openNode(options: OpenOptions): Promise<DatagramIo> {
  const local = options.local!;
  // Deno's node:dgram bind() throws its permission error from a queued tick,
  // past the "error" event, which would end the process: ask first (this
  // prompts where Deno would, and is denied under --no-prompt).
  const host = local.family === 6
    ? `[${local.address}]:${local.port}`
    : `${local.address}:${local.port}`;
  if (Deno.permissions.requestSync({ name: "net", host }).state !== "granted") {
    throw new Deno.errors.NotCapable(
      `Requires net access to "${host}", run again with the --allow-net flag`,
    );
  }
  const dgram = await import("node:dgram");
  const socket = dgram.createSocket({
    type: local.family === 6 ? "udp6" : "udp4",
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind({ port: local.port, address: local.address }, () => {
      socket.off("error", reject);
      resolve();
    });
  });
  try {
    if (options.broadcast) socket.setBroadcast(true);
    return new NodeDatagramIo(socket);
  } catch (error) {
    socket.close();
    throw error;
  }
}

/** UDP over node:dgram: events feed the inbox; send takes a callback. */
class NodeDatagramIo implements DatagramIo {
  #socket: NodeSocket;
  #inbox = new Inbox();
  #closed = false;
  readonly localAddr: Deno.Addr;
  readonly multicast: DatagramMulticastIo;

  constructor(socket: NodeSocket) {
    this.#socket = socket;
    this.multicast = new NodeMulticastIo(socket);
    const info = socket.address();
    this.localAddr = {
      transport: "udp",
      hostname: info.address,
      port: info.port,
    };
    socket.on("message", (message, rinfo) => {
      // node:dgram hands out a view of a 64 KiB buffer per datagram: copy.
      this.#inbox.push([new Uint8Array(message), {
        transport: "udp",
        hostname: rinfo.address,
        port: rinfo.port,
      }]);
    });
    socket.on("error", (error) => this.#inbox.push({ error }));
    socket.on("close", () => {
      if (!this.#closed) {
        this.#inbox.end(new Deno.errors.BadResource("The socket was closed"));
      }
    });
  }

  get socket(): unknown {
    return this.#socket;
  }

  receive(): Promise<[Uint8Array, Deno.Addr]> {
    return this.#inbox.receive();
  }

  async send(data: Uint8Array, addr: Deno.Addr): Promise<void> {
    const { hostname, port } = addr as Deno.NetAddr;
    // The callback fires once the datagram is handed to the OS. (A send
    // still in flight when the socket closes never calls back.)
    await new Promise<void>((resolve, reject) => {
      this.#socket.send(data, port, hostname, (error) => {
        if (error) reject(error);
        else resolve();
      });
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#inbox.end(canceled());
    try {
      this.#socket.close();
    } catch {
      // Already closed under us.
    }
  }
}

/** node:dgram's multicast calls are synchronous socket options. */
class NodeMulticastIo implements DatagramMulticastIo {
  #socket: NodeSocket;

  constructor(socket: NodeSocket) {
    this.#socket = socket;
  }

  // deno-lint-ignore require-await -- async so that every failure rejects
  async join(group: ResolvedHost, iface: string | undefined): Promise<void> {
    this.#socket.addMembership(group.address, iface);
  }

  // deno-lint-ignore require-await -- async so that every failure rejects
  async leave(group: ResolvedHost, iface: string | undefined): Promise<void> {
    this.#socket.dropMembership(group.address, iface);
  }

  // deno-lint-ignore require-await -- async so that every failure rejects
  async setLoopback(flag: boolean): Promise<void> {
    this.#socket.setMulticastLoopback(flag);
  }

  // deno-lint-ignore require-await -- async so that every failure rejects
  async setTTL(ttl: number): Promise<void> {
    this.#socket.setMulticastTTL(ttl);
  }
}

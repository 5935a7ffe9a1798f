// Copyright 2026 the denio authors. MIT license.
// The native backend's sockets: a listener shaped like Deno.Listener and a
// connection that is a StreamIo (read/write/closeWrite/close) with
// remoteAddr, localAddr, setNoDelay and setKeepAlive, over the reactor in
// _native_reactor.ts. Imported dynamically by createServer and
// createConnection only when the native backend is chosen.

import {
  AF_INET,
  AF_INET6,
  AF_UNIX,
  check,
  closeFd,
  EAGAIN,
  EALREADY,
  ECONNABORTED,
  EINPROGRESS,
  EINTR,
  errnoCell,
  getReactor,
  type Handle,
  IPPROTO_TCP,
  type Libc,
  libc,
  MAX_IO,
  MSG_NOSIGNAL,
  osError,
  type Reactor,
  SHUT_WR,
  size,
  SO_ERROR,
  SO_KEEPALIVE,
  SO_REUSEADDR,
  SO_REUSEPORT,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  socketErrno,
  SOL_SOCKET,
  TCP_NODELAY,
} from "./_native_reactor.ts";

import {
  type ReadyListener,
  socketReadable,
  socketWritable,
} from "./stream_transport.ts";

export { reactorFds, unsupportedReason } from "./_native_reactor.ts";

const SOCKADDR_SIZE = 128; // sockaddr_storage
const LISTEN_BACKLOG = 4096; // capped by net.core.somaxconn
const encoder = new TextEncoder();

function cString(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length * 3 + 1);
  const { written } = encoder.encodeInto(text, bytes);
  return bytes.subarray(0, written + 1);
}

function closed(): Error {
  return new Deno.errors.BadResource("Bad resource ID");
}

function interrupted(): Error {
  return new Deno.errors.Interrupted("operation canceled");
}

// ------------------------------------------------------------- addresses

/**
 * The dotted text of IPv4 addresses seen recently: peers come from few
 * addresses, and each connection would otherwise hold its own copy.
 */
const ipv4Texts = new Map<number, string>();
const IPV4_TEXTS_MAX = 1024;

function ipv4Text(address: number): string {
  let text = ipv4Texts.get(address);
  if (text === undefined) {
    text = `${address >>> 24}.${(address >>> 16) & 255}.${
      (address >>> 8) & 255
    }.${address & 255}`;
    if (ipv4Texts.size >= IPV4_TEXTS_MAX) ipv4Texts.clear();
    ipv4Texts.set(address, text);
  }
  return text;
}

/**
 * Reads a sockaddr (IPv4, IPv6 or Unix) into a Deno.Addr. Its fields are
 * read byte by byte: a DataView per call measured 250-330 ns against 50-90
 * for an IPv4 address (it runs once or twice per accept).
 */
function parseAddr(
  lib: Libc,
  storage: Uint8Array,
  length: number,
): Deno.NetAddr | Deno.UnixAddr {
  // sa_family is host-endian (little on x86_64 and aarch64), the port and
  // the IPv4 address network order.
  const family = length >= 2 ? storage[0]! | (storage[1]! << 8) : AF_UNIX;
  if (family === AF_INET || family === AF_INET6) {
    const port = (storage[2]! << 8) | storage[3]!;
    if (family === AF_INET) {
      const address = ((storage[4]! << 24) | (storage[5]! << 16) |
        (storage[6]! << 8) | storage[7]!) >>> 0;
      return { transport: "tcp", hostname: ipv4Text(address), port };
    }
    const text = new Uint8Array(64);
    lib.inet_ntop(AF_INET6, storage.subarray(8, 24), text, text.length);
    return {
      transport: "tcp",
      hostname: new TextDecoder().decode(text.subarray(0, text.indexOf(0))),
      port,
    };
  }
  let end = 2;
  while (end < length && storage[end] !== 0) end++;
  return {
    transport: "unix",
    path: new TextDecoder().decode(storage.subarray(2, end)),
  };
}

/** A sockaddr for a literal IPv4/IPv6 address, or null for a name. */
function literalAddr(
  lib: Libc,
  hostname: string,
  port: number,
): Uint8Array | null {
  const text = cString(hostname.replace(/^\[(.*)\]$/, "$1"));
  const v4 = new Uint8Array(16);
  if (lib.inet_pton(AF_INET, text, v4.subarray(4, 8)) === 1) {
    const view = new DataView(v4.buffer);
    view.setUint16(0, AF_INET, true);
    view.setUint16(2, port, false);
    return v4;
  }
  const v6 = new Uint8Array(28);
  if (lib.inet_pton(AF_INET6, text, v6.subarray(8, 24)) === 1) {
    const view = new DataView(v6.buffer);
    view.setUint16(0, AF_INET6, true);
    view.setUint16(2, port, false);
    return v6;
  }
  return null;
}

/** Resolves `hostname` with getaddrinfo (off the JS thread). */
async function resolveAddrs(
  lib: Libc,
  hostname: string,
  port: number,
  passive: boolean,
): Promise<Uint8Array[]> {
  const literal = literalAddr(lib, hostname, port);
  if (literal !== null) return [literal];
  const hints = new Uint8Array(48);
  const hintsView = new DataView(hints.buffer);
  hintsView.setInt32(0, passive ? 1 : 0, true); // AI_PASSIVE
  hintsView.setInt32(8, SOCK_STREAM, true);
  const result = new BigUint64Array(1);
  const node = cString(hostname);
  const code = await lib.getaddrinfo(
    node,
    null,
    hints,
    new Uint8Array(result.buffer),
  );
  if (code !== 0) {
    const text = Deno.UnsafePointerView.getCString(lib.gai_strerror(code)!);
    throw new Deno.errors.NotFound(
      `failed to lookup address information: ${text}`,
    );
  }
  const head = Deno.UnsafePointer.create(result[0]!);
  const addrs: Uint8Array[] = [];
  try {
    let entry = head;
    while (entry !== null) {
      const view = new Deno.UnsafePointerView(entry);
      const family = view.getInt32(4);
      const length = view.getUint32(16);
      const addr = view.getPointer(24);
      if ((family === AF_INET || family === AF_INET6) && addr !== null) {
        const bytes = new Uint8Array(
          Deno.UnsafePointerView.getArrayBuffer(addr, length).slice(0),
        );
        new DataView(bytes.buffer).setUint16(2, port, false);
        addrs.push(bytes);
      }
      entry = view.getPointer(40);
    }
  } finally {
    if (head !== null) lib.freeaddrinfo(head);
  }
  if (addrs.length === 0) {
    throw new Deno.errors.NotFound(
      `failed to lookup address information: no address for ${hostname}`,
    );
  }
  return addrs;
}

function unixAddr(path: string): Uint8Array {
  const bytes = encoder.encode(path);
  if (bytes.length > 107) {
    throw new TypeError(
      `Cannot use Unix socket path as it is longer than 107 bytes: current value is ${bytes.length} bytes`,
    );
  }
  const addr = new Uint8Array(2 + bytes.length + 1);
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
  addr.set(bytes, 2);
  return addr;
}

const nameStorage = new Uint8Array(SOCKADDR_SIZE);
const nameLength = new Uint32Array(1);
const nameLengthBytes = new Uint8Array(nameLength.buffer);

function sockName(
  lib: Libc,
  fd: number,
  peer: boolean,
): Deno.NetAddr | Deno.UnixAddr {
  nameLength[0] = SOCKADDR_SIZE;
  check(
    peer
      ? lib.getpeername(fd, nameStorage, nameLengthBytes)
      : lib.getsockname(fd, nameStorage, nameLengthBytes),
    peer ? "getpeername" : "getsockname",
  );
  return parseAddr(lib, nameStorage, nameLength[0]!);
}

/** True for 0.0.0.0 and :: (an accepted socket's address must be asked). */
function isWildcard(addr: Deno.NetAddr | Deno.UnixAddr): boolean {
  return addr.transport === "tcp" &&
    (addr.hostname === "0.0.0.0" || addr.hostname === "::");
}

const optionValue = new Int32Array(1);
const optionBytes = new Uint8Array(optionValue.buffer);

function setIntOption(
  lib: Libc,
  fd: number,
  level: number,
  name: number,
  value: number,
): void {
  optionValue[0] = value;
  check(lib.setsockopt(fd, level, name, optionBytes, 4), "setsockopt");
}

// ----------------------------------------------------------- connections

/**
 * A connected native socket: what the StreamTransport core drives, and the
 * `socket` of `getExtraInfo`.
 */
export class NativeConn implements Handle {
  readonly fd: number;
  readonly remoteAddr: Deno.NetAddr | Deno.UnixAddr;
  readonly localAddr: Deno.NetAddr | Deno.UnixAddr;
  readable = false;
  writable = true;
  hup = false;
  #lib: Libc;
  #reactor: Reactor;
  #closed = false;
  #readWaiter: PromiseWithResolvers<void> | null = null;
  #writeWaiter: PromiseWithResolvers<void> | null = null;
  #listener: ReadyListener | null = null;
  #wantRead = false;
  #wantWrite = false;

  /** Takes ownership of `fd` (connected, nonblocking). */
  constructor(
    fd: number,
    remoteAddr: Deno.NetAddr | Deno.UnixAddr,
    localAddr: Deno.NetAddr | Deno.UnixAddr,
  ) {
    this.fd = fd;
    this.remoteAddr = remoteAddr;
    this.localAddr = localAddr;
    this.#lib = libc();
    this.#reactor = getReactor();
    this.#reactor.register(this);
  }

  wake(): void {
    if (this.readable) {
      if (this.#wantRead && this.#listener !== null) {
        this.#wantRead = false;
        this.#listener[socketReadable]();
      }
      const waiter = this.#readWaiter;
      if (waiter !== null) {
        this.#readWaiter = null;
        this.#reactor.resolvedPromise();
        waiter.resolve();
      }
    }
    if (this.writable && !this.#closed) {
      if (this.#wantWrite && this.#listener !== null) {
        this.#wantWrite = false;
        this.#listener[socketWritable]();
      }
      const waiter = this.#writeWaiter;
      if (waiter !== null) {
        this.#writeWaiter = null;
        this.#reactor.resolvedPromise();
        waiter.resolve();
      }
    }
  }

  // The synchronous side (ReadyIo): what the StreamTransport core drives,
  // called from the reactor's dispatch with no promise per operation.

  /** True while a readNow() would not answer WOULD_BLOCK without trying. */
  readyToRead(): boolean {
    return this.readable || this.#closed;
  }

  /**
   * Reads into `buffer` now: the count, `null` at EOF, or -1 when nothing
   * is there (no system call is made while the socket is known drained).
   */
  readNow(buffer: Uint8Array): number | null {
    if (this.#closed) throw closed();
    const length = Math.min(buffer.length, MAX_IO);
    if (length === 0) return 0;
    if (!this.readable) return -1;
    for (let again = true;;) {
      const n = this.#lib.recv(this.fd, buffer, size(length), 0);
      const code = n < 0 ? errnoCell[0]! : 0;
      if (n > 0) {
        // A short read drained the queue: wait for the next edge rather
        // than answer EAGAIN first (unless the peer closed: no edge then).
        if (n < length && !this.hup) this.readable = false;
        return n;
      }
      if (n === 0) return null;
      if (code === EINTR) continue;
      if (code !== EAGAIN) {
        if (again && !socketErrno(code)) {
          again = false;
          continue;
        }
        throw osError(code);
      }
      this.readable = false;
      return -1;
    }
  }

  /**
   * Writes from `data` now: the count sent (may be partial), or -1 when the
   * socket buffer is full.
   */
  writeNow(data: Uint8Array): number {
    if (this.#closed) throw closed();
    const length = Math.min(data.length, MAX_IO);
    if (length === 0) return 0;
    if (!this.writable) return -1;
    for (let again = true;;) {
      const n = this.#lib.send(this.fd, data, size(length), MSG_NOSIGNAL);
      const code = n < 0 ? errnoCell[0]! : 0;
      if (n >= 0) {
        // A short send filled the socket buffer: EPOLLOUT comes when it drains.
        if (n < length) this.writable = false;
        return n;
      }
      if (code === EINTR) continue;
      if (code !== EAGAIN) {
        if (again && !socketErrno(code)) {
          again = false;
          continue;
        }
        throw osError(code);
      }
      this.writable = false;
      return -1;
    }
  }

  /** Sets who is told of readiness (a transport), or nobody. */
  listen(listener: ReadyListener | null): void {
    this.#listener = listener;
    this.#wantRead = false;
    this.#wantWrite = false;
  }

  /**
   * Asks for one readable call when the socket is next readable (from the
   * reactor's next turn if it already is); `false` cancels.
   */
  wantRead(on: boolean): void {
    this.#wantRead = on;
    if (on && this.readable) this.#reactor.defer(this);
  }

  /** As wantRead, for writability. */
  wantWrite(on: boolean): void {
    this.#wantWrite = on;
    if (on && this.writable) this.#reactor.defer(this);
  }

  // The promise side, for what reads a Deno.Conn-shaped resource (the TLS
  // tunnel of startTls, the benchmark's raw loop).

  /** Reads into `buffer`: the count, or null at EOF. */
  async read(buffer: Uint8Array): Promise<number | null> {
    for (;;) {
      const n = this.readNow(buffer);
      if (n !== -1) return n;
      this.#readWaiter ??= Promise.withResolvers();
      await this.#readWaiter.promise;
    }
  }

  /** Writes from `data`; the count sent (may be partial). */
  async write(data: Uint8Array): Promise<number> {
    for (;;) {
      const n = this.writeNow(data);
      if (n !== -1) return n;
      this.#writeWaiter ??= Promise.withResolvers();
      await this.#writeWaiter.promise;
    }
  }

  /** Shuts down the write side. */
  // deno-lint-ignore require-await -- a rejection, as Deno.Conn's
  async closeWrite(): Promise<void> {
    if (this.#closed) throw closed();
    check(this.#lib.shutdown(this.fd, SHUT_WR), "shutdown");
  }

  /** Closes the socket; a pending read or write rejects (Interrupted). */
  close(): void {
    if (this.#closed) throw closed();
    this.#closed = true;
    this.#reactor.unregister(this.fd, true);
    closeFd(this.fd);
    this.#readWaiter?.reject(interrupted());
    this.#writeWaiter?.reject(interrupted());
    this.#readWaiter = null;
    this.#writeWaiter = null;
    this.#listener = null;
  }

  /** Enables or disables Nagle's algorithm's opposite (TCP_NODELAY). */
  setNoDelay(noDelay = true): void {
    if (this.#closed) throw closed();
    setIntOption(this.#lib, this.fd, IPPROTO_TCP, TCP_NODELAY, noDelay ? 1 : 0);
  }

  /** Enables or disables SO_KEEPALIVE. */
  setKeepAlive(keepAlive = true): void {
    if (this.#closed) throw closed();
    setIntOption(
      this.#lib,
      this.fd,
      SOL_SOCKET,
      SO_KEEPALIVE,
      keepAlive ? 1 : 0,
    );
  }
}

// waiters are rejected on close: never leave those rejections unhandled.
function quiet(waiter: PromiseWithResolvers<void>): void {
  waiter.promise.catch(() => {});
}

// -------------------------------------------------------------- listener

/** A listening native socket, shaped like Deno.Listener. */
export class NativeListener implements Handle {
  readonly fd: number;
  readonly addr: Deno.NetAddr | Deno.UnixAddr;
  readable = false;
  writable = false;
  hup = false;
  #lib: Libc;
  #reactor: Reactor;
  #closed = false;
  #waiter: PromiseWithResolvers<void> | null = null;
  #wildcard: boolean;
  #storage = new Uint8Array(SOCKADDR_SIZE);
  #length = new Uint32Array(1);
  #lengthBytes = new Uint8Array(this.#length.buffer);

  /** Takes ownership of `fd` (listening, nonblocking). */
  constructor(fd: number, addr: Deno.NetAddr | Deno.UnixAddr) {
    this.fd = fd;
    this.addr = addr;
    this.#wildcard = isWildcard(addr);
    this.#lib = libc();
    this.#reactor = getReactor();
    this.#reactor.register(this);
  }

  wake(): void {
    if (this.readable && this.#waiter !== null) {
      const waiter = this.#waiter;
      this.#waiter = null;
      this.#reactor.resolvedPromise();
      waiter.resolve();
    }
  }

  /** Accepts the next connection. */
  async accept(): Promise<NativeConn> {
    const lib = this.#lib;
    for (let again = true;;) {
      if (this.#closed) throw closed();
      if (this.readable) {
        this.#length[0] = SOCKADDR_SIZE;
        const fd = lib.accept4(
          this.fd,
          this.#storage,
          this.#lengthBytes,
          SOCK_NONBLOCK | SOCK_CLOEXEC,
        );
        const code = fd < 0 ? errnoCell[0]! : 0;
        if (fd >= 0) {
          try {
            const remote = parseAddr(lib, this.#storage, this.#length[0]!);
            // A listener bound to one address shares its address object.
            const local = this.#wildcard ? sockName(lib, fd, false) : this.addr;
            return new NativeConn(fd, remote, local);
          } catch (error) {
            closeFd(fd);
            throw error;
          }
        }
        if (code === EINTR) continue;
        if (code === ECONNABORTED) throw osError(code);
        if (code !== EAGAIN) {
          if (again && !socketErrno(code)) {
            again = false;
            continue;
          }
          throw osError(code, "accept4");
        }
        this.readable = false;
      }
      if (this.#waiter === null) {
        this.#waiter = Promise.withResolvers();
        quiet(this.#waiter);
      }
      await this.#waiter.promise;
    }
  }

  /** Stops listening; a pending accept rejects (BadResource). */
  close(): void {
    if (this.#closed) throw closed();
    this.#closed = true;
    this.#reactor.unregister(this.fd, true);
    closeFd(this.fd);
    this.#waiter?.reject(closed());
    this.#waiter = null;
  }

  [Symbol.dispose](): void {
    if (!this.#closed) this.close();
  }
}

// ------------------------------------------------------------ entry points

/** Where a native listener or connection goes. */
export type NativeAddress =
  | { transport: "tcp"; hostname: string; port: number; reusePort?: boolean }
  | { transport: "unix"; path: string };

function openSocket(lib: Libc, family: number): number {
  return check(
    lib.socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0),
    "socket",
  );
}

/** Listens on `address` (SO_REUSEADDR for TCP, as Deno.listen). */
export async function listenNative(
  address: NativeAddress,
): Promise<NativeListener> {
  const lib = libc();
  const addrs = address.transport === "unix"
    ? [unixAddr(address.path)]
    : await resolveAddrs(lib, address.hostname, address.port, true);
  let lastError: unknown;
  for (const addr of addrs) {
    const family = new DataView(addr.buffer).getUint16(0, true);
    const fd = openSocket(lib, family);
    try {
      if (family !== AF_UNIX) {
        setIntOption(lib, fd, SOL_SOCKET, SO_REUSEADDR, 1);
        if (address.transport === "tcp" && address.reusePort === true) {
          setIntOption(lib, fd, SOL_SOCKET, SO_REUSEPORT, 1);
        }
      }
      check(lib.bind(fd, addr, addr.length), "bind");
      check(lib.listen(fd, LISTEN_BACKLOG), "listen");
      const bound = family === AF_UNIX
        ? {
          transport: "unix" as const,
          path: (address as { path: string }).path,
        }
        : sockName(lib, fd, false);
      return new NativeListener(fd, bound);
    } catch (error) {
      closeFd(fd);
      lastError = error;
    }
  }
  throw lastError;
}

/** Connects to `address`; rejects (and closes the socket) on abort. */
export async function connectNative(
  address: NativeAddress,
  signal?: AbortSignal,
): Promise<NativeConn> {
  const lib = libc();
  const addrs = address.transport === "unix"
    ? [unixAddr(address.path)]
    : await resolveAddrs(lib, address.hostname, address.port, false);
  signal?.throwIfAborted();
  let lastError: unknown;
  for (const addr of addrs) {
    const family = new DataView(addr.buffer).getUint16(0, true);
    const fd = openSocket(lib, family);
    try {
      await connectFd(lib, fd, addr, signal);
      const remote = family === AF_UNIX
        ? {
          transport: "unix" as const,
          path: (address as { path: string }).path,
        }
        : sockName(lib, fd, true);
      const local = sockName(lib, fd, false);
      return new NativeConn(fd, remote, local);
    } catch (error) {
      closeFd(fd);
      lastError = error;
      if (signal?.aborted) throw error;
    }
  }
  throw lastError;
}

/** A nonblocking connect: waits for writability, then reads SO_ERROR. */
async function connectFd(
  lib: Libc,
  fd: number,
  addr: Uint8Array,
  signal: AbortSignal | undefined,
): Promise<void> {
  for (let again = true;;) {
    const result = lib.connect(fd, addr, addr.length);
    const code = result < 0 ? errnoCell[0]! : 0;
    if (result === 0) return;
    if (code === EINTR) continue;
    // (EALREADY: the first call was under way, its errno not read right.)
    if (code === EINPROGRESS || code === EAGAIN || code === EALREADY) break;
    if (again && !socketErrno(code)) {
      again = false;
      continue;
    }
    throw osError(code);
  }
  // Wait for the socket to become writable through the reactor.
  const ready = Promise.withResolvers<void>();
  const handle: Handle = {
    fd,
    readable: false,
    writable: false,
    hup: false,
    wake() {
      if (this.writable) {
        reactor.resolvedPromise();
        ready.resolve();
      }
    },
  };
  const reactor = getReactor();
  reactor.register(handle);
  const onAbort = () => ready.reject(signal!.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    await ready.promise;
  } finally {
    signal?.removeEventListener("abort", onAbort);
    reactor.unregister(fd);
  }
  const value = new Int32Array(1);
  const length = new Uint32Array([4]);
  check(
    lib.getsockopt(
      fd,
      SOL_SOCKET,
      SO_ERROR,
      new Uint8Array(value.buffer),
      new Uint8Array(length.buffer),
    ),
    "getsockopt",
  );
  if (value[0] !== 0) throw osError(value[0]!);
}

/** Opens the reactor's own descriptors now (tests count descriptors). */
export function openReactor(): void {
  getReactor().open();
}

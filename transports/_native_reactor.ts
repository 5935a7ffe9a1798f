// Copyright 2026 the denio authors. MIT license.
// The native reactor: libc over FFI (socket, accept4, recv, send, epoll) and
// one readiness loop per process (per worker). Loaded only when a caller
// picks `backend: "native"` (or "auto" where FFI is permitted); nothing here
// runs at import time.
//
// The reactor's own two descriptors (epoll and an eventfd) are opened on
// first use and kept for the life of the process or worker, as Deno's own
// runtime keeps its epoll instance: they hold no op open, so they never keep
// the process alive. Every socket descriptor is closed by its owner.
//
// The loop: a synchronous epoll wait of at most SHORT_WAIT_NS; while events
// keep coming it dispatches them and spins again, for at most TURN_MS in a
// row before it gives Deno's event loop a turn (timers, signals, other ops)
// with a nonblocking epoll_wait of timeout 0. When nothing is ready it waits
// with a
// `nonblocking: true` epoll_wait of at most WAIT_TIMEOUT ms on Deno's
// blocking pool, which leaves the JS thread free. The loop runs only while a
// socket is registered; when the last one goes, a wait in flight is woken
// through the eventfd, so no op is left pending and the process can exit.
//
// Every socket is registered once, edge-triggered (EPOLLIN | EPOLLOUT |
// EPOLLRDHUP | EPOLLET): a handle remembers "readable"/"writable" until a
// recv/send/accept answers EAGAIN, or a recv/send moves fewer bytes than
// asked (the queue was drained or the buffer filled: the next byte or the
// freed space brings a new edge, as tokio assumes), and no buffer is
// involved until the kernel has bytes.

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getpeername: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  setsockopt: {
    parameters: ["i32", "i32", "i32", "buffer", "u32"],
    result: "i32",
  },
  getsockopt: {
    parameters: ["i32", "i32", "i32", "buffer", "buffer"],
    result: "i32",
  },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  // ssize_t results read as i32: every length passed is capped at MAX_IO.
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  // A short wait on the JS thread (nanosecond timeout; Linux 5.11, glibc
  // 2.35): absent from older systems, where the loop goes without it.
  epoll_pwait2: {
    parameters: ["i32", "buffer", "i32", "buffer", "pointer"],
    result: "i32",
    optional: true,
  },
  epoll_wait_async: {
    name: "epoll_wait",
    parameters: ["i32", "buffer", "i32", "i32"],
    result: "i32",
    nonblocking: true,
  },
  inet_pton: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  inet_ntop: {
    parameters: ["i32", "buffer", "buffer", "u32"],
    result: "pointer",
  },
  getaddrinfo: {
    parameters: ["buffer", "pointer", "buffer", "buffer"],
    result: "i32",
    nonblocking: true,
  },
  freeaddrinfo: { parameters: ["pointer"], result: "void" },
  gai_strerror: { parameters: ["i32"], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

/** The bound libc functions. */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

// Linux constants (the same on x86_64 and aarch64).
export const AF_UNIX = 1;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_STREAM = 1;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_REUSEADDR = 2;
export const SO_ERROR = 4;
export const SO_KEEPALIVE = 9;
export const SO_REUSEPORT = 15;
export const IPPROTO_TCP = 6;
export const TCP_NODELAY = 1;
export const SHUT_WR = 1;
export const MSG_NOSIGNAL = 0x4000;
export const EINTR = 4;
export const EAGAIN = 11;
export const EINPROGRESS = 115;
export const ECONNABORTED = 103;
export const EALREADY = 114;
const EBADF = 9;
const EFAULT = 14;
const EINVAL = 22;

const EPOLL_CLOEXEC = 0o2000000;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLLIN = 0x001;
const EPOLLOUT = 0x004;
const EPOLLERR = 0x008;
const EPOLLHUP = 0x010;
const EPOLLRDHUP = 0x2000;
const EPOLLET = 1 << 31;
const EFD_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;

/** Largest count handed to one recv or send (its result is read as i32). */
export const MAX_IO = 1 << 30;
/** Ready events taken per epoll_wait. */
const MAX_EVENTS = 256;
/**
 * How long the loop may keep the JS thread, in ms, before Deno's event loop
 * gets a turn. A turn costs a trip through
 * Deno's blocking pool (two thread switches, some 10-20 µs here): after 16
 * polls it came every few dozen round trips of a busy server and cost about
 * 0.5 µs per round trip; a turn every 2 ms delays timers and other ops by at
 * most that.
 */
const TURN_MS = 2;
/** Longest nonblocking wait, in ms. */
const WAIT_TIMEOUT = 1000;
/**
 * How long the loop may sleep on the JS thread for the next event before it
 * hands the wait to Deno's blocking pool, in ns. A busy server's next event
 * is usually microseconds away, and the pool's wait costs two thread
 * switches; this bounds what the wait can delay Deno's own work (timers,
 * other ops) to well under a millisecond.
 */
const SHORT_WAIT_NS = 50_000;

/** Why the native backend cannot run here, or null when it can. */
export function unsupportedReason(): string | null {
  if (Deno.build.os !== "linux") {
    return `it runs on Linux only: current value is ${Deno.build.os}`;
  }
  if (Deno.build.arch !== "x86_64" && Deno.build.arch !== "aarch64") {
    return `it runs on x86_64 and aarch64 only: current value is ${Deno.build.arch}`;
  }
  return null;
}

let lib: Deno.DynamicLibrary<typeof SYMBOLS> | null = null;
/**
 * The JS thread's errno, as memory (its thread-local slot lives as long as
 * the thread, and every synchronous call runs on it; set by `libc()`). A
 * load, where `UnsafePointerView.getInt32` is an op call (about 190 ns).
 *
 * Read it as `errnoCell[0]` in the statement right after the failed call,
 * never through a function: the entry of a JavaScript function is where V8
 * may service an interrupt on this thread, and that work can leave another
 * errno there (a million `close(-1)` calls each followed by `errno()` read
 * ENOENT once in 2 of 15 runs, during tier-up; read inline, never). What a
 * socket call cannot give is asked again: see {@linkcode socketErrno}.
 */
export let errnoCell: Int32Array = new Int32Array(1);

/** Opens libc.so.6 on first use. */
export function libc(): Libc {
  if (lib === null) {
    lib = Deno.dlopen("libc.so.6", SYMBOLS);
    errnoCell = new Int32Array(
      Deno.UnsafePointerView.getArrayBuffer(
        lib.symbols.__errno_location()!,
        4,
      ),
    );
  }
  return lib.symbols;
}

/**
 * A size_t argument, as the BigInt Deno's fast call for a "usize" parameter
 * checks for. A number is taken too, but only by the slow path: measured,
 * 480 ns per recv() against 190 ns, and every optimized caller deoptimized
 * ("not a BigInt") each time it met one.
 */
export function size(n: number): bigint {
  return BigInt(n);
}

/**
 * The calling thread's errno, for calls off the hot path (see
 * {@linkcode errnoCell} for why the hot path reads it inline).
 */
export function errno(): number {
  return errnoCell[0]!;
}

/**
 * The errno values a socket call (`recv`, `send`, `accept4`, `connect`,
 * `epoll_wait`) can fail with, by their manual pages and the socket errors
 * TCP reports through them. Anything else (ENOENT, say) was not the call's:
 * other work on the thread left it between the call and the read, and the
 * caller makes the call once more rather than fail the connection with it.
 */
const SOCKET_ERRNOS = new Set([
  1, // EPERM
  4, // EINTR
  5, // EIO
  9, // EBADF
  11, // EAGAIN
  12, // ENOMEM
  13, // EACCES
  14, // EFAULT
  22, // EINVAL
  23, // ENFILE
  24, // EMFILE
  32, // EPIPE
  71, // EPROTO
  88, // ENOTSOCK
  89, // EDESTADDRREQ
  90, // EMSGSIZE
  92, // ENOPROTOOPT
  95, // EOPNOTSUPP
  97, // EAFNOSUPPORT
  98, // EADDRINUSE
  99, // EADDRNOTAVAIL
  100, // ENETDOWN
  101, // ENETUNREACH
  103, // ECONNABORTED
  104, // ECONNRESET
  105, // ENOBUFS
  106, // EISCONN
  107, // ENOTCONN
  108, // ESHUTDOWN
  110, // ETIMEDOUT
  111, // ECONNREFUSED
  112, // EHOSTDOWN
  113, // EHOSTUNREACH
  114, // EALREADY
  115, // EINPROGRESS
]);

/** True when `code` is one a socket call can give (see SOCKET_ERRNOS). */
export function socketErrno(code: number): boolean {
  return SOCKET_ERRNOS.has(code);
}

/** strerror's text for each code met (constant: denio never sets a locale). */
const errorTexts = new Map<number, string>();

/** An Error of Deno's class for `code`, worded as Rust's io::Error. */
export function osError(code: number, what?: string): Error {
  let text = errorTexts.get(code);
  if (text === undefined) {
    const ptr = libc().strerror(code);
    text = ptr === null
      ? `OS error ${code}`
      : Deno.UnsafePointerView.getCString(ptr);
    errorTexts.set(code, text);
  }
  const message = `${text} (os error ${code})${what ? `: ${what}` : ""}`;
  const E = Deno.errors;
  if (code === ECONNRESET) return peerError(E.ConnectionReset, message);
  if (code === EPIPE) return peerError(E.BrokenPipe, message);
  switch (code) {
    case 1:
    case 13:
      return new E.PermissionDenied(message);
    case 2:
      return new E.NotFound(message);
    case 4:
      return new E.Interrupted(message);
    case 11:
      return new E.WouldBlock(message);
    case 98:
      return new E.AddrInUse(message);
    case 99:
      return new E.AddrNotAvailable(message);
    case 103:
      return new E.ConnectionAborted(message);
    case 107:
      return new E.NotConnected(message);
    case 110:
      return new E.TimedOut(message);
    case 111:
      return new E.ConnectionRefused(message);
    default:
      return new Error(message);
  }
}

const ECONNRESET = 104;
const EPIPE = 32;

/** For each message: the prototype its peer errors share (see peerError). */
const peerErrorPrototypes = new Map<string, Error>();

/**
 * The error of a peer that reset or closed its side, which a busy server
 * meets on every such connection, made without the runtime's Error
 * constructor: measured here, `new Deno.errors.ConnectionReset()` costs 9 µs
 * (4 µs with no stack frames at all), over a tenth of a whole accept, echo
 * and close; this costs under 0.4 µs. The object is what a native error made
 * with `Error.stackTraceLimit = 0` is: an instance of `type` (and of Error)
 * with Deno's `name` and `code` of its own, and `message` and a one-line
 * `stack` (writable, not enumerable) from a prototype shared by the errors
 * of one message, made once.
 */
function peerError(
  type: typeof Deno.errors.ConnectionReset,
  message: string,
): Error {
  let prototype = peerErrorPrototypes.get(message);
  if (prototype === undefined) {
    prototype = Object.create(type.prototype, {
      message: { value: message, writable: true, configurable: true },
      stack: {
        value: `${type.name}: ${message}`,
        writable: true,
        configurable: true,
      },
    }) as Error;
    peerErrorPrototypes.set(message, prototype);
  }
  const error = Object.create(prototype) as Error & { code: string };
  error.name = type.name;
  error.code = type === Deno.errors.BrokenPipe ? "EPIPE" : "ECONNRESET";
  return error;
}

/** Throws the errno of a failed call unless `result` is non-negative. */
export function check(result: number, what?: string): number {
  if (result < 0) throw osError(errno(), what);
  return result;
}

/** Closes a descriptor, retrying nothing (Linux releases it even on EINTR). */
export function closeFd(fd: number): void {
  libc().close(fd);
}

/**
 * One registered descriptor. The reactor sets `readable`/`writable` on an
 * edge and calls `wake`; the owner clears them when a call answers EAGAIN.
 */
export interface Handle {
  readonly fd: number;
  readable: boolean;
  writable: boolean;
  /**
   * Set (for good) once the peer closed or reset its side: readable then
   * stays true, since no further edge will come.
   */
  hup: boolean;
  /** Called after an event set a flag (from the reactor loop). */
  wake(): void;
}

const EVENT_SIZE = Deno.build.arch === "x86_64" ? 12 : 16;
const DATA_OFFSET = Deno.build.arch === "x86_64" ? 4 : 8;

class Reactor {
  #lib: Libc;
  #epfd = -1;
  #evfd = -1;
  #handles = new Map<number, Handle>();
  #events = new Uint8Array(MAX_EVENTS * EVENT_SIZE);
  #view = new DataView(this.#events.buffer);
  #ctl = new Uint8Array(EVENT_SIZE);
  #ctlView = new DataView(this.#ctl.buffer);
  #running = false;
  #waiting = false;
  #counter = new Uint8Array(8);
  #shortWait = new Uint8Array(
    new BigInt64Array([0n, BigInt(SHORT_WAIT_NS)]).buffer,
  );
  /** Handles to wake on the next turn without an edge (see defer). */
  #deferred: Handle[] = [];
  /** Microtask hops before the next poll (see SETTLE_HOPS). */
  #hops = SYNC_SETTLE_HOPS;

  constructor(symbols: Libc) {
    this.#lib = symbols;
  }

  /** Descriptors the reactor itself holds open (epoll and eventfd). */
  get ownFds(): number[] {
    return this.#epfd < 0 ? [] : [this.#epfd, this.#evfd];
  }

  register(handle: Handle): void {
    if (this.#epfd < 0) this.#open();
    this.#ctlView.setUint32(
      0,
      (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) >>> 0,
      true,
    );
    this.#ctlView.setInt32(DATA_OFFSET, handle.fd, true);
    check(
      this.#lib.epoll_ctl(this.#epfd, EPOLL_CTL_ADD, handle.fd, this.#ctl),
      "epoll_ctl",
    );
    this.#handles.set(handle.fd, handle);
    if (!this.#running) {
      this.#running = true;
      this.#loop().catch((error) => {
        // A failing epoll_wait: nothing can be polled any more; every handle
        // is woken so its pending operation sees the error state.
        this.#running = false;
        console.error("denio: native reactor stopped:", error);
      });
    }
  }

  /**
   * Wakes `handle` on the reactor's next turn even if no edge comes: an
   * owner that stopped reading with bytes still queued (its share of one
   * turn is used up) or that asks while the socket is already ready.
   */
  defer(handle: Handle): void {
    this.#deferred.push(handle);
    // A wait in flight returns now, so the handle does not wait for an edge.
    if (this.#deferred.length === 1) this.#idle();
  }

  /**
   * A wake-up resolved a promise: the next settle waits out a chain of
   * promise steps (see SETTLE_HOPS).
   */
  resolvedPromise(): void {
    this.#hops = SETTLE_HOPS;
  }

  /** Waits out what the last dispatch started (microtasks), then resets. */
  #settle(): Promise<void> {
    const hops = this.#hops;
    this.#hops = SYNC_SETTLE_HOPS;
    return settle(hops);
  }

  /**
   * Forgets `fd`. With `closing`, its owner closes it right after, which
   * takes it out of the epoll set (no descriptor is ever duplicated), so no
   * EPOLL_CTL_DEL is made; a batch already taken may still name the number,
   * and a handle registered under it again then sees one spurious wake-up
   * (its next call answers EAGAIN).
   */
  unregister(fd: number, closing = false): void {
    if (!this.#handles.delete(fd)) return;
    if (!closing) this.#lib.epoll_ctl(this.#epfd, EPOLL_CTL_DEL, fd, this.#ctl);
    if (this.#handles.size === 0) this.#idle();
  }

  #open(): void {
    const epfd = check(this.#lib.epoll_create1(EPOLL_CLOEXEC), "epoll_create1");
    const evfd = this.#lib.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (evfd < 0) {
      const error = osError(errno(), "eventfd");
      closeFd(epfd);
      throw error;
    }
    this.#ctlView.setUint32(0, EPOLLIN, true);
    this.#ctlView.setInt32(DATA_OFFSET, evfd, true);
    if (this.#lib.epoll_ctl(epfd, EPOLL_CTL_ADD, evfd, this.#ctl) < 0) {
      const error = osError(errno(), "epoll_ctl");
      closeFd(evfd);
      closeFd(epfd);
      throw error;
    }
    this.#epfd = epfd;
    this.#evfd = evfd;
  }

  /**
   * Nothing registered (or a deferred wake): a wait in flight returns now,
   * so no op stays pending.
   */
  #idle(): void {
    if (!this.#waiting) return;
    this.#counter.fill(0);
    this.#counter[0] = 1;
    this.#lib.write(this.#evfd, this.#counter, size(8));
  }

  /** Opens the epoll and eventfd descriptors now (idempotent). */
  open(): void {
    if (this.#epfd < 0) this.#open();
  }

  async #loop(): Promise<void> {
    const lib = this.#lib;
    let turnStart = performance.now();
    try {
      while (this.#handles.size > 0) {
        const turnOver = performance.now() - turnStart >= TURN_MS;
        // A short sleep when it may (returns at once if something is
        // ready), else a poll.
        let n = !turnOver && this.#deferred.length === 0
          ? this.#waitShortly()
          : lib.epoll_wait(this.#epfd, this.#events, MAX_EVENTS, 0);
        const code = n < 0 ? errnoCell[0]! : 0;
        if (n < 0) {
          // EBADF, EFAULT and EINVAL are bugs; anything else is polled again.
          if (code === EBADF || code === EFAULT || code === EINVAL) {
            throw osError(code, "epoll_wait");
          }
          n = 0;
        }
        // Deferred wakes count as work done: the loop does not sleep on them.
        const work = n + (this.#deferred.length > 0 ? this.#wakeDeferred() : 0);
        if (work > 0 && !turnOver) {
          if (n > 0) this.#dispatch(n);
          // Let the woken reads and writes run (microtasks) before polling again.
          await this.#settle();
          continue;
        }
        if (n > 0) this.#dispatch(n);
        if (this.#handles.size === 0) break;
        // A turn for Deno's event loop: wait off the JS thread, briefly if
        // work was just done, else until something is ready.
        this.#waiting = true;
        let m: number;
        try {
          m = await lib.epoll_wait_async(
            this.#epfd,
            this.#events,
            MAX_EVENTS,
            work > 0 || this.#deferred.length > 0 ? 0 : WAIT_TIMEOUT,
          );
        } finally {
          this.#waiting = false;
        }
        // errno of a nonblocking call lives on another thread: a failure
        // here is EINTR; the loop just polls again.
        if (m > 0) this.#dispatch(m);
        await this.#settle();
        turnStart = performance.now();
      }
    } finally {
      this.#running = false;
    }
    // A handle registered while the loop was leaving.
    if (this.#handles.size > 0 && !this.#running) {
      this.#running = true;
      await this.#loop();
    }
  }

  /**
   * Waits up to SHORT_WAIT_NS for an event (epoll_pwait2), or polls where
   * that call is absent: the count, or -1 with errno.
   */
  #waitShortly(): number {
    const wait = this.#lib.epoll_pwait2;
    if (wait === null) {
      return this.#lib.epoll_wait(this.#epfd, this.#events, MAX_EVENTS, 0);
    }
    return wait(this.#epfd, this.#events, MAX_EVENTS, this.#shortWait, null);
  }

  /** Wakes the deferred handles; returns how many there were. */
  #wakeDeferred(): number {
    const deferred = this.#deferred;
    this.#deferred = [];
    for (const handle of deferred) wakeHandle(handle);
    return deferred.length;
  }

  #dispatch(n: number): void {
    const view = this.#view;
    const handles = this.#handles;
    for (let i = 0; i < n; i++) {
      const base = i * EVENT_SIZE;
      const events = view.getUint32(base, true);
      const fd = view.getInt32(base + DATA_OFFSET, true);
      if (fd === this.#evfd) {
        this.#lib.read(this.#evfd, this.#counter, size(8));
        continue;
      }
      const handle = handles.get(fd);
      if (handle === undefined) continue;
      if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        handle.readable = true;
      }
      if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) handle.hup = true;
      if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) handle.writable = true;
      wakeHandle(handle);
    }
  }
}

/**
 * Calls `handle.wake()`. What it runs (a transport's reads, its protocol's
 * callbacks) reports its own errors; one that escapes is a bug in denio,
 * printed rather than allowed to stop every other connection's reactor.
 */
function wakeHandle(handle: Handle): void {
  try {
    handle.wake();
  } catch (error) {
    console.error("denio: native reactor: a wake-up failed:", error);
  }
}

/**
 * Microtask hops taken after a dispatch before polling again, so the reads
 * and writes it woke have run. A macrotask would be exact but costs a timer
 * turn (over 1 ms in Deno); polling a little early only costs a syscall, or
 * a short wait on the JS thread before what was left runs. A dispatch that
 * resolved a promise (an accept, or a read or write of the promise side: a
 * TLS tunnel, a raw loop) waits out a chain of a few promise steps each:
 * read, callback, write, send. One that only drove transports
 * synchronously needs just the hops of their queued flush and callSoon
 * callbacks; each hop costs about 60 ns.
 */
const SETTLE_HOPS = 24;
const SYNC_SETTLE_HOPS = 6;

async function settle(hops: number): Promise<void> {
  for (let i = 0; i < hops; i++) await null;
}

let reactor: Reactor | null = null;

/** The process's (worker's) reactor, made on first use. */
export function getReactor(): Reactor {
  reactor ??= new Reactor(libc());
  return reactor;
}

/** Descriptors the reactor holds for itself (for tests). */
export function reactorFds(): number[] {
  return reactor?.ownFds ?? [];
}

export type { Reactor };

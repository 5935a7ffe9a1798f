// Copyright 2026 the denio authors. MIT license.
/**
 * {@linkcode createDatagramEndpoint}: UDP and Unix datagram endpoints,
 * asyncio's `loop.create_datagram_endpoint()` and its datagram transport.
 *
 * Two socket backends sit behind one transport class: `Deno.listenDatagram`
 * (UDP and Unix datagrams) when the runtime has it, which takes the `net`
 * unstable flag (`--unstable-net`, or `"unstable": ["net"]` in deno.json),
 * and otherwise `node:dgram` (UDP only, no flag needed, loaded on first use).
 *
 * Unix datagrams work around a limit of Deno 2.9: a pending receive holds
 * the socket, so a send must first wake it (see `_datagram_io.ts`); this
 * costs one extra small datagram to the endpoint itself per send.
 *
 * @module
 */

import type {
  BaseProtocol,
  DatagramProtocol,
  DatagramTransport,
} from "../mod.ts";
import {
  callSoon,
  invokeCallback,
  invokeConnectionLost,
  toError,
} from "./_call_soon.ts";
import {
  type DatagramBackend,
  type DatagramKind,
  groupKey,
  hasListenDatagram,
  ipLiteral,
  openDatagramIo,
  removeSocketFile,
  type ResolvedHost,
  resolveHost,
} from "./_datagram_io.ts";
import { FlowControl, type WriteBufferLimits } from "./_flow_control.ts";
import { makeProtocol } from "./_net.ts";
import {
  assertBytes,
  assertFactory,
  assertOptions,
  assertPort,
  assertSignal,
  assertString,
  checkProtocol,
  describe,
} from "./_validate.ts";
import { callExceptionHandler } from "./exception_handler.ts";

/** A host and port of a UDP endpoint. */
export interface DatagramAddress {
  /** A host name or IP address. @default {"0.0.0.0" (local), "127.0.0.1" (remote)} */
  hostname?: string;
  /** The port; 0 picks a free one (local only). @default {0} */
  port?: number;
}

/** Where and how {@linkcode createDatagramEndpoint} opens its socket. */
export interface DatagramOptions {
  /**
   * The local address to bind (UDP). Without it the socket binds
   * `0.0.0.0:0`, or, with `remoteAddr`, the wildcard address of the remote
   * address's family on a free port.
   * @default {{ hostname: "0.0.0.0", port: 0 }}
   */
  localAddr?: DatagramAddress;
  /**
   * The peer (UDP), asyncio's `remote_addr`: `sendto()` without an address
   * goes there, any other address is refused (RangeError), and datagrams
   * from anyone else are dropped. A host name is resolved once, here, and
   * `peername` is the resolved address.
   */
  remoteAddr?: DatagramAddress;
  /** `"udp"` or `"unixpacket"` (a Unix datagram socket). @default {"udp"} */
  transport?: "udp" | "unixpacket";
  /**
   * The socket path to bind (unixpacket). A stale socket file there is
   * replaced, and the file is removed again when the endpoint closes.
   * Without it the socket is unbound: it can send but not receive.
   */
  path?: string;
  /**
   * The peer's socket path (unixpacket): what `remoteAddr` is for UDP (the
   * default destination and the only sender heard).
   */
  remotePath?: string;
  /**
   * Allows sending to broadcast addresses (SO_BROADCAST), asyncio's
   * `allow_broadcast`. `Deno.listenDatagram` sets SO_BROADCAST on every UDP
   * socket and offers no way to clear it, so with that backend `false` does
   * not forbid broadcasts.
   * @default {false}
   */
  broadcast?: boolean;
  /**
   * Sets SO_REUSEPORT, asyncio's `reuse_port`. Neither backend can set it
   * in Deno 2.9 (`Deno.listenDatagram` has no such option for UDP, and
   * Deno's `node:dgram` ignores `reusePort`), so `true` throws
   * `Deno.errors.NotSupported` rather than binding without it. There is no
   * `reuseAddress`: asyncio refuses `reuse_address` for datagram endpoints.
   * @default {false}
   */
  reusePort?: boolean;
  /** Aborts the creation of the endpoint (not the endpoint once made). */
  signal?: AbortSignal;
}

/** Options of the {@linkcode DatagramSocketTransport} constructor. */
export interface DatagramTransportOptions {
  /** `"udp"` or `"unixpacket"`: the address kind `sendto()` accepts. @default {"udp"} */
  kind?: "udp" | "unixpacket";
  /** The fixed peer: the default destination and the only accepted sender. */
  remoteAddr?: Deno.Addr;
  /** What `getExtraInfo` answers, in addition to `sockname` and `socket`. */
  extra?: Record<string, unknown>;
  /** Called once, right after `connectionMade` returned (or threw). */
  onMade?: () => void;
  /** A Unix socket file to remove once the socket is closed. */
  socketFile?: string;
}

/**
 * The small I/O adapter {@linkcode DatagramSocketTransport} drives; one
 * receive and one send are in flight at a time.
 */
export interface DatagramSocketIo {
  /** The socket's own address. */
  readonly localAddr: Deno.Addr;
  /** The underlying socket, answered for `getExtraInfo("socket")`. */
  readonly socket: unknown;
  /** Resolves to the next datagram (the caller's to keep) and its sender. */
  receive(): Promise<[Uint8Array, Deno.Addr]>;
  /** Resolves once the datagram is handed to the OS; rejects on a send error. */
  send(data: Uint8Array, addr: Deno.Addr): Promise<void>;
  /** Releases the socket; a pending receive then rejects. */
  close(): void;
  /** The multicast controls; absent where the socket has none (Unix). */
  readonly multicast?: DatagramMulticastIo;
}

/**
 * The multicast part of a {@linkcode DatagramSocketIo}; arguments are
 * already checked by the transport.
 */
export interface DatagramMulticastIo {
  /** Joins `group` on the interface with address `iface` (IPv4). */
  join(
    group: { address: string; family: 4 | 6 },
    iface: string | undefined,
  ): Promise<void>;
  /** Leaves a group joined with the same arguments. */
  leave(
    group: { address: string; family: 4 | 6 },
    iface: string | undefined,
  ): Promise<void>;
  /** Sets IP_MULTICAST_LOOP / IPV6_MULTICAST_LOOP. */
  setLoopback(flag: boolean): Promise<void>;
  /** Sets IP_MULTICAST_TTL. */
  setTTL(ttl: number): Promise<void>;
}

type State =
  | { kind: "starting" }
  | { kind: "open" }
  | { kind: "closing" } // close() called: no more receives, flushing sends
  | { kind: "lost"; error: Error | null } // connectionLost is queued
  | { kind: "closed" };

interface Queued {
  data: Uint8Array;
  addr: Deno.Addr;
}

const SEND_ACTION = "send datagram";
const LOST_WRITE_WARNING_THRESHOLD = 5;
/** Receive errors in a row after which the socket is taken as broken. */
const MAX_RECEIVE_ERRORS = 64;

/**
 * The {@linkcode DatagramTransport} of {@linkcode createDatagramEndpoint}:
 * asyncio's `_SelectorDatagramTransport` over a
 * {@linkcode DatagramSocketIo} adapter (either backend).
 *
 * Callback order: `connectionMade [datagramReceived | errorReceived]*
 * connectionLost`, plus `pauseWriting`/`resumeWriting` from inside `sendto()`
 * and as the send queue drains. A send or receive error goes to
 * `errorReceived` and the endpoint stays open, as in asyncio.
 */
export class DatagramSocketTransport implements DatagramTransport {
  #io: DatagramSocketIo;
  #protocol: BaseProtocol;
  #state: State = { kind: "starting" };
  #kind: DatagramKind;
  #remote: Deno.Addr | undefined;
  #extra: Record<string, unknown>;
  #options: DatagramTransportOptions;
  #onCallbackError: (name: string, error: unknown) => void;
  #receiving: Promise<void> = Promise.resolve();
  #groups = new Set<string>();

  // Sending.
  #queue: Queued[] = [];
  #head = 0;
  #bufferSize = 0;
  #flushing = false;
  #flow = new FlowControl();
  #lostWrites = 0;

  /**
   * Wraps `io` and schedules `protocol.connectionMade(this)`. Use
   * {@linkcode createDatagramEndpoint} rather than this.
   *
   * @param io The socket adapter.
   * @param protocol The protocol that receives the callbacks.
   * @param options The peer, extra info and lifecycle hooks.
   */
  constructor(
    io: DatagramSocketIo,
    protocol: BaseProtocol,
    options: DatagramTransportOptions = {},
  ) {
    this.#io = io;
    this.#protocol = protocol;
    this.#kind = options.kind ?? "udp";
    this.#remote = options.remoteAddr;
    this.#options = options;
    this.#extra = {
      sockname: io.localAddr,
      ...(options.remoteAddr !== undefined
        ? { peername: options.remoteAddr }
        : {}),
      socket: io.socket,
      ...options.extra,
    };
    this.#onCallbackError = (name, error) => this.#callbackFailed(name, error);
    callSoon(() => this.#start());
  }

  // ---------------------------------------------------------------- base

  /**
   * Returns transport information: `sockname`, `peername` (with a remote
   * address), `socket` (the `Deno.DatagramConn` or node:dgram `Socket`);
   * `defaultValue` for an unknown name.
   *
   * @param name The key.
   * @param defaultValue What to return for an unknown key.
   * @returns The value.
   */
  getExtraInfo(name: string, defaultValue?: unknown): unknown {
    return Object.hasOwn(this.#extra, name) ? this.#extra[name] : defaultValue;
  }

  /**
   * True once `close()` or `abort()` was called or the endpoint was lost.
   *
   * @returns Whether the endpoint is closing or closed.
   */
  isClosing(): boolean {
    return this.#state.kind !== "starting" && this.#state.kind !== "open";
  }

  /**
   * Closes the endpoint: receiving stops at once, queued datagrams are still
   * sent, then `connectionLost(null)` is called. Idempotent.
   */
  close(): void {
    if (this.isClosing()) return;
    this.#state = { kind: "closing" };
    if (!this.#flushing) this.#forceClose(null);
  }

  /**
   * Closes at once: queued datagrams are dropped and `connectionLost(null)`
   * follows from a queued microtask. Idempotent.
   */
  abort(): void {
    this.#forceClose(null);
  }

  /**
   * Replaces the protocol that receives the callbacks.
   *
   * @param protocol The new protocol.
   * @throws {TypeError} If `protocol` is not an object.
   */
  setProtocol(protocol: BaseProtocol): void {
    this.#protocol = checkProtocol(protocol);
  }

  /**
   * Returns the current protocol.
   *
   * @returns The protocol.
   */
  getProtocol(): BaseProtocol {
    return this.#protocol;
  }

  // ---------------------------------------------------------------- send

  /**
   * Queues one datagram for `addr`, or for the remote address when the
   * endpoint has one. Empty datagrams are sent too (asyncio 3.13). The
   * transport keeps a reference to `data` until it is sent: do not modify it
   * afterwards. A send that fails goes to `errorReceived`; the endpoint stays
   * open.
   *
   * After `close()`, `abort()` or a fatal error the datagram is dropped
   * without an error, as asyncio does for a lost endpoint (a warning is
   * printed once after repeated sends).
   *
   * @param data The datagram.
   * @param addr The destination: a `Deno.NetAddr` with transport `"udp"`,
   * or a `Deno.UnixAddr` with transport `"unixpacket"`. With a remote
   * address it may be left out, and must be that address if given.
   * @throws {TypeError} If `data` is not a Uint8Array, `addr` is malformed,
   * or `addr` is missing on an endpoint without a remote address.
   * @throws {RangeError} If `addr` has a port out of range, or is not the
   * remote address of an endpoint that has one (asyncio's ValueError).
   */
  sendto(data: Uint8Array, addr?: Deno.Addr): void {
    assertBytes(data, SEND_ACTION);
    const target = this.#target(addr);
    if (this.isClosing()) {
      this.#droppedWrite();
      return;
    }
    this.#queue.push({ data, addr: target });
    this.#bufferSize += data.length;
    if (this.#flow.shouldPause(this.#bufferSize)) {
      invokeCallback(this.#protocol, "pauseWriting", this.#onCallbackError);
    }
    if (!this.#flushing) {
      this.#flushing = true;
      this.#flush();
    }
  }

  /**
   * Bytes of datagrams accepted by `sendto()` and not yet confirmed sent by
   * the OS, a send already handed to the OS included. Unlike asyncio 3.12+,
   * no per-datagram header size is added.
   *
   * @returns The size in bytes.
   */
  getWriteBufferSize(): number {
    return this.#bufferSize;
  }

  /**
   * The current watermarks of the send queue.
   *
   * @returns `{ low, high }` in bytes.
   */
  getWriteBufferLimits(): { low: number; high: number } {
    return { low: this.#flow.low, high: this.#flow.high };
  }

  /**
   * Sets the watermarks of the send queue: `high` alone gives
   * `low = high / 4`, `low` alone gives `high = 4 * low`, neither restores
   * 64 KiB / 16 KiB. May call `pauseWriting()` at once when the queue is
   * already over the new high watermark.
   *
   * @param limits The new watermarks.
   * @throws {TypeError} If a limit is not a number.
   * @throws {RangeError} If a limit is negative or NaN, or high < low.
   */
  setWriteBufferLimits(limits?: WriteBufferLimits): void {
    this.#flow.setLimits(limits);
    if (this.#flow.shouldPause(this.#bufferSize)) {
      invokeCallback(this.#protocol, "pauseWriting", this.#onCallbackError);
    }
  }

  // ------------------------------------------------------------ multicast

  /**
   * Joins a multicast group (IP_ADD_MEMBERSHIP / IPV6_JOIN_GROUP), what
   * asyncio does through `getExtraInfo("socket").setsockopt()`. To hear the
   * group, bind the endpoint to the wildcard address or to the group
   * address, on the group's port.
   *
   * @param group The group address: an IPv4 address in 224.0.0.0/4 or an
   * IPv6 address in ff00::/8, of the endpoint's family.
   * @param interfaceAddress The IPv4 address of the local interface to join
   * on (IPv4 groups only). Without it the kernel picks the interface.
   * @returns A promise that resolves once joined.
   * @throws {TypeError} If `group` or `interfaceAddress` is not an IP
   * address string, or `interfaceAddress` is given for an IPv6 group.
   * @throws {RangeError} If `group` is not a multicast address of the
   * endpoint's family, or is already joined on that interface.
   * @throws {Deno.errors.NotSupported} On a Unix datagram endpoint.
   * @throws {Deno.errors.BadResource} Once the endpoint is closing.
   *
   * @example Join a group on loopback, set TTL and loopback, leave
   * ```ts
   * import { createDatagramEndpoint } from "@denio/protocols";
   *
   * const [endpoint] = await createDatagramEndpoint(() => ({}), {
   *   localAddr: { hostname: "239.255.0.42", port: 0 },
   * });
   * await endpoint.joinMulticastGroup("239.255.0.42", "127.0.0.1");
   * await endpoint.setMulticastTTL(1); // never beyond this host's links
   * await endpoint.setMulticastLoopback(true);
   * await endpoint.leaveMulticastGroup("239.255.0.42", "127.0.0.1");
   * endpoint.close();
   * ```
   */
  async joinMulticastGroup(
    group: string,
    interfaceAddress?: string,
  ): Promise<void> {
    const action = "join multicast group";
    const [resolved, iface] = this.#checkGroup(group, interfaceAddress, action);
    const key = groupKey(resolved, iface);
    if (this.#groups.has(key)) {
      throw new RangeError(
        `Cannot ${action} as it is already joined on that interface: current value is ${
          describe(group)
        }`,
      );
    }
    const multicast = this.#multicast(action);
    this.#groups.add(key);
    try {
      await multicast.join(resolved, iface);
    } catch (error) {
      this.#groups.delete(key);
      throw error;
    }
  }

  /**
   * Leaves a multicast group joined by `joinMulticastGroup()` with the same
   * arguments. Closing the endpoint leaves every group.
   *
   * @param group The group address.
   * @param interfaceAddress The interface address it was joined on.
   * @returns A promise that resolves once left.
   * @throws {TypeError} If an argument is not an IP address string.
   * @throws {RangeError} If the group is not joined on that interface.
   * @throws {Deno.errors.NotSupported} On a Unix datagram endpoint.
   * @throws {Deno.errors.BadResource} Once the endpoint is closing.
   */
  async leaveMulticastGroup(
    group: string,
    interfaceAddress?: string,
  ): Promise<void> {
    const action = "leave multicast group";
    const [resolved, iface] = this.#checkGroup(group, interfaceAddress, action);
    const key = groupKey(resolved, iface);
    if (!this.#groups.has(key)) {
      throw new RangeError(
        `Cannot ${action} as it is not joined on that interface: current value is ${
          describe(group)
        }`,
      );
    }
    const multicast = this.#multicast(action);
    await multicast.leave(resolved, iface);
    this.#groups.delete(key);
  }

  /**
   * Sets whether multicast datagrams this endpoint sends are looped back to
   * sockets of this host (IP_MULTICAST_LOOP). With the Deno.listenDatagram
   * backend this works only after a group was joined (Deno sets it through
   * a membership).
   *
   * @param flag `true` to loop back.
   * @returns A promise that resolves once set.
   * @throws {TypeError} If `flag` is not a boolean.
   * @throws {Deno.errors.NotSupported} On a Unix datagram endpoint, or with
   * the Deno.listenDatagram backend before any group was joined.
   * @throws {Deno.errors.BadResource} Once the endpoint is closing.
   */
  async setMulticastLoopback(flag: boolean): Promise<void> {
    const action = "set multicast loopback";
    if (typeof flag !== "boolean") {
      throw new TypeError(
        `Cannot ${action} as flag is not a boolean: current value is ${
          describe(flag)
        }`,
      );
    }
    await this.#multicast(action).setLoopback(flag);
  }

  /**
   * Sets the time-to-live (hop limit) of multicast datagrams this endpoint
   * sends (IP_MULTICAST_TTL; the OS default is 1: this network only). With
   * the Deno.listenDatagram backend this works only after an IPv4 group was
   * joined; Deno's node:dgram refuses 0.
   *
   * @param ttl An integer from 0 to 255.
   * @returns A promise that resolves once set.
   * @throws {TypeError} If `ttl` is not a number.
   * @throws {RangeError} If `ttl` is not an integer from 0 to 255.
   * @throws {Deno.errors.NotSupported} On a Unix datagram endpoint, or with
   * the Deno.listenDatagram backend before an IPv4 group was joined.
   * @throws {Deno.errors.BadResource} Once the endpoint is closing.
   */
  async setMulticastTTL(ttl: number): Promise<void> {
    const action = "set multicast TTL";
    if (typeof ttl !== "number") {
      throw new TypeError(
        `Cannot ${action} as ttl is not a number: current value is ${
          describe(ttl)
        }`,
      );
    }
    if (!Number.isInteger(ttl) || ttl < 0 || ttl > 255) {
      throw new RangeError(
        `Cannot ${action} as ttl is not an integer from 0 to 255: current value is ${
          describe(ttl)
        }`,
      );
    }
    await this.#multicast(action).setTTL(ttl);
  }

  // ---------------------------------------------------------------- internals

  /** The multicast controls, or the error of an endpoint without them. */
  #multicast(action: string): DatagramMulticastIo {
    const multicast = this.#io.multicast;
    if (multicast === undefined || this.#kind !== "udp") {
      throw new Deno.errors.NotSupported(
        `Cannot ${action} as multicast is only for transport "udp": current value is ${
          describe(this.#kind)
        }`,
      );
    }
    if (this.isClosing()) {
      throw new Deno.errors.BadResource(
        `Cannot ${action} as the endpoint is closing: current value is ${this.#state.kind}`,
      );
    }
    return multicast;
  }

  /** Checks a group and interface address against the endpoint's family. */
  #checkGroup(
    group: unknown,
    interfaceAddress: unknown,
    action: string,
  ): [ResolvedHost, string | undefined] {
    if (this.#kind !== "udp") this.#multicast(action);
    const resolved = typeof group === "string" ? ipLiteral(group) : undefined;
    if (resolved === undefined) {
      throw new TypeError(
        `Cannot ${action} as group is not an IP address string: current value is ${
          describe(group)
        }`,
      );
    }
    if (!isMulticast(resolved)) {
      throw new RangeError(
        `Cannot ${action} as group is not a multicast address (224.0.0.0/4 or ff00::/8): current value is ${
          describe(group)
        }`,
      );
    }
    const local = this.#io.localAddr as Deno.NetAddr;
    const family = String(local.hostname).includes(":") ? 6 : 4;
    if (resolved.family !== family) {
      throw new RangeError(
        `Cannot ${action} as group is not of the endpoint's family (IPv${family}): current value is ${
          describe(group)
        }`,
      );
    }
    if (interfaceAddress === undefined) return [resolved, undefined];
    if (resolved.family === 6) {
      throw new TypeError(
        `Cannot ${action} as interfaceAddress is only for IPv4 groups: current value is ${
          describe(interfaceAddress)
        }`,
      );
    }
    const iface = typeof interfaceAddress === "string"
      ? ipLiteral(interfaceAddress)
      : undefined;
    if (iface === undefined || iface.family !== 4) {
      throw new TypeError(
        `Cannot ${action} as interfaceAddress is not an IPv4 address string: current value is ${
          describe(interfaceAddress)
        }`,
      );
    }
    return [resolved, iface.address];
  }

  /** Checks `addr` against the endpoint's kind and remote address. */
  #target(addr: Deno.Addr | undefined | null): Deno.Addr {
    const remote = this.#remote;
    if (addr === undefined || addr === null) {
      if (remote === undefined) {
        throw new TypeError(
          `Cannot ${SEND_ACTION} as addr is required on an endpoint without a remote address: current value is ${
            describe(addr)
          }`,
        );
      }
      return remote;
    }
    checkAddr(addr, this.#kind);
    if (remote === undefined) return addr;
    if (!sameAddr(addr, remote)) {
      throw new RangeError(
        `Cannot ${SEND_ACTION} as addr is not the remote address ${
          formatAddr(remote)
        }: current value is ${formatAddr(addr)}`,
      );
    }
    return remote;
  }

  #start(): void {
    if (this.#state.kind === "starting") this.#state = { kind: "open" };
    invokeCallback(
      this.#protocol,
      "connectionMade",
      this.#onCallbackError,
      this,
    );
    this.#options.onMade?.();
    if (!this.isClosing()) this.#receiving = this.#receiveLoop();
  }

  async #receiveLoop(): Promise<void> {
    let errors = 0;
    while (!this.isClosing()) {
      let data: Uint8Array;
      let from: Deno.Addr;
      try {
        [data, from] = await this.#io.receive();
      } catch (error) {
        if (this.isClosing()) return;
        if (isSocketGone(error) || ++errors >= MAX_RECEIVE_ERRORS) {
          this.#fatalError(error, "Fatal read error on datagram transport");
          return;
        }
        invokeCallback(
          this.#protocol,
          "errorReceived",
          this.#onCallbackError,
          toError(error),
        );
        continue;
      }
      errors = 0;
      if (this.isClosing()) return;
      if (this.#remote !== undefined && !sameAddr(from, this.#remote)) {
        // A connected socket only hears from its peer: the kernel would drop it.
        continue;
      }
      invokeCallback(
        this.#protocol,
        "datagramReceived",
        this.#onCallbackError,
        data,
        from,
      );
    }
  }

  async #flush(): Promise<void> {
    try {
      while (this.#head < this.#queue.length) {
        const item = this.#queue[this.#head]!;
        try {
          await this.#io.send(item.data, item.addr);
        } catch (error) {
          if (this.#isLost()) return;
          if (isSocketGone(error)) throw error;
          invokeCallback(
            this.#protocol,
            "errorReceived",
            this.#onCallbackError,
            toError(error),
          );
          if (this.#isLost()) return;
        }
        if (this.#isLost()) return;
        this.#queue[this.#head++] = EMPTY_ITEM;
        if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
          this.#queue = this.#queue.slice(this.#head);
          this.#head = 0;
        }
        this.#bufferSize -= item.data.length;
        if (this.#flow.shouldResume(this.#bufferSize)) {
          invokeCallback(
            this.#protocol,
            "resumeWriting",
            this.#onCallbackError,
          );
          if (this.#isLost()) return;
        }
      }
      this.#queue = [];
      this.#head = 0;
      this.#flushing = false;
      if (this.#state.kind === "closing") this.#forceClose(null);
    } catch (error) {
      this.#flushing = false;
      if (this.#isLost()) return;
      this.#fatalError(error, "Fatal write error on datagram transport");
    }
  }

  #isLost(): boolean {
    return this.#state.kind === "lost" || this.#state.kind === "closed";
  }

  #droppedWrite(): void {
    this.#lostWrites++;
    if (this.#lostWrites === LOST_WRITE_WARNING_THRESHOLD) {
      console.warn(
        `denio: ${LOST_WRITE_WARNING_THRESHOLD} datagrams sent to a closed transport were dropped`,
      );
    }
  }

  #callbackFailed(name: string, error: unknown): void {
    this.#fatalError(error, `Fatal error: protocol.${name}() call failed`);
  }

  #fatalError(error: unknown, message: string): void {
    callExceptionHandler({
      message,
      error,
      transport: this,
      protocol: this.#protocol,
    });
    this.#forceClose(toError(error));
  }

  /** The single teardown funnel: every path to connectionLost goes here. */
  #forceClose(error: Error | null): void {
    if (this.#isLost()) return;
    this.#state = { kind: "lost", error };
    this.#queue = [];
    this.#head = 0;
    this.#bufferSize = 0;
    try {
      this.#io.close();
    } catch {
      // Already closed by the runtime or by the user: nothing to release.
    }
    if (this.#options.socketFile !== undefined) {
      removeSocketFile(this.#options.socketFile);
    }
    // connectionLost comes once the receive loop has let go of the socket,
    // so no operation of the endpoint is pending after it.
    this.#receiving.then(() => callSoon(() => this.#callConnectionLost(error)));
  }

  #callConnectionLost(error: Error | null): void {
    try {
      invokeConnectionLost(this, this.#protocol, error);
    } finally {
      this.#state = { kind: "closed" };
    }
  }
}

const EMPTY_ITEM: Queued = {
  data: new Uint8Array(0),
  addr: { transport: "udp", hostname: "", port: 0 },
};

/** Whether `host` is in 224.0.0.0/4 (IPv4) or ff00::/8 (IPv6). */
function isMulticast(host: ResolvedHost): boolean {
  if (host.family === 4) {
    const first = Number(host.address.split(".")[0]);
    return first >= 224 && first <= 239;
  }
  return host.address.toLowerCase().startsWith("ff");
}

/** Errors that mean the socket itself is gone (closed under the endpoint). */
function isSocketGone(error: unknown): boolean {
  return error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted;
}

function checkAddr(addr: unknown, kind: DatagramKind): void {
  if (addr === null || typeof addr !== "object") {
    throw new TypeError(
      `Cannot ${SEND_ACTION} as addr is not an address object: current value is ${
        describe(addr)
      }`,
    );
  }
  const a = addr as Record<string, unknown>;
  if (a.transport !== kind) {
    throw new TypeError(
      `Cannot ${SEND_ACTION} as addr.transport is not "${kind}": current value is ${
        describe(a.transport)
      }`,
    );
  }
  switch (kind) {
    case "udp":
      if (typeof a.hostname !== "string" || a.hostname === "") {
        throw new TypeError(
          `Cannot ${SEND_ACTION} as addr.hostname is not a non-empty string: current value is ${
            describe(a.hostname)
          }`,
        );
      }
      assertPort(a.port, SEND_ACTION, 1);
      return;
    case "unixpacket":
      if (typeof a.path !== "string" || a.path === "") {
        throw new TypeError(
          `Cannot ${SEND_ACTION} as addr.path is not a non-empty string: current value is ${
            describe(a.path)
          }`,
        );
      }
      return;
    default: {
      const never: never = kind;
      throw new TypeError(`Unknown datagram kind: ${describe(never)}`);
    }
  }
}

/** Whether `addr` is `remote` (IP literals compared in canonical form). */
function sameAddr(addr: Deno.Addr, remote: Deno.Addr): boolean {
  if (addr.transport !== remote.transport) return false;
  if (remote.transport === "unixpacket" || remote.transport === "unix") {
    return (addr as Deno.UnixAddr).path === remote.path;
  }
  const net = addr as Deno.NetAddr;
  const peer = remote as Deno.NetAddr;
  if (net.port !== peer.port) return false;
  if (net.hostname === peer.hostname) return true;
  return ipLiteral(net.hostname)?.address === peer.hostname;
}

function formatAddr(addr: Deno.Addr): string {
  if (addr.transport === "unixpacket" || addr.transport === "unix") {
    return String((addr as Deno.UnixAddr).path);
  }
  const { hostname, port } = addr as Deno.NetAddr;
  return hostname.includes(":")
    ? `[${hostname}]:${port}`
    : `${hostname}:${port}`;
}

// ------------------------------------------------------------- entry point

const ACTION = "create datagram endpoint";

/** The key of the internal option that forces a backend (tests only). */
const BACKEND_OPTION = Symbol.for("denio.datagramBackend");

/**
 * Opens a datagram endpoint (UDP, or Unix datagrams with
 * `transport: "unixpacket"`) and attaches a protocol made by
 * `protocolFactory`. Resolves once `connectionMade` has been called, as
 * asyncio's `loop.create_datagram_endpoint()` does.
 *
 * With `remoteAddr`, the endpoint acts as asyncio's connected socket: sends
 * default to that address and datagrams from other senders are dropped.
 * Deno offers no `connect()` for datagram sockets, so this is done by the
 * transport and, unlike asyncio on Linux, an ICMP "port unreachable" is not
 * reported to `errorReceived`.
 *
 * The socket comes from `Deno.listenDatagram` when the runtime has it (the
 * `net` unstable flag: `--unstable-net` or `"unstable": ["net"]` in
 * deno.json), else from `node:dgram`, which needs no flag but has no Unix
 * datagrams.
 *
 * @typeParam P The protocol type.
 * @param protocolFactory Returns the protocol for the endpoint.
 * @param options Where to bind and which peer to talk to.
 * @returns The transport and the protocol.
 * @throws {TypeError} If an argument has the wrong type.
 * @throws {RangeError} If a port is out of range, or the local and remote
 * addresses are of different families.
 * @throws {Deno.errors.NotSupported} For `reusePort: true` (see
 * {@linkcode DatagramOptions.reusePort}), or `transport: "unixpacket"` without
 * the `net` unstable flag.
 *
 * @example A UDP echo server and a client
 * ```ts
 * import {
 *   createDatagramEndpoint,
 *   type DatagramProtocol,
 *   type DatagramTransport,
 * } from "@denio/protocols";
 * import { assertEquals } from "@std/assert";
 *
 * // The server sends every datagram back to its sender.
 * class Echo implements DatagramProtocol {
 *   #transport?: DatagramTransport;
 *   connectionMade(transport: DatagramTransport) {
 *     this.#transport = transport;
 *   }
 *   datagramReceived(data: Uint8Array, addr: Deno.Addr) {
 *     this.#transport!.sendto(data, addr);
 *   }
 * }
 * const [server] = await createDatagramEndpoint(() => new Echo(), {
 *   localAddr: { hostname: "127.0.0.1", port: 0 },
 * });
 * const { port } = server.getExtraInfo("sockname") as Deno.NetAddr;
 *
 * // The client talks to the server only.
 * const reply = Promise.withResolvers<string>();
 * const closed = Promise.withResolvers<Error | null>();
 * const [client] = await createDatagramEndpoint(() => ({
 *   datagramReceived(data: Uint8Array) {
 *     reply.resolve(new TextDecoder().decode(data));
 *   },
 *   connectionLost: closed.resolve,
 * }), { remoteAddr: { hostname: "127.0.0.1", port } });
 * client.sendto(new TextEncoder().encode("ping"));
 * assertEquals(await reply.promise, "ping");
 *
 * client.close();
 * assertEquals(await closed.promise, null);
 * server.close();
 * ```
 *
 * @example Unix datagrams (needs the net unstable flag)
 * ```ts
 * import { createDatagramEndpoint } from "@denio/protocols";
 * import { assertEquals } from "@std/assert";
 *
 * const dir = await Deno.makeTempDir();
 * const got = Promise.withResolvers<string>();
 * const [server] = await createDatagramEndpoint(() => ({
 *   datagramReceived: (data: Uint8Array) =>
 *     got.resolve(new TextDecoder().decode(data)),
 * }), { transport: "unixpacket", path: `${dir}/server.sock` });
 *
 * const [client] = await createDatagramEndpoint(() => ({}), {
 *   transport: "unixpacket",
 *   remotePath: `${dir}/server.sock`,
 * });
 * client.sendto(new TextEncoder().encode("over a path"));
 * assertEquals(await got.promise, "over a path");
 * client.close();
 * server.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function createDatagramEndpoint<P extends DatagramProtocol>(
  protocolFactory: () => P,
  options: DatagramOptions,
): Promise<[DatagramTransport, P]> {
  assertFactory(protocolFactory, ACTION);
  assertOptions(options, ACTION, false);
  const kind = checkKind(options.transport);
  assertSignal(options.signal, ACTION);
  if (
    options.broadcast !== undefined && typeof options.broadcast !== "boolean"
  ) {
    throw new TypeError(
      `Cannot ${ACTION} as broadcast is not a boolean: current value is ${
        describe(options.broadcast)
      }`,
    );
  }
  checkReusePort(options.reusePort);
  for (const name of ["proxyProtocol", "proxyHeader"]) {
    const value = (options as unknown as Record<string, unknown>)[name];
    if (value !== undefined) {
      throw new TypeError(
        `Cannot ${ACTION} as ${name} is not supported on datagram endpoints: current value is ${
          describe(value)
        }`,
      );
    }
  }
  let udpAddrs: UdpAddresses | undefined;
  if (kind === "unixpacket") checkUnixOptions(options);
  else udpAddrs = checkUdpOptions(options);
  const backend = chooseBackend(options, kind);
  const signal = options.signal;
  signal?.throwIfAborted();

  let io: DatagramSocketIo;
  let remoteAddr: Deno.Addr | undefined;
  let socketFile: string | undefined;
  if (udpAddrs === undefined) {
    socketFile = options.path;
    if (options.remotePath !== undefined) {
      remoteAddr = { transport: "unixpacket", path: options.remotePath };
    }
    io = await openDatagramIo(backend, {
      kind,
      ...(options.path !== undefined ? { path: options.path } : {}),
      broadcast: false,
    });
  } else {
    const { local, remote } = await resolveUdp(udpAddrs, signal);
    if (remote !== undefined) {
      remoteAddr = {
        transport: "udp",
        hostname: remote.address,
        port: remote.port,
      };
    }
    io = await openDatagramIo(backend, {
      kind,
      local,
      broadcast: options.broadcast ?? false,
    });
  }

  let protocol: P;
  try {
    signal?.throwIfAborted();
    protocol = makeProtocol(protocolFactory, ACTION);
  } catch (error) {
    io.close();
    if (socketFile !== undefined) removeSocketFile(socketFile);
    throw error;
  }
  const made = Promise.withResolvers<void>();
  const transport = new DatagramSocketTransport(io, protocol, {
    kind,
    ...(remoteAddr !== undefined ? { remoteAddr } : {}),
    ...(socketFile !== undefined ? { socketFile } : {}),
    onMade: made.resolve,
  });
  await made.promise;
  return [transport, protocol];
}

/** SO_REUSEPORT: neither backend can set it in Deno 2.9. */
function checkReusePort(reusePort: unknown): void {
  if (reusePort === undefined || reusePort === false) return;
  if (reusePort !== true) {
    throw new TypeError(
      `Cannot ${ACTION} as reusePort is not a boolean: current value is ${
        describe(reusePort)
      }`,
    );
  }
  throw new Deno.errors.NotSupported(
    `Cannot ${ACTION} as reusePort needs SO_REUSEPORT, which neither Deno.listenDatagram nor node:dgram sets in Deno 2.9: current value is true`,
  );
}

function checkKind(transport: unknown): DatagramKind {
  const kind = transport ?? "udp";
  if (kind !== "udp" && kind !== "unixpacket") {
    throw new TypeError(
      `Cannot ${ACTION} as transport is not "udp" or "unixpacket": current value is ${
        describe(kind)
      }`,
    );
  }
  return kind;
}

function chooseBackend(
  options: DatagramOptions,
  kind: DatagramKind,
): DatagramBackend {
  const forced = (options as Record<symbol, unknown>)[BACKEND_OPTION];
  const native = hasListenDatagram();
  if (forced !== undefined && forced !== "deno" && forced !== "node") {
    throw new TypeError(
      `Cannot ${ACTION} as the backend is not "deno" or "node": current value is ${
        describe(forced)
      }`,
    );
  }
  const backend: DatagramBackend = forced ?? (native ? "deno" : "node");
  if (backend === "deno" && !native) {
    throw new Deno.errors.NotSupported(
      `Cannot ${ACTION} as ${
        kind === "unixpacket" ? 'transport "unixpacket"' : "the deno backend"
      } needs Deno.listenDatagram, which takes the net unstable flag (--unstable-net, or "unstable": ["net"] in deno.json): current value is undefined`,
    );
  }
  if (kind === "unixpacket" && backend === "node") {
    throw new Deno.errors.NotSupported(
      `Cannot ${ACTION} as transport "unixpacket" needs Deno.listenDatagram, which takes the net unstable flag (--unstable-net, or "unstable": ["net"] in deno.json): current value is ${
        native ? '"unixpacket" on node:dgram' : "undefined"
      }`,
    );
  }
  return backend;
}

function checkUnixOptions(options: DatagramOptions): void {
  for (const name of ["localAddr", "remoteAddr", "broadcast"] as const) {
    if (options[name] !== undefined) {
      throw new TypeError(
        `Cannot ${ACTION} as ${name} is only for transport "udp": current value is ${
          describe(options[name])
        }`,
      );
    }
  }
  for (const name of ["path", "remotePath"] as const) {
    const value = options[name];
    if (value !== undefined && (typeof value !== "string" || value === "")) {
      throw new TypeError(
        `Cannot ${ACTION} as ${name} is not a non-empty string: current value is ${
          describe(value)
        }`,
      );
    }
  }
}

function checkUdpAddress(
  value: unknown,
  name: "localAddr" | "remoteAddr",
): DatagramAddress | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== "object") {
    throw new TypeError(
      `Cannot ${ACTION} as ${name} is not an object: current value is ${
        describe(value)
      }`,
    );
  }
  const addr = value as DatagramAddress;
  assertString(addr.hostname, `${name}.hostname`, ACTION);
  if (addr.port !== undefined || name === "remoteAddr") {
    assertPort(addr.port, ACTION, name === "remoteAddr" ? 1 : 0);
  }
  return addr;
}

interface UdpAddresses {
  localAddr: DatagramAddress | undefined;
  remoteAddr: DatagramAddress | undefined;
}

function checkUdpOptions(options: DatagramOptions): UdpAddresses {
  for (const name of ["path", "remotePath"] as const) {
    if (options[name] !== undefined) {
      throw new TypeError(
        `Cannot ${ACTION} as ${name} is only for transport "unixpacket": current value is ${
          describe(options[name])
        }`,
      );
    }
  }
  return {
    localAddr: checkUdpAddress(options.localAddr, "localAddr"),
    remoteAddr: checkUdpAddress(options.remoteAddr, "remoteAddr"),
  };
}

/** Resolves the local and remote UDP addresses to one family. */
async function resolveUdp(
  { localAddr, remoteAddr }: UdpAddresses,
  signal: AbortSignal | undefined,
): Promise<{
  local: ResolvedHost & { port: number };
  remote?: ResolvedHost & { port: number };
}> {
  let local: ResolvedHost | undefined;
  if (localAddr?.hostname !== undefined) {
    local = await abortable(
      resolveHost(localAddr.hostname, undefined, ACTION),
      signal,
    );
  }
  let remote: (ResolvedHost & { port: number }) | undefined;
  if (remoteAddr !== undefined) {
    const found = await abortable(
      resolveHost(remoteAddr.hostname ?? "127.0.0.1", local?.family, ACTION),
      signal,
    );
    remote = { ...found, port: remoteAddr.port! };
  }
  local ??= remote?.family === 6
    ? { address: "::", family: 6 }
    : { address: "0.0.0.0", family: 4 };
  return {
    local: { ...local, port: localAddr?.port ?? 0 },
    ...(remote !== undefined ? { remote } : {}),
  };
}

/** Races `promise` with `signal`, which rejects with the abort reason. */
async function abortable<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
): Promise<T> {
  if (signal === undefined) return await promise;
  signal.throwIfAborted();
  const aborted = Promise.withResolvers<never>();
  const abort = () => aborted.reject(signal.reason);
  signal.addEventListener("abort", abort, { once: true });
  promise.catch(() => {});
  try {
    return await Promise.race([promise, aborted.promise]);
  } finally {
    signal.removeEventListener("abort", abort);
  }
}

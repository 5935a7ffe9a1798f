// Copyright 2026 the denio authors. MIT license.
// What createConnection and createServer share: option checks, the protocol
// factory call, the extra info of a Deno.Conn, and the TLS handshake wait.

import {
  assertBoolean,
  assertPort,
  assertString,
  checkIdleTimeout,
  describe,
} from "./_validate.ts";

/** Calls the factory and checks that it gave an object. */
export function makeProtocol<P>(factory: () => P, action: string): P {
  const protocol = factory();
  if (protocol === null || typeof protocol !== "object") {
    throw new TypeError(
      `Cannot ${action} as protocolFactory() did not return an object: current value is ${
        describe(protocol)
      }`,
    );
  }
  return protocol;
}

/** The extra info of a stream connection. */
export function connExtra(conn: Deno.Conn): Record<string, unknown> {
  return {
    peername: conn.remoteAddr,
    sockname: conn.localAddr,
    socket: conn,
  };
}

/** Checks `transport`, `path`, `hostname` and `port`; returns the kind. */
export function checkAddress(
  options: {
    transport?: unknown;
    path?: unknown;
    hostname?: unknown;
    port?: unknown;
  },
  action: string,
  portRequired: boolean,
): "tcp" | "unix" {
  const transport = options.transport ?? "tcp";
  if (transport !== "tcp" && transport !== "unix") {
    throw new TypeError(
      `Cannot ${action} as transport is not "tcp" or "unix": current value is ${
        describe(transport)
      }`,
    );
  }
  if (transport === "unix") {
    if (typeof options.path !== "string" || options.path === "") {
      throw new TypeError(
        `Cannot ${action} as path is not a non-empty string: current value is ${
          describe(options.path)
        }`,
      );
    }
    return transport;
  }
  assertString(options.hostname, "hostname", action);
  if (options.port !== undefined || portRequired) {
    assertPort(options.port, action, portRequired ? 1 : 0);
  }
  return transport;
}

/** Checks the `handshakeTimeout` option (milliseconds, positive). */
export function checkHandshakeTimeout(
  value: unknown,
  action: string,
): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot ${action} as handshakeTimeout is not a number: current value is ${
        describe(value)
      }`,
    );
  }
  if (!(value > 0)) {
    throw new RangeError(
      `Cannot ${action} as handshakeTimeout is not positive: current value is ${value}`,
    );
  }
  return value;
}

/** Default TLS handshake timeout: 60 s, as asyncio's SSL_HANDSHAKE_TIMEOUT. */
export const DEFAULT_HANDSHAKE_TIMEOUT = 60_000;

/**
 * Completes a TLS handshake within `timeout` ms; on failure or timeout the
 * connection is closed and the promise rejects with the reason.
 */
export async function handshake(
  conn: Deno.TlsConn,
  timeout: number,
): Promise<Deno.TlsHandshakeInfo> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Deno.errors.TimedOut(
            `TLS handshake did not complete within ${timeout} ms`,
          ),
        ),
      timeout,
    );
  });
  try {
    return await Promise.race([conn.handshake(), expired]);
  } catch (error) {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Checks the options servers and clients share: `idleTimeout` and
 * `keepAlive` (TCP only: a TypeError with a Unix socket).
 */
export function checkServiceOptions(
  options: { idleTimeout?: unknown; keepAlive?: unknown },
  kind: "tcp" | "unix",
  action: string,
): void {
  if (options.idleTimeout !== undefined) {
    checkIdleTimeout(options.idleTimeout, action, false);
  }
  assertBoolean(options.keepAlive, "keepAlive", action);
  if (options.keepAlive === true && kind === "unix") {
    throw new TypeError(
      `Cannot ${action} as keepAlive is for TCP, not Unix sockets: current value is true`,
    );
  }
}

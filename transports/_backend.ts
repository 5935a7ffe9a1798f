// Copyright 2026 the denio authors. MIT license.
// The `backend` option of createServer and createConnection: checking it,
// and choosing between Deno's socket API and the native reactor. Nothing
// native is loaded here (createConnection must stay importable on Deno
// Deploy); the native module is imported dynamically once it is chosen.

import { describe } from "./_validate.ts";

/** Which socket layer a stream server or connection runs on. */
export type Backend = "native" | "auto" | "deno";

let defaultBackend: Backend = "deno";

/**
 * Sets the backend used when the option is absent (internal: the test
 * suite's second run uses "auto" to drive every test over the native
 * reactor). Not exported from mod.ts.
 */
export function setDefaultBackend(backend: Backend): void {
  defaultBackend = backend;
}

/** Throws a TypeError unless `value` is a backend name (or undefined). */
export function checkBackend(value: unknown, action: string): void {
  if (
    value !== undefined && value !== "native" && value !== "auto" &&
    value !== "deno"
  ) {
    throw new TypeError(
      `Cannot ${action} as backend is not "native", "auto" or "deno": current value is ${
        describe(value)
      }`,
    );
  }
}

/** Why the native backend cannot run in this process, or null. */
function nativeUnavailable(): "permission" | "platform" | null {
  if (Deno.build.os !== "linux") return "platform";
  if (Deno.build.arch !== "x86_64" && Deno.build.arch !== "aarch64") {
    return "platform";
  }
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      return "permission";
    }
  } catch {
    return "permission";
  }
  return null;
}

/**
 * The backend to use. "auto" (and an absent option under an "auto"
 * default) is native where FFI is permitted, the platform is supported and
 * no TLS is asked for. An explicit "native" that cannot run throws.
 *
 * @throws {Deno.errors.NotCapable} "native" without FFI permission.
 * @throws {Deno.errors.NotSupported} "native" on another OS or CPU.
 * @throws {TypeError} "native" with TLS.
 */
export function chooseBackend(
  value: Backend | undefined,
  action: string,
  tls: boolean,
): "native" | "deno" {
  const backend = value ?? defaultBackend;
  switch (backend) {
    case "deno":
      return "deno";
    case "auto":
      return tls || nativeUnavailable() !== null ? "deno" : "native";
    case "native": {
      if (tls) {
        throw new TypeError(
          `Cannot ${action} as tls is not supported with backend "native": current value is an object`,
        );
      }
      const why = nativeUnavailable();
      if (why === "platform") {
        throw new Deno.errors.NotSupported(
          `Cannot ${action} as backend "native" runs on Linux x86_64 and aarch64 only: current value is ${Deno.build.os} ${Deno.build.arch}`,
        );
      }
      if (why === "permission") {
        throw new Deno.errors.NotCapable(
          `Cannot ${action} as backend "native" requires FFI access, run again with the --allow-ffi flag`,
        );
      }
      return "native";
    }
    default: {
      const never: never = backend;
      throw new TypeError(`Unknown backend: ${never}`);
    }
  }
}

/**
 * Deno's own permission check for what the native backend is about to do
 * (FFI would bypass it): net for TCP, read and write for a Unix path.
 *
 * @throws {Deno.errors.NotCapable} If the permission is not granted.
 */
export function checkSocketPermission(
  address: { transport: "tcp"; hostname: string; port: number } | {
    transport: "unix";
    path: string;
  },
): void {
  if (address.transport === "tcp") {
    const host = `${address.hostname}:${address.port}`;
    if (Deno.permissions.querySync({ name: "net", host }).state !== "granted") {
      throw new Deno.errors.NotCapable(
        `Requires net access to "${host}", run again with the --allow-net flag`,
      );
    }
    return;
  }
  for (const name of ["read", "write"] as const) {
    if (
      Deno.permissions.querySync({ name, path: address.path }).state !==
        "granted"
    ) {
      throw new Deno.errors.NotCapable(
        `Requires ${name} access to "${address.path}", run again with the --allow-${name} flag`,
      );
    }
  }
}

/** Where a native listener or connection goes. */
export type NativeAddress =
  | { transport: "tcp"; hostname: string; port: number; reusePort?: boolean }
  | { transport: "unix"; path: string };

/**
 * Listens with the native backend (loaded on first use). The listener has
 * the parts of Deno.Listener that Server uses: accept(), addr, close().
 */
export async function listenNative(
  address: NativeAddress,
): Promise<Deno.Listener> {
  checkSocketPermission(address);
  const native = await import("./_native_io.ts");
  return await native.listenNative(address) as unknown as Deno.Listener;
}

/**
 * Connects with the native backend (loaded on first use). The connection
 * has the parts of Deno.Conn the transports use: read, write, closeWrite,
 * close, remoteAddr, localAddr, setNoDelay, setKeepAlive.
 */
export async function connectNative(
  address: NativeAddress,
  signal?: AbortSignal,
): Promise<Deno.TcpConn> {
  checkSocketPermission(address);
  const native = await import("./_native_io.ts");
  return await native.connectNative(address, signal) as unknown as Deno.TcpConn;
}

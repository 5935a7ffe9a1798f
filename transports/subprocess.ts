// Copyright 2026 the denio authors. MIT license.
/**
 * {@linkcode subprocessExec} and {@linkcode subprocessShell}: a child process
 * driven by a {@linkcode SubprocessProtocol}, asyncio's
 * `loop.subprocess_exec()` and `loop.subprocess_shell()` over
 * `Deno.Command(...).spawn()`.
 *
 * Each piped stdio stream is a pipe transport on the one stream core
 * (stdin a write pipe with flow control, stdout and stderr read pipes that
 * can be paused), connected to a small internal protocol that forwards to
 * the subprocess protocol, as asyncio's base_subprocess.py does with
 * `WriteSubprocessPipeProto` and `ReadSubprocessPipeProto`.
 *
 * @module
 */

import type {
  BaseProtocol,
  ReadTransport,
  SubprocessProtocol,
  SubprocessTransport,
  WriteTransport,
} from "../mod.ts";
import {
  callSoon,
  invokeCallback,
  invokeConnectionLost,
  toError,
} from "./_call_soon.ts";
import { makeProtocol } from "./_net.ts";
import { openReadPipe, openWritePipe } from "./_pipe_io.ts";
import {
  assertFactory,
  assertOptions,
  assertSignal,
  checkProtocol,
  describe,
} from "./_validate.ts";
import { callExceptionHandler } from "./exception_handler.ts";
import type { StreamTransport } from "./stream_transport.ts";

/** Where a child's stdin, stdout or stderr goes. */
export type SubprocessStdio = "piped" | "inherit" | "null";

/** How {@linkcode subprocessExec} and {@linkcode subprocessShell} start the child. */
export interface SubprocessOptions {
  /** Arguments after the program name (not for `subprocessShell`). @default {[]} */
  args?: string[];
  /** The child's working directory. @default {the current directory} */
  cwd?: string | URL;
  /** Variables added to the parent's environment, as `Deno.Command` does. @default {{}} */
  env?: Record<string, string>;
  /** The child's stdin: a write pipe transport when `"piped"`. @default {"piped"} */
  stdin?: SubprocessStdio;
  /** The child's stdout: a read pipe transport when `"piped"`. @default {"piped"} */
  stdout?: SubprocessStdio;
  /** The child's stderr: a read pipe transport when `"piped"`. @default {"piped"} */
  stderr?: SubprocessStdio;
  /** Sends the child SIGTERM when aborted (`Deno.Command`'s `signal`). */
  signal?: AbortSignal;
}

type Fd = 0 | 1 | 2;

type State =
  // Spawned; events wait here until the protocol's connectionMade ran.
  | { kind: "starting"; pending: (() => void)[] }
  | { kind: "open" }
  // close() was called, or a callback failed (`error`): pipes closing, child
  // killed; connectionLost waits for the exit and the last pipe.
  | { kind: "closing"; error: Error | null }
  // connectionLost is queued or done.
  | { kind: "finished" };

/**
 * The internal protocol of one pipe transport: it forwards to the subprocess
 * transport, which calls the subprocess protocol (asyncio's
 * `ReadSubprocessPipeProto` / `WriteSubprocessPipeProto`).
 */
class PipeProtocol {
  #fd: Fd;
  #owner: ChildTransport;
  constructor(owner: ChildTransport, fd: Fd) {
    this.#owner = owner;
    this.#fd = fd;
  }
  dataReceived(data: Uint8Array): void {
    this.#owner.pipeEvent("pipeDataReceived", this.#fd, data);
  }
  pauseWriting(): void {
    this.#owner.pipeEvent("pauseWriting");
  }
  resumeWriting(): void {
    this.#owner.pipeEvent("resumeWriting");
  }
  connectionLost(error: Error | null): void {
    this.#owner.pipeLost(this.#fd, error);
  }
}

/** The {@linkcode SubprocessTransport} over a `Deno.ChildProcess`. */
class ChildTransport implements SubprocessTransport {
  #child: Deno.ChildProcess;
  #protocol: BaseProtocol;
  #state: State = { kind: "starting", pending: [] };
  #pipes: [
    StreamTransport | null,
    StreamTransport | null,
    StreamTransport | null,
  ];
  #openPipes = new Set<Fd>();
  #returncode: number | null = null;
  /** processExited was delivered (or the wait failed): finishing may follow. */
  #exitReported = false;
  #onCallbackError: (name: string, error: unknown) => void;

  constructor(
    child: Deno.ChildProcess,
    protocol: BaseProtocol,
    piped: readonly [boolean, boolean, boolean],
    onMade: () => void,
  ) {
    this.#child = child;
    this.#protocol = protocol;
    this.#onCallbackError = (name, error) => this.#callbackFailed(name, error);
    // Each pipe transport queues its own connectionMade (to the internal
    // protocol) now; the subprocess protocol's connectionMade is queued after
    // them, so every pipe is connected when it runs (asyncio's order).
    this.#pipes = [
      piped[0] ? openWritePipe(child.stdin, new PipeProtocol(this, 0)) : null,
      piped[1] ? openReadPipe(child.stdout, new PipeProtocol(this, 1)) : null,
      piped[2] ? openReadPipe(child.stderr, new PipeProtocol(this, 2)) : null,
    ];
    for (const fd of [0, 1, 2] as const) {
      if (this.#pipes[fd] !== null) this.#openPipes.add(fd);
    }
    child.status.then(
      (status) => this.#exited(status),
      (error) => this.#exitFailed(error),
    );
    callSoon(() => this.#start(onMade));
  }

  // ---------------------------------------------------------------- base

  /** `subprocess` is the `Deno.ChildProcess`; `defaultValue` otherwise. */
  getExtraInfo(name: string, defaultValue?: unknown): unknown {
    return name === "subprocess" ? this.#child : defaultValue;
  }

  /** True once `close()` was called or the transport finished. */
  isClosing(): boolean {
    return this.#state.kind === "closing" || this.#state.kind === "finished";
  }

  /**
   * Closes every pipe (stdin is flushed first) and, if the child still
   * runs, kills it with SIGKILL, as asyncio's `close()`. `processExited`
   * and `pipeConnectionLost` still follow, then `connectionLost(null)`.
   * Idempotent.
   */
  close(): void {
    this.#shutdown(null);
  }

  setProtocol(protocol: BaseProtocol): void {
    this.#protocol = checkProtocol(protocol);
  }

  getProtocol(): BaseProtocol {
    return this.#protocol;
  }

  // ---------------------------------------------------------------- process

  getPid(): number {
    return this.#child.pid;
  }

  getReturncode(): number | null {
    return this.#returncode;
  }

  getPipeTransport(fd: 0 | 1 | 2): WriteTransport | ReadTransport | null {
    if (fd !== 0 && fd !== 1 && fd !== 2) {
      throw new RangeError(
        `Cannot get pipe transport as fd is not 0, 1 or 2: current value is ${
          describe(fd)
        }`,
      );
    }
    return this.#pipes[fd];
  }

  sendSignal(signal: Deno.Signal): void {
    if (typeof signal !== "string") {
      throw new TypeError(
        `Cannot send signal as it is not a signal name: current value is ${
          describe(signal)
        }`,
      );
    }
    if (this.#returncode !== null) throw this.#gone(signal);
    try {
      this.#child.kill(signal);
    } catch (error) {
      // Deno refuses once it has reaped the child, which may be just before
      // the status promise tells us.
      if (error instanceof TypeError && /terminated/.test(error.message)) {
        throw this.#gone(signal);
      }
      throw error;
    }
  }

  terminate(): void {
    this.sendSignal("SIGTERM");
  }

  kill(): void {
    this.sendSignal("SIGKILL");
  }

  // ------------------------------------------------------- pipe events

  /** A pipe's internal protocol forwards a callback. */
  pipeEvent(name: string, fd?: Fd, data?: Uint8Array): void {
    this.#deliver(name, fd, data);
  }

  /** A pipe transport is gone (asyncio's `_pipe_connection_lost`). */
  pipeLost(fd: Fd, error: Error | null): void {
    this.#openPipes.delete(fd);
    this.#deliver("pipeConnectionLost", fd, error);
    this.#tryFinish();
  }

  // ---------------------------------------------------------------- internals

  #setState(state: State): void {
    this.#state = state;
  }

  #start(onMade: () => void): void {
    const state = this.#state;
    const pending = state.kind === "starting" ? state.pending : [];
    if (state.kind === "starting") this.#setState({ kind: "open" });
    invokeCallback(
      this.#protocol,
      "connectionMade",
      this.#onCallbackError,
      this,
    );
    // Events that came before connectionMade, in their order, in this same
    // microtask so that nothing newer overtakes them.
    for (const call of pending) call();
    onMade();
    this.#tryFinish();
  }

  /** Calls a protocol callback now, or later if connectionMade has not run. */
  #deliver(name: string, a?: unknown, b?: unknown): void {
    const state = this.#state;
    switch (state.kind) {
      case "starting":
        state.pending.push(() => this.#deliver(name, a, b));
        return;
      case "open":
        break;
      case "closing":
        // After a callback failed, only connectionLost is left to call.
        if (state.error !== null) return;
        break;
      case "finished":
        return;
      default: {
        const never: never = state;
        throw new Error(`Unknown state: ${String(never)}`);
      }
    }
    invokeCallback(this.#protocol, name, this.#onCallbackError, a, b);
  }

  #exited(status: Deno.CommandStatus): void {
    // Deno reports a signal's death as 128 + its number; asyncio's
    // returncode is minus the number.
    this.#returncode = status.signal !== null && status.code > 128
      ? 128 - status.code
      : status.code;
    // asyncio's stdin pipe notices its reader closing at once (unix_events.py
    // `_UnixWritePipeTransport._read_ready`), so its pipe_connection_lost(0)
    // comes before process_exited. Deno 2.9 gives no such sign (README,
    // "Where denio differs"): the child's exit is the first one. Flush and
    // close stdin first, so a write still pending ends in an error, and
    // report the exit a microtask later: with nothing left to flush,
    // pipeConnectionLost(0) then still comes before processExited.
    this.#pipes[0]?.close();
    callSoon(() => {
      this.#exitReported = true;
      this.#deliver("processExited");
      this.#tryFinish();
    });
  }

  #exitFailed(error: unknown): void {
    callExceptionHandler({
      message: "Error waiting for the child process to exit",
      error,
      transport: this,
      protocol: this.#protocol,
    });
    this.#returncode = -1;
    this.#exitReported = true;
    this.#shutdown(toError(error));
  }

  #callbackFailed(name: string, error: unknown): void {
    const state = this.#state;
    if (state.kind === "finished") return;
    if (state.kind === "closing" && state.error !== null) return;
    callExceptionHandler({
      message: `Fatal error: protocol.${name}() call failed`,
      error,
      transport: this,
      protocol: this.#protocol,
    });
    this.#shutdown(toError(error));
  }

  /** The one teardown funnel: close pipes, kill a live child, then finish. */
  #shutdown(error: Error | null): void {
    const state = this.#state;
    if (state.kind === "finished") return;
    if (state.kind === "closing") {
      // A callback failed after close(): connectionLost gets the error.
      if (error !== null && state.error === null) {
        this.#setState({ kind: "closing", error });
        this.#pipes[0]?.abort();
      }
      return;
    }
    this.#setState({ kind: "closing", error });
    for (const pipe of this.#pipes) {
      if (pipe === null) continue;
      // A protocol that failed gets no more data: drop what stdin buffered.
      if (error !== null && pipe === this.#pipes[0]) pipe.abort();
      else pipe.close();
    }
    if (this.#returncode === null) {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // Exited already; the status promise reports it.
      }
    }
    this.#tryFinish();
  }

  /** connectionLost once the child exited and every pipe is closed. */
  #tryFinish(): void {
    const state = this.#state;
    if (state.kind === "starting" || state.kind === "finished") return;
    if (!this.#exitReported || this.#openPipes.size > 0) return;
    const error = state.kind === "closing" ? state.error : null;
    this.#setState({ kind: "finished" });
    callSoon(() => invokeConnectionLost(this, this.#protocol, error));
  }

  #gone(signal: string): Error {
    return new Deno.errors.NotFound(
      `Cannot send ${signal} to child process as it has exited: current value is returncode ${this.#returncode}`,
    );
  }
}

// ----------------------------------------------------------------- entry points

const STDIO = ["stdin", "stdout", "stderr"] as const;

function checkOptions(
  options: SubprocessOptions | undefined,
  action: string,
  shell: boolean,
): SubprocessOptions {
  assertOptions(options, action, true);
  const opts = options ?? {};
  if (opts.args !== undefined) {
    if (shell) {
      throw new TypeError(
        `Cannot ${action} as args is not supported: current value is ${
          describe(opts.args)
        }`,
      );
    }
    if (!Array.isArray(opts.args)) {
      throw new TypeError(
        `Cannot ${action} as args is not an array: current value is ${
          describe(opts.args)
        }`,
      );
    }
    for (const arg of opts.args) {
      if (typeof arg !== "string") {
        throw new TypeError(
          `Cannot ${action} as args holds a value that is not a string: current value is ${
            describe(arg)
          }`,
        );
      }
    }
  }
  if (
    opts.cwd !== undefined && typeof opts.cwd !== "string" &&
    !(opts.cwd instanceof URL)
  ) {
    throw new TypeError(
      `Cannot ${action} as cwd is not a string or URL: current value is ${
        describe(opts.cwd)
      }`,
    );
  }
  if (opts.env !== undefined) {
    if (opts.env === null || typeof opts.env !== "object") {
      throw new TypeError(
        `Cannot ${action} as env is not an object: current value is ${
          describe(opts.env)
        }`,
      );
    }
    for (const [key, value] of Object.entries(opts.env)) {
      if (typeof value !== "string") {
        throw new TypeError(
          `Cannot ${action} as env.${key} is not a string: current value is ${
            describe(value)
          }`,
        );
      }
    }
  }
  for (const name of STDIO) {
    const value = opts[name];
    if (
      value !== undefined && value !== "piped" && value !== "inherit" &&
      value !== "null"
    ) {
      throw new TypeError(
        `Cannot ${action} as ${name} is not "piped", "inherit" or "null": current value is ${
          describe(value)
        }`,
      );
    }
  }
  assertSignal(opts.signal, action);
  return opts;
}

async function spawn<P extends SubprocessProtocol>(
  protocolFactory: () => P,
  program: string,
  args: string[],
  options: SubprocessOptions,
  action: string,
): Promise<[SubprocessTransport, P]> {
  options.signal?.throwIfAborted();
  const protocol = makeProtocol(protocolFactory, action);
  const stdio = STDIO.map((name) => options[name] ?? "piped");
  const child = new Deno.Command(program, {
    args,
    ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    ...(options.env !== undefined ? { env: options.env } : {}),
    ...(options.signal !== undefined ? { signal: options.signal } : {}),
    stdin: stdio[0]!,
    stdout: stdio[1]!,
    stderr: stdio[2]!,
  }).spawn();
  const made = Promise.withResolvers<void>();
  const piped = [
    stdio[0] === "piped",
    stdio[1] === "piped",
    stdio[2] === "piped",
  ] as const;
  const transport = new ChildTransport(child, protocol, piped, made.resolve);
  await made.promise;
  return [transport, protocol];
}

/**
 * Runs `command` with `options.args` (no shell) and connects a protocol made
 * by `protocolFactory` to it, as asyncio's `loop.subprocess_exec()`.
 * Resolves once `connectionMade` has run.
 *
 * Callbacks, in asyncio's order: `connectionMade` first; per pipe,
 * `pipeDataReceived(fd, data)*` then `pipeConnectionLost(fd, error)`;
 * `processExited()` once the child exits (interleaved with the pipes'
 * events); `connectionLost(null)` last, once the child exited and every
 * pipe closed. With stdin piped, `pipeConnectionLost(0, …)` comes exactly
 * once: when the child exits, stdin is flushed and closed, so a write its
 * reader never took ends in `pipeConnectionLost(0, error)` (a
 * `Deno.errors.BrokenPipe`), never in a crash. `pauseWriting` and
 * `resumeWriting` are stdin's flow control.
 *
 * A callback that throws is fatal: the exception handler is told (the
 * message names the callback), the transport is closed (the child killed if
 * it runs) and, once the child is gone, `connectionLost(error)` is the only
 * callback left. The transport's `getReturncode()` is the exit code, or
 * minus the signal number if a signal ended the child (-9 after `kill()`).
 * `sendSignal()`, `terminate()` and `kill()` throw `Deno.errors.NotFound`
 * once the child has exited (asyncio's `ProcessLookupError`).
 * `getExtraInfo("subprocess")` is the `Deno.ChildProcess`.
 *
 * @typeParam P The protocol type.
 * @param protocolFactory Returns the {@linkcode SubprocessProtocol}.
 * @param command The program to run (looked up in `PATH`).
 * @param options Arguments, directory, environment and stdio.
 * @returns The subprocess transport and the protocol.
 * @throws {TypeError} If an argument has the wrong type or a stdio value is
 * unknown.
 * @throws {Deno.errors.NotFound} If the program does not exist.
 *
 * @example Run a program and collect its output
 * ```ts
 * import { subprocessExec } from "@denio/protocols";
 * import { assertEquals } from "@std/assert";
 *
 * let output = "";
 * const done = Promise.withResolvers<Error | null>();
 * const [transport] = await subprocessExec(() => ({
 *   pipeDataReceived(fd: 1 | 2, data: Uint8Array) {
 *     if (fd === 1) output += new TextDecoder().decode(data);
 *   },
 *   connectionLost: done.resolve,
 * }), "echo", { args: ["hello"], stdin: "null" });
 * assertEquals(await done.promise, null);
 * assertEquals(output, "hello\n");
 * assertEquals(transport.getReturncode(), 0);
 * ```
 */
export async function subprocessExec<P extends SubprocessProtocol>(
  protocolFactory: () => P,
  command: string,
  options?: SubprocessOptions,
): Promise<[SubprocessTransport, P]> {
  const action = "run subprocess";
  assertFactory(protocolFactory, action);
  if (typeof command !== "string" || command === "") {
    throw new TypeError(
      `Cannot ${action} as command is not a non-empty string: current value is ${
        describe(command)
      }`,
    );
  }
  const opts = checkOptions(options, action, false);
  return await spawn(protocolFactory, command, opts.args ?? [], opts, action);
}

/**
 * Runs `command` through the shell (`/bin/sh -c command`; `cmd.exe /d /s /c`
 * on Windows) and connects a protocol made by `protocolFactory` to it, as
 * asyncio's `loop.subprocess_shell()`. Everything else is as
 * {@linkcode subprocessExec}; `options.args` is not allowed (put them in
 * the command line, quoted for the shell).
 *
 * @typeParam P The protocol type.
 * @param protocolFactory Returns the {@linkcode SubprocessProtocol}.
 * @param command The shell command line.
 * @param options Directory, environment and stdio.
 * @returns The subprocess transport and the protocol.
 * @throws {TypeError} If an argument has the wrong type, `args` is given or
 * a stdio value is unknown.
 *
 * @example A shell command that writes to both streams and fails
 * ```ts
 * import { subprocessShell } from "@denio/protocols";
 * import { assertEquals } from "@std/assert";
 *
 * const seen: string[] = [];
 * const done = Promise.withResolvers<Error | null>();
 * const [transport] = await subprocessShell(() => ({
 *   pipeDataReceived(fd: 1 | 2, data: Uint8Array) {
 *     seen.push(`${fd}:${new TextDecoder().decode(data).trim()}`);
 *   },
 *   connectionLost: done.resolve,
 * }), "echo out; echo err >&2; exit 3", { stdin: "null" });
 * await done.promise;
 * assertEquals(seen.sort(), ["1:out", "2:err"]);
 * assertEquals(transport.getReturncode(), 3);
 * ```
 */
export async function subprocessShell<P extends SubprocessProtocol>(
  protocolFactory: () => P,
  command: string,
  options?: SubprocessOptions,
): Promise<[SubprocessTransport, P]> {
  const action = "run shell subprocess";
  assertFactory(protocolFactory, action);
  if (typeof command !== "string") {
    throw new TypeError(
      `Cannot ${action} as command is not a string: current value is ${
        describe(command)
      }`,
    );
  }
  const opts = checkOptions(options, action, true);
  const [shell, args] = Deno.build.os === "windows"
    ? ["cmd.exe", ["/d", "/s", "/c", command]]
    : ["/bin/sh", ["-c", command]];
  return await spawn(protocolFactory, shell, args, opts, action);
}

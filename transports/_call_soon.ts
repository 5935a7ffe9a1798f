// Copyright 2026 the denio authors. MIT license.
// The scheduling and callback-invocation helpers every transport shares:
// `callSoon` is asyncio's `loop.call_soon` (a queued microtask, FIFO), and
// `invokeCallback` is the one place a protocol callback is called, so a throw
// always reaches the transport's fatal-error path.

import type { BaseProtocol, BaseTransport } from "../mod.ts";
import { callExceptionHandler } from "./exception_handler.ts";

/** Runs `fn` from a queued microtask; a throw goes to the exception handler. */
export function callSoon(fn: () => void): void {
  queueMicrotask(() => {
    try {
      fn();
    } catch (error) {
      callExceptionHandler({
        message: "Exception in a callback scheduled with callSoon()",
        error,
      });
    }
  });
}

/** Called with the callback's name and what it threw. */
export type CallbackFailure = (name: string, error: unknown) => void;

/** The method key of a {@linkcode FailureHost} (internal). */
export const callbackFailed: unique symbol = Symbol("denio.callbackFailed");

/**
 * An object that takes a callback's failure itself (a transport), so that it
 * needs no closure of its own for invokeCallback.
 */
export interface FailureHost {
  /** As {@linkcode CallbackFailure}. */
  [callbackFailed](name: string, error: unknown): void;
}

function fail(
  onError: CallbackFailure | FailureHost,
  name: string,
  error: unknown,
): void {
  if (typeof onError === "function") onError(name, error);
  else onError[callbackFailed](name, error);
}

/**
 * Calls `protocol[name](a, b)` if the protocol has that callback. A throw is
 * handed to `onError` and `undefined` is returned instead. So is the
 * rejection of a promise the callback returns (an `async` callback), later:
 * it would otherwise be an unhandled rejection that ends the process; the
 * promise itself counts as `undefined`.
 */
export function invokeCallback(
  protocol: object,
  name: string,
  onError: CallbackFailure | FailureHost,
  a?: unknown,
  b?: unknown,
): unknown {
  try {
    const fn = (protocol as Record<string, unknown>)[name];
    if (fn === undefined || fn === null) return undefined;
    if (typeof fn !== "function") {
      throw new TypeError(
        `Cannot call protocol.${name} as it is not a function: current value is ${typeof fn}`,
      );
    }
    const result = fn.call(protocol, a, b);
    if (result instanceof Promise) {
      result.catch((error: unknown) => fail(onError, name, error));
      return undefined;
    }
    return result;
  } catch (error) {
    fail(onError, name, error);
    return undefined;
  }
}

/** Turns anything thrown into an Error, keeping the original as `cause`. */
export function toError(error: unknown): Error {
  if (error instanceof Error) return error;
  return new Error(`A non-Error value was thrown: ${String(error)}`, {
    cause: error,
  });
}

/**
 * Errors that mean the peer went away. asyncio logs these at debug level only
 * instead of calling the exception handler; they still reach connectionLost.
 */
export function isPeerGone(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.NotConnected ||
    error instanceof Deno.errors.UnexpectedEof;
}

/**
 * Calls `protocol.connectionLost(error)`. There is no transport left to
 * abort, so a throw only goes to the exception handler.
 */
export function invokeConnectionLost(
  transport: BaseTransport,
  protocol: BaseProtocol,
  error: Error | null,
): void {
  invokeCallback(
    protocol,
    "connectionLost",
    (name, thrown) =>
      callExceptionHandler({
        message: `Error in protocol.${name}() call`,
        error: thrown,
        transport,
        protocol,
      }),
    error,
  );
}

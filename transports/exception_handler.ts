// Copyright 2026 the denio authors. MIT license.
/**
 * The module-wide exception handler: where errors that have no caller to
 * reject go (a protocol callback that threw, a failed write with nobody
 * awaiting it). asyncio keeps one per event loop; Deno has one loop per
 * isolate, so denio keeps one per module instance.
 *
 * @module
 */

import type { BaseProtocol, BaseTransport } from "../mod.ts";
import { describe } from "./_validate.ts";

/** What the exception handler is told about an error. */
export interface ExceptionContext {
  /** A sentence that says what failed, naming the callback where one threw. */
  message: string;
  /** The error itself, when there is one. */
  error?: unknown;
  /** The transport the error happened on. */
  transport?: BaseTransport;
  /** The protocol of that transport. */
  protocol?: BaseProtocol;
}

/** A function that receives every {@linkcode ExceptionContext}. */
export type ExceptionHandler = (context: ExceptionContext) => void;

let currentHandler: ExceptionHandler | null = null;

/**
 * Replaces the exception handler. `null` restores the default, which writes
 * the message and the error's stack to stderr.
 *
 * @param handler The new handler, or `null` for the default.
 * @throws {TypeError} If `handler` is neither a function nor `null`.
 *
 * @example Collect errors instead of printing them
 * ```ts
 * import { callExceptionHandler, setExceptionHandler } from "@denio/protocols";
 * import { assertEquals } from "@std/assert";
 *
 * const seen: string[] = [];
 * setExceptionHandler((context) => seen.push(context.message));
 * callExceptionHandler({ message: "Something failed" });
 * setExceptionHandler(null);
 * assertEquals(seen, ["Something failed"]);
 * ```
 */
export function setExceptionHandler(handler: ExceptionHandler | null): void {
  if (handler !== null && typeof handler !== "function") {
    throw new TypeError(
      `Cannot set exception handler as it is not a function or null: current value is ${
        describe(handler)
      }`,
    );
  }
  currentHandler = handler;
}

/**
 * Hands `context` to the exception handler, synchronously. If the handler
 * itself throws, both errors go to the default handler (asyncio does the
 * same) and nothing is thrown to the caller.
 *
 * @param context What happened.
 * @throws {TypeError} If `context` has no string `message`.
 *
 * @example
 * ```ts
 * import { callExceptionHandler, setExceptionHandler } from "@denio/protocols";
 * import { assert } from "@std/assert";
 *
 * let got: unknown;
 * setExceptionHandler((context) => got = context.error);
 * const error = new Error("boom");
 * callExceptionHandler({ message: "Fatal error", error });
 * setExceptionHandler(null);
 * assert(got === error);
 * ```
 */
export function callExceptionHandler(context: ExceptionContext): void {
  if (
    context === null || typeof context !== "object" ||
    typeof context.message !== "string"
  ) {
    throw new TypeError(
      `Cannot call exception handler as context.message is not a string: current value is ${
        describe(context)
      }`,
    );
  }
  const handler = currentHandler;
  if (handler === null) {
    defaultExceptionHandler(context);
    return;
  }
  try {
    handler(context);
  } catch (error) {
    defaultExceptionHandler({
      message: "Unhandled error in exception handler",
      error,
    });
    defaultExceptionHandler(context);
  }
}

function defaultExceptionHandler(context: ExceptionContext): void {
  const lines = [context.message];
  if (context.error !== undefined) {
    const error = context.error;
    lines.push(
      error instanceof Error ? (error.stack ?? String(error)) : String(error),
    );
  }
  if (context.transport !== undefined) {
    lines.push(`transport: ${context.transport.constructor.name}`);
  }
  if (context.protocol !== undefined) {
    const name = context.protocol.constructor?.name ?? "Object";
    lines.push(`protocol: ${name}`);
  }
  try {
    console.error(lines.join("\n"));
  } catch {
    // stderr is gone: there is nowhere left to report to.
  }
}

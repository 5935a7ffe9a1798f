// Copyright 2026 the denio authors. MIT license.
// Exception-handler calls collected for the duration of a test body.

import { type ExceptionContext, setExceptionHandler } from "../mod.ts";

/** Runs `body` with a handler that collects every context; restores none after. */
export async function withHandler(
  body: (contexts: ExceptionContext[]) => Promise<void>,
): Promise<void> {
  const contexts: ExceptionContext[] = [];
  setExceptionHandler((context) => contexts.push(context));
  try {
    await body(contexts);
  } finally {
    setExceptionHandler(null);
  }
}

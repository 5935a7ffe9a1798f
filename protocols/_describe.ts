// Copyright 2026 the denio authors. MIT license.
// The value description in the argument errors of the stream adapters
// (streams.ts, web_streams.ts): "Cannot X as Y: current value is Z".

/** A short description of a value for error messages. */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "function") return "a function";
  if (typeof value === "object") {
    const name = (value as { constructor?: { name?: string } }).constructor
      ?.name;
    return name ? `a ${name}` : "an object";
  }
  return String(value);
}

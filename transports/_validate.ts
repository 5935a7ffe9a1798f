// Copyright 2026 the denio authors. MIT license.
// Argument checks shared by every entry point, with messages in Deno std's
// wording: "Cannot X as Y: current value is Z".

/** A short description of a value for error messages. */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "function") return "a function";
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "symbol") return value.toString();
  if (typeof value === "object") {
    const name = (value as { constructor?: { name?: string } }).constructor
      ?.name;
    return name ? `a ${name}` : "an object";
  }
  return String(value);
}

/** Throws a TypeError unless `data` is a Uint8Array. */
export function assertBytes(data: unknown, action: string): Uint8Array {
  if (!(data instanceof Uint8Array)) {
    throw new TypeError(
      `Cannot ${action} as data is not a Uint8Array: current value is ${
        describe(data)
      }`,
    );
  }
  return data;
}

/** Throws unless `factory` is a function. */
export function assertFactory(factory: unknown, action: string): void {
  if (typeof factory !== "function") {
    throw new TypeError(
      `Cannot ${action} as protocolFactory is not a function: current value is ${
        describe(factory)
      }`,
    );
  }
}

/** Throws unless `options` is an object (or, when allowed, undefined). */
export function assertOptions(
  options: unknown,
  action: string,
  optional: boolean,
): void {
  if (options === undefined && optional) return;
  if (options === null || typeof options !== "object") {
    throw new TypeError(
      `Cannot ${action} as options is not an object: current value is ${
        describe(options)
      }`,
    );
  }
}

/** Throws unless `port` is an integer from `min` to 65535. */
export function assertPort(port: unknown, action: string, min: number): number {
  if (typeof port !== "number") {
    throw new TypeError(
      `Cannot ${action} as port is not a number: current value is ${
        describe(port)
      }`,
    );
  }
  if (!Number.isInteger(port) || port < min || port > 65535) {
    throw new RangeError(
      `Cannot ${action} as port is not an integer from ${min} to 65535: current value is ${port}`,
    );
  }
  return port;
}

/** Throws unless `value` is a string (or undefined when optional). */
export function assertString(
  value: unknown,
  name: string,
  action: string,
): void {
  if (value !== undefined && typeof value !== "string") {
    throw new TypeError(
      `Cannot ${action} as ${name} is not a string: current value is ${
        describe(value)
      }`,
    );
  }
}

/** Throws unless `signal` is an AbortSignal (or undefined). */
export function assertSignal(signal: unknown, action: string): void {
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(
      `Cannot ${action} as signal is not an AbortSignal: current value is ${
        describe(signal)
      }`,
    );
  }
}

/** Throws unless `protocol` is an object; returns it. */
export function checkProtocol<P>(protocol: P): P {
  if (protocol === null || typeof protocol !== "object") {
    throw new TypeError(
      `Cannot set protocol as it is not an object: current value is ${
        describe(protocol)
      }`,
    );
  }
  return protocol;
}

/**
 * Checks an idle timeout in milliseconds: a finite number >= 0, or (when
 * `nullable`) null; `0` and `null` both mean none and come back as `null`.
 */
export function checkIdleTimeout(
  value: unknown,
  action: string,
  nullable: boolean,
): number | null {
  if (value === null && nullable) return null;
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot ${action} as idleTimeout is not a number${
        nullable ? " or null" : ""
      }: current value is ${describe(value)}`,
    );
  }
  if (!Number.isFinite(value) || value < 0) {
    throw new RangeError(
      `Cannot ${action} as idleTimeout is not a finite number of milliseconds >= 0: current value is ${value}`,
    );
  }
  return value === 0 ? null : value;
}

/** Throws unless `value` is a boolean (or undefined). */
export function assertBoolean(
  value: unknown,
  name: string,
  action: string,
): void {
  if (value !== undefined && typeof value !== "boolean") {
    throw new TypeError(
      `Cannot ${action} as ${name} is not a boolean: current value is ${
        describe(value)
      }`,
    );
  }
}

/** Throws unless `value` is an integer >= 1 (or undefined). */
export function assertPositiveInteger(
  value: unknown,
  name: string,
  action: string,
): void {
  if (value === undefined) return;
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot ${action} as ${name} is not a number: current value is ${
        describe(value)
      }`,
    );
  }
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(
      `Cannot ${action} as ${name} is not an integer >= 1: current value is ${value}`,
    );
  }
}

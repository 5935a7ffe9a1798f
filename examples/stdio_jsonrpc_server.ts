// Copyright 2026 the denio authors. MIT license.
/**
 * A JSON-RPC 2.0 server on stdin and stdout, framed as the Language Server
 * Protocol frames its messages (`Content-Length: N\r\n\r\n` then N bytes of
 * JSON), the way an editor talks to a language server.
 *
 * It reads stdin with `connectReadPipe(Deno.stdin)` into a
 * {@linkcode ContentLengthProtocol} and writes its replies through a
 * `connectWritePipe(Deno.stdout)` transport (the protocol's `writeTransport`
 * option), so both directions have the library's flow control.
 *
 * Methods:
 * - `add` — `[a, b]` or `{ "a": a, "b": b }`, two numbers: their sum.
 * - `echo` — returns its params as they are.
 * - `shutdown` — returns `null`; later requests get an Invalid Request error.
 * - `exit` (a notification) — the server exits: code 0 after `shutdown`,
 *   1 without, as an LSP server does. EOF on stdin also ends it (code 0).
 *
 * Errors are JSON-RPC's: -32700 parse error (id null), -32600 invalid
 * request, -32601 method not found, -32602 invalid params. Notifications (no
 * `id`) get no reply; batches (arrays) get an array of the replies.
 *
 * ```sh
 * printf 'Content-Length: 54\r\n\r\n{"jsonrpc":"2.0","id":1,"method":"add","params":[2,3]}' \
 *   | deno run examples/stdio_jsonrpc_server.ts
 * # Content-Length: 35
 * #
 * # {"jsonrpc":"2.0","id":1,"result":5}
 * ```
 *
 * `examples/stdio_jsonrpc_client.ts` starts it as a subprocess and calls it.
 *
 * @module
 */

import {
  connectReadPipe,
  connectWritePipe,
  ContentLengthProtocol,
} from "@denio/protocols";

/** A JSON-RPC id: a string, a number, or null. */
export type JsonRpcId = string | number | null;

/** A JSON-RPC 2.0 response object. */
export interface JsonRpcResponse {
  /** Always "2.0". */
  jsonrpc: "2.0";
  /** The request's id (null when it could not be read). */
  id: JsonRpcId;
  /** The result, on success. */
  result?: unknown;
  /** The error, on failure. */
  error?: { code: number; message: string; data?: unknown };
}

/** What the server remembers between messages. */
export interface JsonRpcState {
  /** Whether `shutdown` was called. */
  shutdown: boolean;
  /** Set by `exit`: the code the process should exit with. */
  exitCode: number | null;
}

/** The JSON-RPC 2.0 error codes used here. */
export const ErrorCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
} as const;

function failure(
  id: JsonRpcId,
  code: number,
  message: string,
  data?: unknown,
): JsonRpcResponse {
  return {
    jsonrpc: "2.0",
    id,
    error: data === undefined ? { code, message } : { code, message, data },
  };
}

function isId(value: unknown): value is JsonRpcId {
  return value === null || typeof value === "string" ||
    (typeof value === "number" && Number.isFinite(value));
}

/** Reads `a` and `b` from `[a, b]` or `{ a, b }`; null if not two numbers. */
function operands(params: unknown): [number, number] | null {
  const [a, b] = Array.isArray(params)
    ? (params.length === 2 ? params : [])
    : typeof params === "object" && params !== null
    ? [(params as { a?: unknown }).a, (params as { b?: unknown }).b]
    : [];
  return typeof a === "number" && typeof b === "number" ? [a, b] : null;
}

/**
 * Handles one request or notification object. Returns the response, or null
 * for a notification (which never gets one, errors included).
 */
function handleOne(
  request: unknown,
  state: JsonRpcState,
): JsonRpcResponse | null {
  if (
    typeof request !== "object" || request === null || Array.isArray(request)
  ) {
    return failure(null, ErrorCode.InvalidRequest, "Invalid Request");
  }
  const { jsonrpc, method, params } = request as Record<string, unknown>;
  const hasId = Object.hasOwn(request, "id");
  const rawId = (request as { id?: unknown }).id;
  const id = hasId && isId(rawId) ? rawId : null;
  if (
    jsonrpc !== "2.0" || typeof method !== "string" ||
    (hasId && !isId(rawId)) ||
    (params !== undefined && (typeof params !== "object" || params === null))
  ) {
    return failure(id, ErrorCode.InvalidRequest, "Invalid Request");
  }
  const reply = (response: JsonRpcResponse) => hasId ? response : null;
  if (state.shutdown && method !== "exit") {
    return reply(
      failure(id, ErrorCode.InvalidRequest, "Server is shutting down"),
    );
  }
  switch (method) {
    case "add": {
      const pair = operands(params);
      if (pair === null) {
        return reply(
          failure(
            id,
            ErrorCode.InvalidParams,
            "Invalid params",
            "add takes [a, b] or {a, b}, two numbers",
          ),
        );
      }
      return reply({ jsonrpc: "2.0", id, result: pair[0] + pair[1] });
    }
    case "echo":
      return reply({ jsonrpc: "2.0", id, result: params ?? null });
    case "shutdown":
      state.shutdown = true;
      return reply({ jsonrpc: "2.0", id, result: null });
    case "exit":
      state.exitCode = state.shutdown ? 0 : 1;
      return reply({ jsonrpc: "2.0", id, result: null });
    default:
      return reply(
        failure(id, ErrorCode.MethodNotFound, "Method not found", method),
      );
  }
}

/**
 * Handles one message body (a request, a notification or a batch) and
 * returns the reply text, or null when nothing is to be sent.
 *
 * @param body The JSON text.
 * @param state The server's state (updated by `shutdown` and `exit`).
 * @returns The JSON reply, or null.
 */
export function handleMessage(
  body: string,
  state: JsonRpcState,
): string | null {
  let message: unknown;
  try {
    message = JSON.parse(body);
  } catch (error) {
    return JSON.stringify(
      failure(null, ErrorCode.ParseError, "Parse error", String(error)),
    );
  }
  if (!Array.isArray(message)) {
    const response = handleOne(message, state);
    return response === null ? null : JSON.stringify(response);
  }
  if (message.length === 0) {
    return JSON.stringify(
      failure(null, ErrorCode.InvalidRequest, "Invalid Request"),
    );
  }
  const responses = message.map((one) => handleOne(one, state))
    .filter((response) => response !== null);
  return responses.length === 0 ? null : JSON.stringify(responses);
}

/**
 * Serves JSON-RPC on stdin/stdout until `exit` or EOF on stdin.
 *
 * @returns The exit code.
 */
export async function serveStdio(): Promise<number> {
  const state: JsonRpcState = { shutdown: false, exitCode: null };
  const decoder = new TextDecoder();
  const done = Promise.withResolvers<number>();
  let failed = false;
  const [stdout] = await connectWritePipe(() => ({
    connectionLost(error: Error | null) {
      // Every reply is flushed (or stdout is gone): the process can end.
      if (error !== null) failed = true;
      done.resolve(state.exitCode ?? (failed ? 1 : 0));
    },
  }), Deno.stdout);
  await connectReadPipe(() =>
    new ContentLengthProtocol({
      messageReceived(body, framer) {
        const reply = handleMessage(decoder.decode(body), state);
        if (reply !== null) framer.sendMessage(reply);
        if (state.exitCode !== null) framer.transport!.close();
      },
      connectionLost(error) {
        // stdin ended, `exit` closed it, or the framing broke (a
        // FramingError: nothing sane can be replied to that).
        if (error !== null) {
          failed = true;
          console.error(`stdio_jsonrpc_server: ${error.message}`);
        }
        stdout.close();
      },
    }, { writeTransport: stdout }), Deno.stdin);
  return await done.promise;
}

if (import.meta.main) {
  Deno.exit(await serveStdio());
}

// Copyright 2026 the denio authors. MIT license.
/**
 * Starts `examples/stdio_jsonrpc_server.ts` as a subprocess with
 * `subprocessExec(Deno.execPath(), …)` and calls it over the child's stdin
 * and stdout in the LSP framing (`Content-Length` headers), printing each
 * result.
 *
 * The subprocess protocol feeds the child's stdout to a
 * {@linkcode ContentLengthProtocol} (`feed()`), which writes requests to the
 * child's stdin (its `writeTransport` option).
 *
 * ```sh
 * deno run --allow-run examples/stdio_jsonrpc_client.ts
 * ```
 *
 * @module
 */

import {
  ContentLengthProtocol,
  subprocessExec,
  type SubprocessProtocol,
  type SubprocessTransport,
  type WriteTransport,
} from "@denio/protocols";

/** A JSON-RPC error reply, as an exception. */
export class JsonRpcError extends Error {
  /** The JSON-RPC error code. */
  readonly code: number;
  /** The error's `data`, if any. */
  readonly data: unknown;

  constructor(error: { code: number; message: string; data?: unknown }) {
    super(error.message);
    this.name = "JsonRpcError";
    this.code = error.code;
    this.data = error.data;
  }
}

interface Response {
  id?: unknown;
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
}

/**
 * The client side: a {@linkcode SubprocessProtocol} that frames requests to
 * the child's stdin and matches the replies on its stdout to their ids.
 */
export class JsonRpcClient implements SubprocessProtocol {
  /** Resolves once the child exited and its pipes closed. */
  readonly closed: PromiseWithResolvers<Error | null> = Promise
    .withResolvers();
  #framer: ContentLengthProtocol | null = null;
  #transport: SubprocessTransport | null = null;
  #pending = new Map<number, PromiseWithResolvers<unknown>>();
  #nextId = 1;
  #decoder = new TextDecoder();

  connectionMade(transport: SubprocessTransport): void {
    this.#transport = transport;
    this.#framer = new ContentLengthProtocol({
      messageReceived: (body) => this.#received(body),
    }, { writeTransport: transport.getPipeTransport(0) as WriteTransport });
  }

  pipeDataReceived(fd: 1 | 2, data: Uint8Array): void {
    if (fd === 2) return;
    try {
      this.#framer!.feed(data);
    } catch (error) {
      // A FramingError: the server's output is not LSP-framed.
      this.#failAll(error as Error);
      this.#transport!.kill();
    }
  }

  pipeConnectionLost(fd: 0 | 1 | 2, error: Error | null): void {
    if (fd !== 1) return;
    if (this.#framer!.pendingSize > 0) {
      this.#failAll(new Error("The server's stdout ended inside a message"));
    }
    this.#failAll(error ?? new Error("The server closed its stdout"));
  }

  connectionLost(error: Error | null): void {
    this.#failAll(error ?? new Error("The server exited"));
    this.closed.resolve(error);
  }

  /**
   * Calls `method` and resolves to its result.
   *
   * @param method The method name.
   * @param params The params (an array or an object).
   * @returns The result; a JSON-RPC error rejects with a {@linkcode JsonRpcError}.
   */
  call(method: string, params?: unknown): Promise<unknown> {
    const id = this.#nextId++;
    const reply = Promise.withResolvers<unknown>();
    this.#pending.set(id, reply);
    this.#send({ jsonrpc: "2.0", id, method, params });
    return reply.promise;
  }

  /**
   * Sends a batch of calls in one message; resolves to their results (or
   * {@linkcode JsonRpcError}s) in order.
   *
   * @param calls The `[method, params]` pairs.
   * @returns The results, in the order of `calls`.
   */
  batch(calls: [string, unknown?][]): Promise<unknown[]> {
    const replies = calls.map(([method, params]) => {
      const id = this.#nextId++;
      const reply = Promise.withResolvers<unknown>();
      this.#pending.set(id, reply);
      return { request: { jsonrpc: "2.0", id, method, params }, reply };
    });
    this.#send(replies.map(({ request }) => request));
    return Promise.all(
      replies.map(({ reply }) => reply.promise.catch((error) => error)),
    );
  }

  /**
   * Sends a notification (no reply).
   *
   * @param method The method name.
   * @param params The params.
   */
  notify(method: string, params?: unknown): void {
    this.#send({ jsonrpc: "2.0", method, params });
  }

  #send(message: unknown): void {
    this.#framer!.sendMessage(JSON.stringify(message));
  }

  #received(body: Uint8Array): void {
    const message = JSON.parse(this.#decoder.decode(body)) as
      | Response
      | Response[];
    for (const response of Array.isArray(message) ? message : [message]) {
      const reply = this.#pending.get(response.id as number);
      if (reply === undefined) {
        console.error("unexpected reply:", response);
        continue;
      }
      this.#pending.delete(response.id as number);
      if (response.error !== undefined) {
        reply.reject(new JsonRpcError(response.error));
      } else {
        reply.resolve(response.result);
      }
    }
  }

  #failAll(error: Error): void {
    for (const reply of this.#pending.values()) reply.reject(error);
    this.#pending.clear();
  }
}

/**
 * Starts the server with `deno run` and returns its transport and a client.
 *
 * @param serverPath The server script.
 * @returns The subprocess transport and the client protocol.
 */
export function startServer(
  serverPath: string = new URL("./stdio_jsonrpc_server.ts", import.meta.url)
    .pathname,
): Promise<[SubprocessTransport, JsonRpcClient]> {
  return subprocessExec(() => new JsonRpcClient(), Deno.execPath(), {
    args: ["run", "--quiet", serverPath],
    stderr: "inherit",
  });
}

function show(value: unknown): string {
  if (value instanceof JsonRpcError) {
    return `error ${value.code} ${value.message}`;
  }
  return JSON.stringify(value);
}

if (import.meta.main) {
  const [transport, client] = await startServer();
  console.log(`add(2, 3) = ${show(await client.call("add", [2, 3]))}`);
  console.log(
    `add({a: 1.5, b: 2}) = ${show(await client.call("add", { a: 1.5, b: 2 }))}`,
  );
  console.log(
    `echo(["héllo, wörld"]) = ${
      show(await client.call("echo", ["héllo, wörld"]))
    }`,
  );
  client.notify("echo", ["a notification gets no reply"]);
  const batch = await client.batch([["add", [1, 2]], ["nope"], [
    "echo",
    { ok: true },
  ]]);
  console.log(
    `batch [add(1, 2), nope(), echo({ok: true})] = [${
      batch.map(show).join(", ")
    }]`,
  );
  for (
    const [method, params] of [["subtract", [5, 3]], ["add", ["x", 1]]] as const
  ) {
    try {
      await client.call(method, params);
    } catch (error) {
      console.log(
        `${method}(${JSON.stringify(params).slice(1, -1)}) -> ${show(error)}`,
      );
    }
  }
  console.log(`shutdown() = ${show(await client.call("shutdown"))}`);
  client.notify("exit");
  await client.closed.promise;
  console.log(`server exited with code ${transport.getReturncode()}`);
}

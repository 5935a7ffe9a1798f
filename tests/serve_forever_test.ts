// Copyright 2026 the denio authors. MIT license.
// Server.serveForever() called again while one is pending: asyncio's
// Server.serve_forever() raises RuntimeError("server ... is already being
// awaited on serve_forever()") at once; denio rejects at once with an Error.

import { assertEquals, assertRejects } from "@std/assert";
import { createConnection, createServer, type Protocol } from "../mod.ts";
import { within } from "./_stream_helpers.ts";

const ALREADY =
  "Cannot serve forever as the server is already being awaited on serveForever()";
const CLOSED = "Cannot serve forever as the server is closed";

/** `promise`, bounded: a serveForever() that never settles fails the test. */
function refusal(promise: Promise<void>): Promise<void> {
  return within(promise, "serveForever() to reject at once");
}

/** Settles to "pending" unless `promise` settled within a macrotask. */
async function stateOf(promise: Promise<unknown>): Promise<string> {
  const tick = new Promise<string>((resolve) =>
    setTimeout(resolve, 0, "pending")
  );
  return await Promise.race([
    promise.then(() => "resolved", () => "rejected"),
    tick,
  ]);
}

Deno.test("Server.serveForever() while another is pending rejects at once; the first keeps serving and resolves on close()", async () => {
  const server = await createServer(
    (): Protocol => ({
      connectionMade(transport) {
        transport.write(new TextEncoder().encode("hi"));
        transport.close();
      },
    }),
    { hostname: "127.0.0.1", port: 0, startServing: false },
  );
  const first = server.serveForever();
  assertEquals(server.isServing(), true);
  await assertRejects(() => refusal(server.serveForever()), Error, ALREADY);
  // A third try is refused the same way, and the first is untouched.
  await assertRejects(() => refusal(server.serveForever()), Error, ALREADY);
  assertEquals(await stateOf(first), "pending");
  assertEquals(server.isServing(), true);

  // The first one still serves: a client gets its greeting.
  const { port } = server.addrs[0] as Deno.NetAddr;
  const got = Promise.withResolvers<string>();
  const [transport] = await createConnection((): Protocol => {
    let text = "";
    return {
      dataReceived(data) {
        text += new TextDecoder().decode(data);
      },
      connectionLost() {
        got.resolve(text);
      },
    };
  }, { hostname: "127.0.0.1", port });
  assertEquals(await within(got.promise, "the greeting"), "hi");
  transport.close();

  server.close();
  await within(first, "the first serveForever() to resolve");
  // Once closed, asyncio's next serve_forever() says the server is closed.
  await assertRejects(() => server.serveForever(), Error, CLOSED);
  await server.waitClosed();
});

Deno.test("Server.serveForever() on a server that serves already (startServing() first) is one pending call like any other", async () => {
  const server = await createServer((): Protocol => ({}), {
    hostname: "127.0.0.1",
    port: 0,
  });
  server.startServing(); // idempotent, as asyncio's start_serving()
  const first = server.serveForever();
  await assertRejects(() => refusal(server.serveForever()), Error, ALREADY);
  server.close();
  await within(first, "serveForever() to resolve");
  await server.waitClosed();
});

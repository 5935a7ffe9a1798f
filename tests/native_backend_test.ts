// Copyright 2026 the denio authors. MIT license.
// The stream-transport and reliability suites again, over the native
// reactor: _native_default.ts (imported first, so it runs before the suites
// register their tests) makes "auto" the default backend, so every
// createServer/createConnection without a `backend` option (and without
// TLS) uses the native reactor. Native-only tests are in native_test.ts.

import "./_native_default.ts";
import { assert } from "@std/assert";
import { createConnection, createServer } from "../mod.ts";
import { NativeConn } from "../transports/_native_io.ts";

import "./stream_transport_test.ts";
import "./reliability_test.ts";
import "./faults_test.ts";
import "./throwing_protocols_test.ts";
import "./bad_input_test.ts";
import "./server_test.ts";
import "./connection_test.ts";
// TLS itself stays on Deno's API ("auto"); startTls() upgrades native connections.
import "./tls_test.ts";

Deno.test("[native default] createServer() and createConnection() without a backend option run on the native reactor here", async () => {
  await using server = await createServer(() => ({}), {
    hostname: "127.0.0.1",
    port: 0,
  });
  const { port } = server.addrs[0] as Deno.NetAddr;
  const [transport] = await createConnection(() => ({}), { port });
  try {
    assert(
      transport.getExtraInfo("socket") instanceof NativeConn,
      "the suites above would not exercise the native backend",
    );
  } finally {
    transport.close();
  }
});

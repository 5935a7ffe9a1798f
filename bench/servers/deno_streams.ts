// Copyright 2026 the denio authors. MIT license.
// Echo server: Deno web streams, conn.readable.pipeTo(conn.writable).
// Usage: deno run -A bench/servers/deno_streams.ts

import { announce } from "./_args.ts";

const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
announce(listener.addr);
for await (const conn of listener) {
  conn.setNoDelay(true);
  conn.readable.pipeTo(conn.writable).catch(() => {
    // The client went away.
  });
}

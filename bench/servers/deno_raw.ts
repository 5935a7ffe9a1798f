// Copyright 2026 the denio authors. MIT license.
// Echo server: the raw Deno loop, conn.read() then conn.write() until all is
// written, one async loop per connection, a 64 KiB buffer each (or
// `--buffer BYTES`).
// Usage: deno run -A bench/servers/deno_raw.ts [--tls CERT KEY] [--buffer BYTES]

import { announce, tlsArgs } from "./_args.ts";

const at = Deno.args.indexOf("--buffer");
const BUFFER_SIZE = at >= 0 ? Number(Deno.args[at + 1]) : 64 * 1024;

async function echo(conn: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(BUFFER_SIZE);
  try {
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      let written = 0;
      while (written < n) {
        written += await conn.write(buffer.subarray(written, n));
      }
    }
  } catch {
    // The client went away.
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}

const tls = tlsArgs();
const listener = tls
  ? Deno.listenTls({ hostname: "127.0.0.1", port: 0, ...tls })
  : Deno.listen({ hostname: "127.0.0.1", port: 0 });
announce(listener.addr);
for await (const conn of listener) {
  if (!tls) (conn as Deno.TcpConn).setNoDelay(true);
  echo(conn);
}

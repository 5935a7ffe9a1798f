// Copyright 2026 the denio authors. MIT license.
// Echo server: the raw loop of deno_raw.ts (read, then write until all is
// written, one async loop per connection, a 64 KiB buffer each) over denio's
// native reactor instead of Deno.Conn: the floor of the native backend.
// Usage: deno run -A bench/servers/native_raw.ts

import { listenNative, type NativeConn } from "../../transports/_native_io.ts";
import { announce } from "./_args.ts";

async function echo(conn: NativeConn): Promise<void> {
  const buffer = new Uint8Array(64 * 1024);
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
    conn.close();
  }
}

const listener = await listenNative({
  transport: "tcp",
  hostname: "127.0.0.1",
  port: 0,
});
announce(listener.addr);
for (;;) {
  const conn = await listener.accept();
  conn.setNoDelay(true);
  echo(conn);
}

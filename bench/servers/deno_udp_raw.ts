// Copyright 2026 the denio authors. MIT license.
// UDP echo server: the raw Deno loop, receive() then send().
// Usage: deno run -A --unstable-net bench/servers/deno_udp_raw.ts

import { announce } from "./_args.ts";

const socket = Deno.listenDatagram({
  hostname: "127.0.0.1",
  port: 0,
  transport: "udp",
});
announce(socket.addr);
for (;;) {
  const [data, addr] = await socket.receive();
  try {
    await socket.send(data, addr);
  } catch {
    // A full socket buffer drops the datagram, as UDP does.
  }
}

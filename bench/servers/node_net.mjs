// Copyright 2026 the denio authors. MIT license.
// Echo server: Node's net module, socket.pipe(socket).
// Usage: node bench/servers/node_net.mjs

import net from "node:net";

const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  socket.on("error", () => {});
  socket.pipe(socket);
});
server.listen(0, "127.0.0.1", () => {
  console.log(`LISTENING ${server.address().port}`);
});

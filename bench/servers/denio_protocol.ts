// Copyright 2026 the denio authors. MIT license.
// Echo server: a denio Protocol whose dataReceived writes the data back.
// Usage: deno run -A bench/servers/denio_protocol.ts [--tls CERT KEY] [--native]

import { createServer, type Protocol, type Transport } from "../../mod.ts";
import { announce, backendArg, tlsArgs } from "./_args.ts";

class Echo implements Protocol {
  #transport: Transport | undefined;
  connectionMade(transport: Transport): void {
    this.#transport = transport;
  }
  dataReceived(data: Uint8Array): void {
    this.#transport!.write(data);
  }
}

const tls = tlsArgs();
const server = await createServer(() => new Echo(), {
  hostname: "127.0.0.1",
  port: 0,
  ...(tls ? { tls } : {}),
  backend: backendArg(),
});
announce(server.addrs[0]!);
await server.serveForever();

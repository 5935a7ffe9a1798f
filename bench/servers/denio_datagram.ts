// Copyright 2026 the denio authors. MIT license.
// UDP echo server: a denio DatagramProtocol that sends each datagram back.
// Usage: deno run -A --unstable-net bench/servers/denio_datagram.ts

import * as denio from "../../mod.ts";
import { announce } from "./_args.ts";

// Looked up at run time so the suite still type-checks and reports "absent"
// while transports/datagram.ts is not exported yet.
const create = (denio as Record<string, unknown>).createDatagramEndpoint;
if (typeof create !== "function") {
  console.log("ABSENT createDatagramEndpoint is not exported by mod.ts yet");
  Deno.exit(3);
}
const createDatagramEndpoint = create as (
  factory: () => denio.DatagramProtocol,
  options: { localAddr: { hostname: string; port: number } },
) => Promise<[denio.DatagramTransport, denio.DatagramProtocol]>;

class Echo implements denio.DatagramProtocol {
  #transport: denio.DatagramTransport | undefined;
  connectionMade(transport: denio.DatagramTransport): void {
    this.#transport = transport;
  }
  datagramReceived(data: Uint8Array, addr: Deno.Addr): void {
    this.#transport!.sendto(data, addr);
  }
}

const [transport] = await createDatagramEndpoint(() => new Echo(), {
  localAddr: { hostname: "127.0.0.1", port: 0 },
});
announce(transport.getExtraInfo("sockname") as Deno.Addr);

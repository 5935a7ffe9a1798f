// Copyright 2026 the denio authors. MIT license.
// Echo server: a denio Protocol whose dataReceived writes the data back.
// Usage: deno run -A --unstable-net bench/servers/denio_protocol.ts
//          [--tls CERT KEY] [--native] [--idle-timeout MS] [--processes N]
// --idle-timeout sets ServeOptions.idleTimeout (the cost of the idle timer on
// a busy connection); --processes N starts N workers of this script on one
// port with reusePort and announces the port once all of them listen.

import { createServer, type Protocol, type Transport } from "../../mod.ts";
import { announce, backendArg, numberArg, tlsArgs } from "./_args.ts";

class Echo implements Protocol {
  #transport: Transport | undefined;
  connectionMade(transport: Transport): void {
    this.#transport = transport;
  }
  dataReceived(data: Uint8Array): void {
    this.#transport!.write(data);
  }
}

const processes = numberArg("--processes");
const worker = Deno.args.includes("--worker");
const port = numberArg("--port") ?? 0;
if (processes !== undefined && !worker) {
  // Hold a port for the workers, then hand over to them.
  const holder = Deno.listen({
    hostname: "127.0.0.1",
    port,
    reusePort: true,
  } as Deno.TcpListenOptions);
  const shared = (holder.addr as Deno.NetAddr).port;
  const workers = Array.from(
    { length: processes },
    () =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--quiet",
          "--unstable-net",
          import.meta.filename!,
          ...Deno.args.filter((arg, i, all) =>
            arg !== "--processes" && all[i - 1] !== "--processes"
          ),
          "--port",
          String(shared),
          "--worker",
        ],
        // A worker ends when this process does, however it ends: its
        // stdin closes.
        stdin: "piped",
        stdout: "piped",
      }).spawn(),
  );
  for (const worker of workers) {
    const reader = worker.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    const { value } = await reader.read();
    if (!value?.startsWith("LISTENING")) throw new Error(`worker: ${value}`);
    reader.releaseLock();
  }
  holder.close();
  announce(holder.addr);
  Deno.addSignalListener("SIGTERM", () => {
    for (const worker of workers) worker.kill("SIGTERM");
    Deno.exit(0);
  });
  await Promise.all(workers.map((worker) => worker.status));
} else {
  const tls = tlsArgs();
  const idleTimeout = numberArg("--idle-timeout");
  const server = await createServer(() => new Echo(), {
    hostname: "127.0.0.1",
    port,
    ...(tls ? { tls } : {}),
    ...(idleTimeout ? { idleTimeout } : {}),
    ...(worker ? { reusePort: true } : {}),
    backend: backendArg(),
  });
  announce(server.addrs[0]!);
  if (worker) {
    // Stop when the parent is gone (its end of our stdin closes).
    Deno.stdin.readable.pipeTo(new WritableStream()).finally(() =>
      Deno.exit(0)
    );
  }
  await server.serveForever();
}

// Copyright 2026 the denio authors. MIT license.
// What the Deno echo servers share: `--tls CERT KEY` on the command line, and
// the "LISTENING <port>" line bench/run.ts waits for.

/** The PEM certificate and key given with `--tls CERT KEY`, if any. */
export function tlsArgs(): { cert: string; key: string } | undefined {
  const at = Deno.args.indexOf("--tls");
  if (at < 0) return undefined;
  return {
    cert: Deno.readTextFileSync(Deno.args[at + 1]!),
    key: Deno.readTextFileSync(Deno.args[at + 2]!),
  };
}

/** Tells bench/run.ts the server is ready. */
export function announce(addr: Deno.Addr): void {
  console.log(`LISTENING ${(addr as Deno.NetAddr).port}`);
}

/** The number after `flag` on the command line, if the flag is there. */
export function numberArg(flag: string): number | undefined {
  const at = Deno.args.indexOf(flag);
  if (at < 0) return undefined;
  const value = Number(Deno.args[at + 1]);
  if (!Number.isFinite(value)) throw new TypeError(`${flag} needs a number`);
  return value;
}

/** `--native` on the command line picks denio's native reactor. */
export function backendArg(): "native" | "deno" {
  return Deno.args.includes("--native") ? "native" : "deno";
}

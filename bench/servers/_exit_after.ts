// Copyright 2026 the denio authors. MIT license.
// Runs a server script and exits cleanly after SECONDS, so that `--cpu-prof`
// writes its profile (it does on Deno.exit, not on a signal).
// Usage: deno run -A --cpu-prof bench/servers/_exit_after.ts SECONDS SCRIPT [ARG…]

const seconds = Number(Deno.args[0]);
const script = new URL(Deno.args[1]!, `file://${Deno.cwd()}/`).href;
setTimeout(() => Deno.exit(0), seconds * 1000);
await import(script);

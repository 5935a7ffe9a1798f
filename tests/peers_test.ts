// Copyright 2026 the denio authors. MIT license.
// tests/_peers.ts: the probe for optional programs never throws, says why,
// caches, and prints a reason once, also without --allow-run or --allow-env.
// Each case runs in a child deno (so its printed reasons stay out of this
// run's output, and permissions can be withheld).

import { assertEquals } from "@std/assert";

const PEERS = new URL("./_peers.ts", import.meta.url).href;

/**
 * Runs a child deno with `flags` that calls commandMissing(command, args)
 * for each probe in turn; returns what it printed, one line per print.
 */
async function probeInChild(
  flags: string[],
  probes: [string, string[]][],
): Promise<string[]> {
  const script = `
import { commandMissing } from ${JSON.stringify(PEERS)};
for (const [command, args] of ${JSON.stringify(probes)}) {
  console.log("result: " + JSON.stringify(commandMissing(command, args)));
}
`;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    // `deno eval` would grant every permission: run a data: module instead.
    args: [
      "run",
      "--no-config",
      ...flags,
      `data:application/typescript;base64,${btoa(script)}`,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const decoder = new TextDecoder();
  assertEquals(code, 0, decoder.decode(stderr));
  return decoder.decode(stdout).trimEnd().split("\n");
}

Deno.test("commandMissing(): a program not on PATH, one that fails, one that runs; cached, each reason printed once", async () => {
  const absent = "denio-test-no-such-program";
  const lines = await probeInChild(["--allow-run", "--allow-env"], [
    [absent, ["--version"]],
    ["sh", ["-c", "exit 3"]],
    ["sh", ["-c", "exit 0"]],
    [absent, ["--version"]],
    ["sh", ["-c", "exit 3"]],
  ]);
  const notOnPath = `${absent} is not on PATH (install it)`;
  const exited = "`sh -c exit 3` exited with code 3";
  assertEquals(lines, [
    `skipping tests that need ${absent}: ${notOnPath}`,
    `result: ${JSON.stringify(notOnPath)}`,
    `skipping tests that need sh: ${exited}`,
    `result: ${JSON.stringify(exited)}`,
    "result: null",
    `result: ${JSON.stringify(notOnPath)}`,
    `result: ${JSON.stringify(exited)}`,
  ]);
});

Deno.test("commandMissing() without --allow-run says so instead of throwing, and prints it once", async () => {
  const reason =
    "no permission to run sh (run the tests with --allow-run or --allow-all)";
  const lines = await probeInChild(["--allow-env"], [
    ["sh", ["-c", "exit 0"]],
    ["sh", ["-c", "exit 0"]],
  ]);
  assertEquals(lines, [
    `skipping tests that need sh: ${reason}`,
    `result: ${JSON.stringify(reason)}`,
    `result: ${JSON.stringify(reason)}`,
  ]);
});

Deno.test("commandMissing() without --allow-env still works", async () => {
  const lines = await probeInChild(["--allow-run"], [
    ["sh", ["-c", "exit 0"]],
  ]);
  assertEquals(lines, ["result: null"]);
});

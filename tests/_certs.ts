// Copyright 2026 the denio authors. MIT license.
// Test-time certificates made with the `openssl` command line tool: a CA, a
// server certificate for 127.0.0.1 and localhost signed by it, and a second,
// unrelated CA (whose trust makes the server certificate fail to verify).

/** PEM material for TLS tests. */
export interface TestCerts {
  /** The CA that signed `cert`. */
  caCert: string;
  /** The server certificate (SANs: IP 127.0.0.1, DNS localhost). */
  cert: string;
  /** The server certificate's private key. */
  key: string;
  /** A CA that signed nothing here. */
  otherCaCert: string;
  /** The temporary directory that holds the files (ca.pem, cert.pem, key.pem). */
  dir: string;
}

/** Why TLS tests are skipped, or `null` when `openssl` is available. */
export function opensslMissing(): string | null {
  try {
    const { success } = new Deno.Command("openssl", {
      args: ["version"],
      stdout: "null",
      stderr: "null",
    }).outputSync();
    return success ? null : "`openssl version` failed";
  } catch {
    return "the openssl command was not found (apt-get install -y openssl)";
  }
}

async function openssl(cwd: string, args: string[]): Promise<void> {
  const { success, stderr } = await new Deno.Command("openssl", {
    args,
    cwd,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!success) {
    throw new Error(
      `openssl ${args[0]} failed: ${new TextDecoder().decode(stderr)}`,
    );
  }
}

/** Makes a CA key and self-signed certificate named `name`.pem/-key.pem. */
async function makeCa(dir: string, name: string, cn: string): Promise<void> {
  await openssl(dir, [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    `${name}-key.pem`,
    "-out",
    `${name}.pem`,
    "-days",
    "2",
    "-subj",
    `/CN=${cn}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
}

/**
 * Writes the CA, server and second-CA certificates into a new temporary
 * directory and returns their PEM text. Remove `dir` when done.
 */
export async function makeTestCerts(): Promise<TestCerts> {
  const dir = await Deno.makeTempDir({ prefix: "denio_tls_" });
  try {
    await makeCa(dir, "ca", "denio test CA");
    await makeCa(dir, "other-ca", "denio unrelated CA");
    await openssl(dir, [
      "req",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      "key.pem",
      "-out",
      "server.csr",
      "-subj",
      "/CN=localhost",
    ]);
    await Deno.writeTextFile(
      `${dir}/server.ext`,
      [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature",
        "extendedKeyUsage=serverAuth",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
        "",
      ].join("\n"),
    );
    await openssl(dir, [
      "x509",
      "-req",
      "-in",
      "server.csr",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca-key.pem",
      "-CAcreateserial",
      "-out",
      "cert.pem",
      "-days",
      "2",
      "-extfile",
      "server.ext",
    ]);
    return {
      caCert: await Deno.readTextFile(`${dir}/ca.pem`),
      cert: await Deno.readTextFile(`${dir}/cert.pem`),
      key: await Deno.readTextFile(`${dir}/key.pem`),
      otherCaCert: await Deno.readTextFile(`${dir}/other-ca.pem`),
      dir,
    };
  } catch (error) {
    await Deno.remove(dir, { recursive: true });
    throw error;
  }
}

// Copyright 2026 the denio authors. MIT license.
// The test certificate builder (tests/_x509.ts, tests/_certs.ts): DER
// encodings against known bytes, and, where the openssl program is present,
// OpenSSL's own reading and verification of the generated chain. The TLS
// tests themselves show that rustls accepts the chain and refuses the
// unrelated CA.

import { assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { integer, oid, rawToDerSignature, sequence, tlv } from "./_x509.ts";
import { makeSelfSignedCert, makeTestCerts } from "./_certs.ts";
import { peerMissing } from "./_peers.ts";

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(" ");
}

Deno.test("DER: INTEGER is minimal and positive, lengths switch to the long form at 128", () => {
  assertEquals(hex(integer(2)), "02 01 02");
  assertEquals(hex(integer(0x80)), "02 02 00 80");
  assertEquals(hex(integer(new Uint8Array([0, 0, 1]))), "02 01 01");
  assertEquals(hex(integer(new Uint8Array([0, 0x90]))), "02 02 00 90");
  assertEquals(hex(integer(new Uint8Array([0, 0]))), "02 01 00");
  assertEquals(hex(tlv(0x04, new Uint8Array(127))).slice(0, 5), "04 7f");
  assertEquals(hex(tlv(0x04, new Uint8Array(200))).slice(0, 8), "04 81 c8");
  assertEquals(hex(tlv(0x04, new Uint8Array(300))).slice(0, 11), "04 82 01 2c");
  assertEquals(hex(sequence()), "30 00");
});

Deno.test("DER: OBJECT IDENTIFIER arcs in base 128", () => {
  assertEquals(
    hex(oid("1.2.840.10045.4.3.2")),
    "06 08 2a 86 48 ce 3d 04 03 02",
  );
  assertEquals(hex(oid("2.5.29.17")), "06 03 55 1d 11");
  assertEquals(hex(oid("1.3.6.1.5.5.7.3.1")), "06 08 2b 06 01 05 05 07 03 01");
});

Deno.test("ECDSA: WebCrypto's raw r||s becomes a DER Ecdsa-Sig-Value that WebCrypto's own verify matches", async () => {
  const raw = new Uint8Array(64);
  raw[0] = 0x80; // r needs a leading 0
  raw[32 + 31] = 0x05; // s is 5
  assertEquals(
    hex(rawToDerSignature(raw)),
    `30 26 02 21 00 80 ${"00 ".repeat(31)}02 01 05`,
  );
  // And a real signature round-trips: DER back to raw verifies.
  const keys = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" },
    false,
    ["sign", "verify"],
  );
  const data = new TextEncoder().encode("to be signed");
  const signature = new Uint8Array(
    await crypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-256" },
      keys.privateKey,
      data,
    ),
  );
  const der = rawToDerSignature(signature);
  assertEquals(der[0], 0x30);
  const back = derToRaw(der);
  assertEquals(
    await crypto.subtle.verify(
      { name: "ECDSA", hash: "SHA-256" },
      keys.publicKey,
      back,
      data,
    ),
    true,
  );
});

/** Undoes rawToDerSignature (short-form lengths only, as P-256 needs). */
function derToRaw(der: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(64);
  let offset = 2; // SEQUENCE header
  for (const half of [0, 32]) {
    const length = der[offset + 1]!;
    let value = der.subarray(offset + 2, offset + 2 + length);
    while (value.length > 32) value = value.subarray(1);
    out.set(value, half + 32 - value.length);
    offset += 2 + length;
  }
  return out;
}

const opensslSkip = peerMissing("openssl");

async function openssl(args: string[], cwd: string) {
  const { code, stdout, stderr } = await new Deno.Command("openssl", {
    args,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  const decoder = new TextDecoder();
  return { code, out: decoder.decode(stdout) + decoder.decode(stderr) };
}

Deno.test({
  name:
    "makeTestCerts(): openssl reads a v3 CA and a server certificate with the expected extensions, verifies the chain for 127.0.0.1 and localhost, and refuses the unrelated CA",
  ignore: opensslSkip !== null,
  async fn() {
    const certs = await makeTestCerts();
    try {
      const dir = certs.dir;
      const ca = await openssl(
        ["x509", "-in", "ca.pem", "-noout", "-text"],
        dir,
      );
      assertEquals(ca.code, 0, ca.out);
      assertStringIncludes(ca.out, "Version: 3 (0x2)");
      assertStringIncludes(ca.out, "Signature Algorithm: ecdsa-with-SHA256");
      assertMatch(ca.out, /Basic Constraints: critical\s+CA:TRUE/);
      assertMatch(ca.out, /Key Usage: critical\s+Certificate Sign, CRL Sign/);
      assertStringIncludes(ca.out, "X509v3 Subject Key Identifier");
      assertStringIncludes(ca.out, "NIST CURVE: P-256");

      const server = await openssl(
        ["x509", "-in", "cert.pem", "-noout", "-text"],
        dir,
      );
      assertEquals(server.code, 0, server.out);
      assertMatch(server.out, /Basic Constraints: critical\s+CA:FALSE/);
      assertMatch(server.out, /Key Usage: critical\s+Digital Signature/);
      assertMatch(
        server.out,
        /Subject Alternative Name:\s+IP Address:127\.0\.0\.1, DNS:localhost/,
      );
      assertMatch(
        server.out,
        /Extended Key Usage:\s+TLS Web Server Authentication/,
      );
      // The server's authority key id is the CA's subject key id.
      const caSki = ca.out.match(/Subject Key Identifier:\s+([0-9A-F:]+)/)![1];
      const serverAki = server.out.match(
        /Authority Key Identifier:\s+(?:keyid:)?([0-9A-F:]+)/,
      )![1];
      assertEquals(serverAki, caSki);

      const verify = await openssl([
        "verify",
        "-x509_strict",
        "-purpose",
        "sslserver",
        "-verify_ip",
        "127.0.0.1",
        "-CAfile",
        "ca.pem",
        "cert.pem",
      ], dir);
      assertEquals(verify.code, 0, verify.out);
      assertStringIncludes(verify.out, "cert.pem: OK");
      const hostname = await openssl([
        "verify",
        "-verify_hostname",
        "localhost",
        "-CAfile",
        "ca.pem",
        "cert.pem",
      ], dir);
      assertEquals(hostname.code, 0, hostname.out);
      const other = await openssl(
        ["verify", "-CAfile", "other-ca.pem", "cert.pem"],
        dir,
      );
      assertEquals(other.code !== 0, true, other.out);

      // key.pem is the private key of cert.pem (PKCS#8).
      assertStringIncludes(certs.key, "-----BEGIN PRIVATE KEY-----");
      const fromKey = await openssl(["pkey", "-in", "key.pem", "-pubout"], dir);
      const fromCert = await openssl(
        ["x509", "-in", "cert.pem", "-noout", "-pubkey"],
        dir,
      );
      assertEquals(fromKey.code, 0, fromKey.out);
      assertEquals(fromKey.out, fromCert.out);
    } finally {
      await Deno.remove(certs.dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "makeSelfSignedCert(): openssl verifies it against itself for 127.0.0.1",
  ignore: opensslSkip !== null,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "denio_x509_test_" });
    try {
      const { cert } = await makeSelfSignedCert();
      await Deno.writeTextFile(`${dir}/cert.pem`, cert);
      const verify = await openssl([
        "verify",
        "-partial_chain",
        "-verify_ip",
        "127.0.0.1",
        "-CAfile",
        "cert.pem",
        "cert.pem",
      ], dir);
      assertEquals(verify.code, 0, verify.out);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// Copyright 2026 the denio authors. MIT license.
// Test-time certificates made in TypeScript (WebCrypto ECDSA P-256, SHA-256;
// see ./_x509.ts), so TLS is tested wherever Deno runs: a CA, a server
// certificate for 127.0.0.1 and localhost signed by it, and a second,
// unrelated CA (whose trust makes the server certificate fail to verify).

import {
  generateKeyPair,
  issueCertificate,
  pem,
  privateKeyPem,
} from "./_x509.ts";
import { peerMissing } from "./_peers.ts";

/** PEM material for TLS tests. */
export interface TestCerts {
  /** The CA that signed `cert`. */
  caCert: string;
  /** The server certificate (SANs: IP 127.0.0.1, DNS localhost). */
  cert: string;
  /** The server certificate's private key (PKCS#8). */
  key: string;
  /** A CA that signed nothing here. */
  otherCaCert: string;
  /**
   * The temporary directory that holds the files (ca.pem, cert.pem, key.pem,
   * other-ca.pem) for peers that take paths. Remove it when done.
   */
  dir: string;
}

/**
 * Why the `openssl` command cannot be used, or `null`.
 *
 * @deprecated The certificates no longer need openssl; only tests that run
 * the openssl program itself (s_client) should probe, with
 * `peerMissing("openssl")` from `./_peers.ts`.
 */
export function opensslMissing(): string | null {
  return peerMissing("openssl");
}

async function makeCa(commonName: string) {
  const key = await generateKeyPair();
  const der = await issueCertificate({ commonName, subject: key, ca: true });
  return { commonName, key, pem: pem("CERTIFICATE", der) };
}

/** A self-signed end-entity certificate for 127.0.0.1 and localhost. */
export async function makeSelfSignedCert(): Promise<
  { cert: string; key: string }
> {
  const key = await generateKeyPair();
  const der = await issueCertificate({
    commonName: "localhost",
    subject: key,
    ca: false,
    altNames: [{ ip: "127.0.0.1" }, { dns: "localhost" }],
  });
  return { cert: pem("CERTIFICATE", der), key: await privateKeyPem(key) };
}

/**
 * Makes the CA, server and second-CA certificates, writes them into a new
 * temporary directory and returns their PEM text. Remove `dir` when done.
 */
export async function makeTestCerts(): Promise<TestCerts> {
  const ca = await makeCa("denio test CA");
  const other = await makeCa("denio unrelated CA");
  const serverKey = await generateKeyPair();
  const serverDer = await issueCertificate({
    commonName: "localhost",
    subject: serverKey,
    issuer: { commonName: ca.commonName, key: ca.key },
    ca: false,
    altNames: [{ ip: "127.0.0.1" }, { dns: "localhost" }],
  });
  const certs = {
    caCert: ca.pem,
    cert: pem("CERTIFICATE", serverDer),
    key: await privateKeyPem(serverKey),
    otherCaCert: other.pem,
  };
  const dir = await Deno.makeTempDir({ prefix: "denio_tls_" });
  try {
    await Deno.writeTextFile(`${dir}/ca.pem`, certs.caCert);
    await Deno.writeTextFile(`${dir}/cert.pem`, certs.cert);
    await Deno.writeTextFile(`${dir}/key.pem`, certs.key);
    await Deno.writeTextFile(`${dir}/other-ca.pem`, certs.otherCaCert);
  } catch (error) {
    await Deno.remove(dir, { recursive: true });
    throw error;
  }
  return { ...certs, dir };
}

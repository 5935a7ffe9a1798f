// Copyright 2026 the denio authors. MIT license.
// A small DER encoder and X.509 v3 certificate builder for the tests: ECDSA
// P-256 keys and SHA-256 signatures from WebCrypto, so TLS tests need no
// `openssl` command. Only what rustls/webpki and OpenSSL need to accept a CA
// and a server certificate is encoded (RFC 5280).

const encoder = new TextEncoder();

// ------------------------------------------------------------------ DER

function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** A tag-length-value with a definite (short or long form) length. */
export function tlv(
  tag: number,
  content: Uint8Array,
): Uint8Array<ArrayBuffer> {
  const length = content.length;
  let header: number[];
  if (length < 0x80) {
    header = [tag, length];
  } else {
    const bytes: number[] = [];
    for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n % 256);
    header = [tag, 0x80 | bytes.length, ...bytes];
  }
  return concat([new Uint8Array(header), content]);
}

/** SEQUENCE of the encoded `items`. */
export function sequence(...items: Uint8Array[]): Uint8Array<ArrayBuffer> {
  return tlv(0x30, concat(items));
}

function set(...items: Uint8Array[]): Uint8Array {
  return tlv(0x31, concat(items));
}

/** An unsigned big-endian INTEGER, minimal, with a 0 byte if the top bit is set. */
export function integer(unsigned: Uint8Array | number): Uint8Array {
  let bytes = typeof unsigned === "number"
    ? new Uint8Array([unsigned])
    : unsigned;
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  bytes = bytes.subarray(start);
  if (bytes.length === 0) bytes = new Uint8Array([0]);
  if (bytes[0]! & 0x80) bytes = concat([new Uint8Array([0]), bytes]);
  return tlv(0x02, bytes);
}

/** An OBJECT IDENTIFIER from its dotted form. */
export function oid(dotted: string): Uint8Array {
  const arcs = dotted.split(".").map(Number);
  const out = [40 * arcs[0]! + arcs[1]!];
  for (const arc of arcs.slice(2)) {
    const base128 = [arc & 0x7f];
    for (let n = Math.floor(arc / 128); n > 0; n = Math.floor(n / 128)) {
      base128.unshift(0x80 | (n & 0x7f));
    }
    out.push(...base128);
  }
  return tlv(0x06, new Uint8Array(out));
}

function boolean(value: boolean): Uint8Array {
  return tlv(0x01, new Uint8Array([value ? 0xff : 0x00]));
}

function octetString(bytes: Uint8Array): Uint8Array {
  return tlv(0x04, bytes);
}

/** BIT STRING of whole bytes (no unused bits). */
function bitString(bytes: Uint8Array): Uint8Array {
  return tlv(0x03, concat([new Uint8Array([0]), bytes]));
}

/** A named-bit BIT STRING (bit 0 is the top bit), trailing zeros dropped. */
function namedBits(bits: number[]): Uint8Array {
  const highest = Math.max(...bits);
  const bytes = new Uint8Array(Math.floor(highest / 8) + 1);
  for (const bit of bits) bytes[bit >> 3]! |= 0x80 >> (bit & 7);
  const unused = 7 - (highest & 7);
  return tlv(0x03, concat([new Uint8Array([unused]), bytes]));
}

function utf8String(text: string): Uint8Array {
  return tlv(0x0c, encoder.encode(text));
}

/** [n] EXPLICIT (constructed, context-specific). */
function explicit(n: number, content: Uint8Array): Uint8Array {
  return tlv(0xa0 | n, content);
}

/** UTCTime (years 1950-2049) or GeneralizedTime, as RFC 5280 requires. */
function time(date: Date): Uint8Array {
  const pad = (n: number) => String(n).padStart(2, "0");
  const year = date.getUTCFullYear();
  const rest = pad(date.getUTCMonth() + 1) + pad(date.getUTCDate()) +
    pad(date.getUTCHours()) + pad(date.getUTCMinutes()) +
    pad(date.getUTCSeconds()) + "Z";
  return year < 2050
    ? tlv(0x17, encoder.encode(pad(year % 100) + rest))
    : tlv(0x18, encoder.encode(String(year) + rest));
}

// ------------------------------------------------------------------ X.509

const OID = {
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  commonName: "2.5.4.3",
  organizationName: "2.5.4.10",
  subjectKeyIdentifier: "2.5.29.14",
  keyUsage: "2.5.29.15",
  subjectAltName: "2.5.29.17",
  basicConstraints: "2.5.29.19",
  authorityKeyIdentifier: "2.5.29.35",
  extKeyUsage: "2.5.29.37",
  serverAuth: "1.3.6.1.5.5.7.3.1",
} as const;

/** keyUsage bit numbers (RFC 5280 4.2.1.3). */
const KEY_USAGE = { digitalSignature: 0, keyCertSign: 5, cRLSign: 6 } as const;

function name(commonName: string): Uint8Array {
  return sequence(
    set(sequence(oid(OID.organizationName), utf8String("denio tests"))),
    set(sequence(oid(OID.commonName), utf8String(commonName))),
  );
}

function extension(
  id: string,
  critical: boolean,
  value: Uint8Array,
): Uint8Array {
  return critical
    ? sequence(oid(id), boolean(true), octetString(value))
    : sequence(oid(id), octetString(value));
}

/** A SubjectAltName entry. */
export type AltName = { ip: string } | { dns: string };

function generalNames(names: AltName[]): Uint8Array {
  return sequence(
    ...names.map((entry) =>
      "ip" in entry
        ? tlv(0x87, new Uint8Array(entry.ip.split(".").map(Number))) // [7] iPAddress
        : tlv(0x82, encoder.encode(entry.dns)) // [2] dNSName
    ),
  );
}

/** WebCrypto's raw r||s ECDSA signature as a DER Ecdsa-Sig-Value. */
export function rawToDerSignature(raw: Uint8Array): Uint8Array {
  const half = raw.length / 2;
  return sequence(integer(raw.subarray(0, half)), integer(raw.subarray(half)));
}

/** An ECDSA P-256 key pair with its DER SubjectPublicKeyInfo and key id. */
export interface KeyPair {
  keys: CryptoKeyPair;
  spki: Uint8Array;
  /** SHA-1 of the subjectPublicKey bits (RFC 5280 4.2.1.2, method 1). */
  keyId: Uint8Array;
}

/** Makes an extractable ECDSA P-256 key pair. */
export async function generateKeyPair(): Promise<KeyPair> {
  const keys = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["sign", "verify"],
  );
  const spki = new Uint8Array(
    await crypto.subtle.exportKey("spki", keys.publicKey),
  );
  // The uncompressed point (65 bytes) ends the SPKI; hash it alone.
  const point = new Uint8Array(
    await crypto.subtle.exportKey("raw", keys.publicKey),
  );
  const keyId = new Uint8Array(await crypto.subtle.digest("SHA-1", point));
  return { keys, spki, keyId };
}

/** What {@linkcode issueCertificate} puts in a certificate. */
export interface CertificateRequest {
  /** The subject's common name. */
  commonName: string;
  /** The subject's key. */
  subject: KeyPair;
  /** The issuer's key and common name; absent for a self-signed certificate. */
  issuer?: { commonName: string; key: KeyPair };
  /** A CA (basicConstraints CA:TRUE, keyCertSign) or an end entity. */
  ca: boolean;
  /** SubjectAltName entries (end entities). */
  altNames?: AltName[];
  /** Validity from one hour ago for this many days. @default 2 */
  days?: number;
}

/** Builds and signs an X.509 v3 certificate; returns its DER bytes. */
export async function issueCertificate(
  request: CertificateRequest,
): Promise<Uint8Array> {
  const issuer = request.issuer ??
    { commonName: request.commonName, key: request.subject };
  const serial = crypto.getRandomValues(new Uint8Array(16));
  serial[0]! &= 0x7f; // positive, at most 20 bytes
  serial[0]! |= 0x01; // never a leading zero
  const notBefore = new Date(Date.now() - 3600_000);
  const notAfter = new Date(
    notBefore.getTime() + (request.days ?? 2) * 86400_000 + 3600_000,
  );
  const algorithm = sequence(oid(OID.ecdsaWithSha256));
  const extensions = [
    extension(
      OID.basicConstraints,
      true,
      request.ca ? sequence(boolean(true)) : sequence(),
    ),
    extension(
      OID.keyUsage,
      true,
      namedBits(
        request.ca
          ? [KEY_USAGE.keyCertSign, KEY_USAGE.cRLSign]
          : [KEY_USAGE.digitalSignature],
      ),
    ),
    extension(
      OID.subjectKeyIdentifier,
      false,
      octetString(request.subject.keyId),
    ),
    extension(
      OID.authorityKeyIdentifier,
      false,
      sequence(tlv(0x80, issuer.key.keyId)), // [0] keyIdentifier
    ),
  ];
  if (!request.ca) {
    extensions.push(
      extension(OID.extKeyUsage, false, sequence(oid(OID.serverAuth))),
    );
  }
  if (request.altNames !== undefined && request.altNames.length > 0) {
    extensions.push(
      extension(OID.subjectAltName, false, generalNames(request.altNames)),
    );
  }
  const tbs = sequence(
    explicit(0, integer(2)), // v3
    integer(serial),
    algorithm,
    name(issuer.commonName),
    sequence(time(notBefore), time(notAfter)),
    name(request.commonName),
    request.subject.spki,
    explicit(3, sequence(...extensions)),
  );
  const raw = new Uint8Array(
    await crypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-256" },
      issuer.key.keys.privateKey,
      tbs,
    ),
  );
  return sequence(tbs, algorithm, bitString(rawToDerSignature(raw)));
}

/** PEM armour around DER bytes, 64 base64 characters a line. */
export function pem(label: string, der: Uint8Array): string {
  let binary = "";
  for (const byte of der) binary += String.fromCharCode(byte);
  const base64 = btoa(binary);
  const lines = base64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${
    lines.join("\n")
  }\n-----END ${label}-----\n`;
}

/** The private key of `pair` as PKCS#8 PEM ("PRIVATE KEY"). */
export async function privateKeyPem(pair: KeyPair): Promise<string> {
  const der = new Uint8Array(
    await crypto.subtle.exportKey("pkcs8", pair.keys.privateKey),
  );
  return pem("PRIVATE KEY", der);
}

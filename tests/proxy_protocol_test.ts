// Copyright 2026 the denio authors. MIT license.
// The PROXY protocol (HAProxy's doc/proxy-protocol.txt): the incremental
// parser on every split point, malformed headers, a seeded fuzz, the client
// encoder, servers with `proxyProtocol` over real sockets (plain and TLS),
// and a real HAProxy (send-proxy, send-proxy-v2, health checks) in front of
// a denio server, skipped with a reason where haproxy is not installed.

import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import {
  type BufferedProtocol,
  createConnection,
  createDatagramEndpoint,
  createServer,
  type Protocol,
  type ProxyHeader,
  type Transport,
} from "../mod.ts";
import {
  crc32c,
  encodeProxyHeader,
  formatIp,
  parseIpv6,
  ProxyHeaderParser,
  type ProxyMode,
  ProxyProtocolError,
} from "../transports/_proxy_protocol.ts";
import { makeTestCerts } from "./_certs.ts";
import { withHandler } from "./_exceptions.ts";
import { peerMissing } from "./_peers.ts";
import { sleep, within } from "./_timing.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const SIG = [
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
];

function bytes(...parts: (number[] | Uint8Array | string)[]): Uint8Array {
  const chunks = parts.map((part) =>
    typeof part === "string"
      ? encoder.encode(part)
      : part instanceof Uint8Array
      ? part
      : new Uint8Array(part)
  );
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

function u16(n: number): number[] {
  return [n >> 8, n & 0xff];
}

/** A version 2 header from its parts; `length` overrides the length field. */
function v2(
  verCmd: number,
  fam: number,
  body: number[] | Uint8Array,
  length?: number,
): Uint8Array {
  const block = body instanceof Uint8Array ? [...body] : body;
  return bytes(SIG, [verCmd, fam], u16(length ?? block.length), block);
}

function tlv(type: number, value: number[] | string): number[] {
  const data = typeof value === "string" ? [...encoder.encode(value)] : value;
  return [type, ...u16(data.length), ...data];
}

/** Feeds `chunks`; returns the header and every byte after it. */
function feed(
  chunks: Uint8Array[],
  mode: ProxyMode = "any",
): { header: ProxyHeader; after: Uint8Array } | null {
  const parser = new ProxyHeaderParser(mode);
  for (let i = 0; i < chunks.length; i++) {
    const result = parser.push(chunks[i]!);
    if (result !== null) {
      return {
        header: result.header,
        after: bytes(result.rest, ...chunks.slice(i + 1)),
      };
    }
  }
  return null;
}

const tcp = (hostname: string, port: number): Deno.NetAddr => ({
  transport: "tcp",
  hostname,
  port,
});

// A valid header of each kind, with what it must parse to.
const VALID: { name: string; wire: Uint8Array; header: ProxyHeader }[] = [
  {
    name: "v1 TCP4",
    wire: encoder.encode("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"),
    header: {
      version: 1,
      command: "PROXY",
      source: tcp("192.168.0.1", 56324),
      destination: tcp("192.168.0.11", 443),
    },
  },
  {
    name: "v1 TCP4 extremes",
    wire: encoder.encode("PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n"),
    header: {
      version: 1,
      command: "PROXY",
      source: tcp("255.255.255.255", 65535),
      destination: tcp("0.0.0.0", 0),
    },
  },
  {
    name: "v1 TCP6 (upper case, uncompressed, mapped)",
    wire: encoder.encode(
      "PROXY TCP6 2001:0DB8:0000:0000:0000:0000:0000:0001 ::ffff:192.0.2.128 1 65535\r\n",
    ),
    header: {
      version: 1,
      command: "PROXY",
      source: tcp("2001:db8::1", 1),
      destination: tcp("::ffff:192.0.2.128", 65535),
    },
  },
  {
    name: "v1 UNKNOWN (short)",
    wire: encoder.encode("PROXY UNKNOWN\r\n"),
    header: { version: 1, command: "PROXY" },
  },
  {
    name: "v1 UNKNOWN (worst case, 107 bytes)",
    wire: encoder.encode(
      `PROXY UNKNOWN ${"ffff:".repeat(7)}ffff ${
        "ffff:".repeat(7)
      }ffff 65535 65535\r\n`,
    ),
    header: { version: 1, command: "PROXY" },
  },
  {
    name: "v2 PROXY TCP4",
    wire: v2(0x21, 0x11, [127, 0, 0, 1, 10, 0, 0, 2, ...u16(4000), ...u16(80)]),
    header: {
      version: 2,
      command: "PROXY",
      source: tcp("127.0.0.1", 4000),
      destination: tcp("10.0.0.2", 80),
      tlvs: [],
    },
  },
  {
    name: "v2 PROXY TCP6 with TLVs (ALPN, authority, SSL with sub-TLVs, NOOP)",
    wire: v2(0x21, 0x21, [
      0x20,
      0x01,
      0x0d,
      0xb8,
      ...new Array(11).fill(0),
      0x07,
      ...new Array(15).fill(0),
      0x01,
      ...u16(0xfffe),
      ...u16(443),
      ...tlv(0x01, "h2"),
      ...tlv(0x02, "example.com"),
      ...tlv(0x20, [0x01, 0, 0, 0, 0, ...tlv(0x21, "TLSv1.3")]),
      ...tlv(0x04, []),
    ]),
    header: {
      version: 2,
      command: "PROXY",
      source: tcp("2001:db8::7", 0xfffe),
      destination: tcp("::1", 443),
      tlvs: [
        { type: 0x01, value: encoder.encode("h2") },
        { type: 0x02, value: encoder.encode("example.com") },
        {
          type: 0x20,
          value: new Uint8Array([0x01, 0, 0, 0, 0, ...tlv(0x21, "TLSv1.3")]),
        },
        { type: 0x04, value: new Uint8Array(0) },
      ],
    },
  },
  {
    name: "v2 PROXY UDP4",
    wire: v2(0x21, 0x12, [1, 2, 3, 4, 5, 6, 7, 8, ...u16(53), ...u16(5353)]),
    header: {
      version: 2,
      command: "PROXY",
      source: { transport: "udp", hostname: "1.2.3.4", port: 53 },
      destination: { transport: "udp", hostname: "5.6.7.8", port: 5353 },
      tlvs: [],
    },
  },
  {
    name: "v2 LOCAL UNSPEC (HAProxy's health check)",
    wire: v2(0x20, 0x00, []),
    header: { version: 2, command: "LOCAL", tlvs: [] },
  },
  {
    name: "v2 LOCAL UNSPEC with a TLV",
    wire: v2(0x20, 0x00, tlv(0xe0, [9, 9])),
    header: {
      version: 2,
      command: "LOCAL",
      tlvs: [{ type: 0xe0, value: new Uint8Array([9, 9]) }],
    },
  },
  {
    name: "v2 LOCAL with TCP4 addresses (ignored)",
    wire: v2(0x20, 0x11, [1, 1, 1, 1, 2, 2, 2, 2, 0, 1, 0, 2]),
    header: { version: 2, command: "LOCAL", tlvs: [] },
  },
  {
    name: "v2 PROXY UNSPEC (no addresses)",
    wire: v2(0x21, 0x00, []),
    header: { version: 2, command: "PROXY", tlvs: [] },
  },
  {
    name: "v2 PROXY UNIX stream (216 address bytes, then a TLV)",
    wire: v2(0x21, 0x31, [
      ...encoder.encode("/tmp/a.sock"),
      ...new Array(108 - 11).fill(0),
      ...encoder.encode("/tmp/b.sock"),
      ...new Array(108 - 11).fill(0),
      ...tlv(0x05, "id-1"),
    ]),
    header: {
      version: 2,
      command: "PROXY",
      tlvs: [{ type: 0x05, value: encoder.encode("id-1") }],
    },
  },
];

// A CRC32C TLV over the header, as HAProxy's `proxy-v2-options crc32c`.
function withCrc(wire: Uint8Array): Uint8Array {
  const out = bytes(wire, [0x03, 0, 4, 0, 0, 0, 0]);
  new DataView(out.buffer).setUint16(14, out.length - 16);
  new DataView(out.buffer).setUint32(out.length - 4, crc32c(out));
  return out;
}
const CRC_WIRE = withCrc(VALID[5]!.wire);
VALID.push({
  name: "v2 PROXY TCP4 with a valid CRC32C",
  wire: CRC_WIRE,
  header: {
    ...VALID[5]!.header,
    tlvs: [{ type: 0x03, value: CRC_WIRE.slice(-4) }],
  },
});

Deno.test("crc32c() matches RFC 3720's check value", () => {
  assertEquals(crc32c(encoder.encode("123456789")), 0xe3069283);
  assertEquals(crc32c(new Uint8Array(32)), 0x8a9136aa);
});

Deno.test("ProxyHeaderParser parses every kind of header on every split point and byte by byte", () => {
  const trailer = encoder.encode("GET / HTTP/1.1\r\n\r\n");
  for (const { name, wire, header } of VALID) {
    const all = bytes(wire, trailer);
    const whole = feed([all]);
    assertEquals(whole?.header, header, name);
    assertEquals(whole?.after, trailer, name);
    const mode: ProxyMode = header.version === 1 ? "v1" : "v2";
    assertEquals(feed([all], mode)?.header, header, `${name} (${mode})`);
    for (let split = 0; split <= all.length; split++) {
      const got = feed([all.subarray(0, split), all.subarray(split)]);
      assertEquals(got?.header, header, `${name}, split at ${split}`);
      assertEquals(got?.after, trailer, `${name}, split at ${split}`);
    }
    const single: Uint8Array[] = [];
    for (let i = 0; i < all.length; i++) single.push(all.subarray(i, i + 1));
    const got = feed(single);
    assertEquals(got?.header, header, `${name}, byte by byte`);
    assertEquals(got?.after, trailer, `${name}, byte by byte`);
    // Without the last byte the header is incomplete.
    assertEquals(feed([wire.subarray(0, wire.length - 1)]), null, name);
  }
});

Deno.test("ProxyHeaderParser returns an empty rest when a chunk ends with the header", () => {
  const parser = new ProxyHeaderParser("any");
  const result = parser.push(VALID[0]!.wire);
  assertEquals(result?.rest.length, 0);
  assertThrows(() => parser.push(new Uint8Array(1)), Error, "already complete");
});

// Malformed input and the phrase its error must contain.
const MALFORMED: [string, Uint8Array, string][] = [
  ["plain HTTP", encoder.encode("GET / HTTP/1.1\r\n"), "does not start with"],
  [
    "CRLF CRLF CRLF",
    encoder.encode("\r\n\r\n\r\n"),
    "signature is wrong: byte 4",
  ],
  [
    "lower case",
    encoder.encode("proxy TCP4 1.1.1.1 1.1.1.1 1 1\r\n"),
    "does not start with",
  ],
  ["PROXY without space", encoder.encode("PROXY\r\n"), 'start with "PROXY "'],
  [
    "v1 TCP5",
    encoder.encode("PROXY TCP5 1.1.1.1 1.1.1.1 1 1\r\n"),
    "unknown protocol",
  ],
  ["v1 UNKNOWNX", encoder.encode("PROXY UNKNOWNX\r\n"), "unknown protocol"],
  ["v1 empty protocol", encoder.encode("PROXY \r\n"), "unknown protocol"],
  [
    "v1 TCP4 without CRLF in 107 bytes",
    encoder.encode(`PROXY TCP4 ${"1".repeat(200)}`),
    "no CRLF within 107",
  ],
  [
    "v1 UNKNOWN of 108 bytes",
    encoder.encode(`PROXY UNKNOWN ${"f".repeat(92)}\r\n`),
    "no CRLF within 107",
  ],
  [
    "v1 bare LF",
    encoder.encode("PROXY TCP4 1.1.1.1 1.1.1.1 1 1\n"),
    "LF without a CR",
  ],
  [
    "v1 bare CR",
    encoder.encode("PROXY TCP4 1.1.1.1 1.1.1.1 1 1\rX"),
    "CR not followed by LF",
  ],
  [
    "v1 octet 256",
    encoder.encode("PROXY TCP4 256.1.1.1 1.1.1.1 1 1\r\n"),
    "source address is not a valid IPv4",
  ],
  [
    "v1 leading zero in an octet",
    encoder.encode("PROXY TCP4 1.1.1.1 01.1.1.1 1 1\r\n"),
    "destination address is not a valid IPv4",
  ],
  [
    "v1 three octets",
    encoder.encode("PROXY TCP4 1.1.1 1.1.1.1 1 1\r\n"),
    "not a valid IPv4",
  ],
  [
    "v1 IPv6 in TCP4",
    encoder.encode("PROXY TCP4 ::1 ::1 1 1\r\n"),
    "not a valid IPv4",
  ],
  [
    "v1 IPv4 in TCP6",
    encoder.encode("PROXY TCP6 1.1.1.1 ::1 1 1\r\n"),
    "not a valid IPv6",
  ],
  [
    "v1 two ::",
    encoder.encode("PROXY TCP6 1::2::3 ::1 1 1\r\n"),
    "not a valid IPv6",
  ],
  [
    "v1 nine groups",
    encoder.encode("PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 1\r\n"),
    "not a valid IPv6",
  ],
  [
    "v1 zone id",
    encoder.encode("PROXY TCP6 fe80::1%eth0 ::1 1 1\r\n"),
    "not a valid IPv6",
  ],
  [
    "v1 port 65536",
    encoder.encode("PROXY TCP4 1.1.1.1 1.1.1.1 65536 1\r\n"),
    "source port",
  ],
  [
    "v1 port with a leading zero",
    encoder.encode("PROXY TCP4 1.1.1.1 1.1.1.1 1 080\r\n"),
    "destination port",
  ],
  [
    "v1 negative port",
    encoder.encode("PROXY TCP4 1.1.1.1 1.1.1.1 -1 1\r\n"),
    "source port",
  ],
  [
    "v1 double space",
    encoder.encode("PROXY TCP4 1.1.1.1  1.1.1.1 1 1\r\n"),
    "4 fields",
  ],
  [
    "v1 missing port",
    encoder.encode("PROXY TCP4 1.1.1.1 1.1.1.1 1\r\n"),
    "4 fields",
  ],
  [
    "v1 extra field",
    encoder.encode("PROXY TCP4 1.1.1.1 1.1.1.1 1 1 1\r\n"),
    "4 fields",
  ],
  [
    "v1 trailing space",
    encoder.encode("PROXY TCP4 1.1.1.1 1.1.1.1 1 1 \r\n"),
    "4 fields",
  ],
  [
    "v2 wrong signature",
    bytes(SIG.slice(0, 11), [0x0b, 0x21, 0x11, 0, 0]),
    "signature is wrong: byte 11",
  ],
  [
    "v2 version 1",
    v2(0x11, 0x11, new Array(12).fill(0)),
    "unsupported version: 1",
  ],
  [
    "v2 version 3",
    v2(0x31, 0x11, new Array(12).fill(0)),
    "unsupported version: 3",
  ],
  ["v2 command 2", v2(0x22, 0x11, new Array(12).fill(0)), "unknown command: 2"],
  [
    "v2 family 4",
    v2(0x21, 0x41, new Array(12).fill(0)),
    "unknown address family",
  ],
  [
    "v2 protocol 3",
    v2(0x21, 0x13, new Array(12).fill(0)),
    "unknown address family or transport",
  ],
  ["v2 too long", v2(0x21, 0x11, [], 0xffff), "too long: 65551 bytes"],
  [
    "v2 TCP4 short block",
    v2(0x21, 0x11, [1, 2, 3, 4]),
    "too short for its addresses",
  ],
  [
    "v2 TCP6 short block",
    v2(0x21, 0x21, new Array(12).fill(0)),
    "too short for its addresses",
  ],
  [
    "v2 UNIX short block",
    v2(0x21, 0x31, new Array(200).fill(0)),
    "too short for its addresses",
  ],
  [
    "v2 TLV past the end",
    v2(0x21, 0x00, [0x01, 0, 5, 1, 2]),
    "runs past the header",
  ],
  ["v2 TLV header cut", v2(0x20, 0x00, [0x01, 0]), "ends inside a TLV header"],
  [
    "v2 CRC32C of 3 bytes",
    v2(0x21, 0x00, [0x03, 0, 3, 1, 2, 3]),
    "not 4 bytes",
  ],
  [
    "v2 CRC32C mismatch",
    (() => {
      const bad = CRC_WIRE.slice();
      bad[16] = bad[16]! ^ 1;
      return bad;
    })(),
    "checksum does not match",
  ],
];

Deno.test("ProxyHeaderParser rejects malformed headers with a clear ProxyProtocolError", () => {
  for (const [name, wire, phrase] of MALFORMED) {
    const error = assertThrows(
      () => {
        if (feed([wire]) === null) throw new Error(`${name}: no error`);
      },
      ProxyProtocolError,
      undefined,
      name,
    );
    assertStringIncludes(error.message, phrase, name);
    // Byte by byte: the same error, never a different one.
    const parser = new ProxyHeaderParser("any");
    const late = assertThrows(() => {
      for (const byte of wire) parser.push(new Uint8Array([byte]));
      throw new Error(`${name}: no error byte by byte`);
    }, ProxyProtocolError);
    assertStringIncludes(late.message, phrase, `${name}, byte by byte`);
  }
});

Deno.test("ProxyHeaderParser fails on the first byte that cannot start a header", () => {
  for (
    const [mode, first] of [["any", "G"], ["v1", "\r"], ["v2", "P"]] as const
  ) {
    const parser = new ProxyHeaderParser(mode);
    assertThrows(
      () => parser.push(encoder.encode(first)),
      ProxyProtocolError,
      "does not start with",
    );
  }
  // "PROXY T" still fits TCP4/TCP6; "PROXY X" does not.
  assertEquals(
    new ProxyHeaderParser("any").push(encoder.encode("PROXY T")),
    null,
  );
  assertThrows(
    () => new ProxyHeaderParser("any").push(encoder.encode("PROXY X")),
    ProxyProtocolError,
    "unknown protocol",
  );
  // The version 2 signature fails at its first wrong byte.
  assertThrows(
    () =>
      new ProxyHeaderParser("v2").push(
        new Uint8Array([0x0d, 0x0a, 0x0d, 0x0b]),
      ),
    ProxyProtocolError,
    "byte 3",
  );
  // A too long length field fails before the body arrives.
  assertThrows(
    () =>
      new ProxyHeaderParser("v2").push(
        v2(0x21, 0x11, [], 20000).subarray(0, 16),
      ),
    ProxyProtocolError,
    "too long",
  );
});

Deno.test("IPv6 addresses are parsed strictly and formatted as Deno reports them", () => {
  const cases: [string, string][] = [
    ["::", "::"],
    ["::1", "::1"],
    ["1::", "1::"],
    ["2001:DB8::0:1", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"],
    ["::ffff:1.2.3.4", "::ffff:1.2.3.4"],
    ["::ffff:0102:0304", "::ffff:1.2.3.4"],
    ["64:ff9b::192.0.2.33", "64:ff9b::c000:221"],
  ];
  for (const [text, formatted] of cases) {
    const parsed = parseIpv6(text);
    if (parsed === null) throw new Error(`${text} did not parse`);
    assertEquals(formatIp(parsed), formatted, text);
  }
  for (
    const bad of [
      "",
      ":",
      ":::",
      "1:2:3:4:5:6:7:8::",
      "::1:2:3:4:5:6:7:8",
      "12345::",
      "1.2.3.4::",
      "::1.2.3",
      "::01.2.3.4",
      "g::",
      ":1::",
      "1:::2",
    ]
  ) {
    assertEquals(parseIpv6(bad), null, bad);
  }
});

/** mulberry32: a small seeded generator, so every run fuzzes the same inputs. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("ProxyHeaderParser under a seeded fuzz throws only ProxyProtocolError and never buffers past the header", () => {
  const next = random(0x5eed);
  const int = (n: number) => Math.floor(next() * n);
  const seeds = [...VALID.map((v) => v.wire), ...MALFORMED.map((m) => m[1])];
  let parsed = 0;
  let rejected = 0;
  for (let round = 0; round < 20000; round++) {
    let input: Uint8Array = seeds[int(seeds.length)]!.slice();
    const mutations = int(4);
    for (let m = 0; m < mutations; m++) {
      switch (int(5)) {
        case 0: // flip a bit
          if (input.length > 0) input[int(input.length)]! ^= 1 << int(8);
          break;
        case 1: // set a byte
          if (input.length > 0) input[int(input.length)] = int(256);
          break;
        case 2: // truncate
          input = input.slice(0, int(input.length + 1));
          break;
        case 3: // insert random bytes
        {
          const at = int(input.length + 1);
          const extra = Array.from({ length: 1 + int(8) }, () => int(256));
          input = bytes(input.subarray(0, at), extra, input.subarray(at));
          break;
        }
        default: // random garbage
          input = new Uint8Array(
            Array.from({ length: int(64) }, () => int(256)),
          );
      }
    }
    const modes: ProxyMode[] = ["any", "v1", "v2"];
    const parser = new ProxyHeaderParser(modes[int(3)]!);
    try {
      let offset = 0;
      while (offset < input.length) {
        const size = 1 + int(input.length - offset);
        const chunk = input.subarray(offset, offset + size);
        const result = parser.push(chunk);
        offset += size;
        if (result !== null) {
          // The header ended inside this chunk, within the caps.
          const used = offset - result.rest.length;
          assert(used <= 16 * 1024, "header longer than the cap");
          assertEquals(
            result.rest,
            chunk.subarray(chunk.length - result.rest.length),
          );
          parsed++;
          break;
        }
      }
    } catch (error) {
      if (!(error instanceof ProxyProtocolError)) throw error;
      rejected++;
    }
  }
  // The fuzz reaches both outcomes (it cannot silently test nothing).
  assert(parsed > 800, `only ${parsed} parsed`);
  assert(rejected > 5000, `only ${rejected} rejected`);
});

Deno.test("encodeProxyHeader() round-trips random headers through the parser", () => {
  const next = random(42);
  const int = (n: number) => Math.floor(next() * n);
  const ipv4 = () => Array.from({ length: 4 }, () => int(256)).join(".");
  const ipv6 = () =>
    formatIp(
      new Uint8Array(
        Array.from({ length: 16 }, () => (int(3) === 0 ? 0 : int(256))),
      ),
    );
  for (let round = 0; round < 2000; round++) {
    const version = (1 + int(2)) as 1 | 2;
    const command = version === 2 && int(4) === 0 ? "LOCAL" : "PROXY";
    const header: ProxyHeader = { version, command };
    if (command === "PROXY" && int(5) !== 0) {
      const six = int(2) === 0;
      const transport = version === 2 && int(3) === 0 ? "udp" : "tcp";
      header.source = {
        transport,
        hostname: six ? ipv6() : ipv4(),
        port: int(65536),
      };
      header.destination = {
        transport,
        hostname: six ? ipv6() : ipv4(),
        port: int(65536),
      };
    }
    if (version === 2) {
      header.tlvs = Array.from({ length: int(4) }, () => ({
        type: [0x01, 0x02, 0x04, 0x05, 0x20, 0xe0][int(6)]!,
        value: new Uint8Array(Array.from({ length: int(40) }, () => int(256))),
      }));
    }
    const wire = encodeProxyHeader(header, "test");
    const got = feed([bytes(wire, "x")]);
    assertEquals(got?.header, header, JSON.stringify(header));
    assertEquals(got?.after, encoder.encode("x"));
  }
});

Deno.test("encodeProxyHeader() writes the specification's bytes", () => {
  assertEquals(
    decoder.decode(encodeProxyHeader(VALID[0]!.header, "test")),
    "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
  );
  assertEquals(
    decoder.decode(encodeProxyHeader({ version: 1, command: "PROXY" }, "test")),
    "PROXY UNKNOWN\r\n",
  );
  assertEquals(
    decoder.decode(encodeProxyHeader({
      version: 1,
      command: "PROXY",
      source: tcp("2001:DB8:0:0::1", 1),
      destination: tcp("::1", 2),
    }, "test")),
    "PROXY TCP6 2001:db8::1 ::1 1 2\r\n",
  );
  assertEquals(encodeProxyHeader(VALID[5]!.header, "test"), VALID[5]!.wire);
  assertEquals(
    encodeProxyHeader({ version: 2, command: "LOCAL" }, "test"),
    v2(0x20, 0x00, []),
  );
});

Deno.test("createConnection() rejects a malformed proxyHeader at the call", async () => {
  const source = tcp("10.0.0.1", 1000);
  const destination = tcp("10.0.0.2", 2000);
  const cases: [unknown, typeof TypeError | typeof RangeError, string][] = [
    [null, TypeError, "proxyHeader is not an object: current value is null"],
    [
      "PROXY",
      TypeError,
      'proxyHeader is not an object: current value is "PROXY"',
    ],
    [
      { version: "2", command: "PROXY" },
      TypeError,
      'proxyHeader.version is not a number: current value is "2"',
    ],
    [
      { version: 3, command: "PROXY" },
      RangeError,
      "proxyHeader.version is not 1 or 2: current value is 3",
    ],
    [
      { version: 2, command: "proxy" },
      TypeError,
      'proxyHeader.command is not "PROXY" or "LOCAL": current value is "proxy"',
    ],
    [
      { version: 1, command: "LOCAL" },
      TypeError,
      'proxyHeader.command "LOCAL" needs version 2',
    ],
    [
      { version: 2, command: "PROXY", source },
      TypeError,
      "proxyHeader has source without destination",
    ],
    [
      { version: 2, command: "LOCAL", source, destination },
      TypeError,
      'proxyHeader has addresses with command "LOCAL"',
    ],
    [
      { version: 2, command: "PROXY", source: "10.0.0.1", destination },
      TypeError,
      "proxyHeader.source is not a Deno.NetAddr",
    ],
    [
      {
        version: 2,
        command: "PROXY",
        source: { ...source, transport: "unix" },
        destination,
      },
      TypeError,
      'proxyHeader.source.transport is not "tcp" or "udp": current value is "unix"',
    ],
    [
      {
        version: 2,
        command: "PROXY",
        source: tcp("example.com", 1),
        destination,
      },
      TypeError,
      'proxyHeader.source.hostname is not an IPv4 or IPv6 address: current value is "example.com"',
    ],
    [
      { version: 2, command: "PROXY", source, destination: tcp("::1", 1) },
      TypeError,
      'proxyHeader.source and proxyHeader.destination are of different address families: current value is "::1"',
    ],
    [
      {
        version: 2,
        command: "PROXY",
        source,
        destination: { ...destination, transport: "udp" },
      },
      TypeError,
      "proxyHeader.source and proxyHeader.destination have different transports",
    ],
    [
      {
        version: 1,
        command: "PROXY",
        source: { ...source, transport: "udp" },
        destination: { ...destination, transport: "udp" },
      },
      TypeError,
      '"udp" needs version 2',
    ],
    [
      {
        version: 2,
        command: "PROXY",
        source: tcp("10.0.0.1", 65536),
        destination,
      },
      RangeError,
      "proxyHeader.source.port is not an integer from 0 to 65535: current value is 65536",
    ],
    [
      {
        version: 2,
        command: "PROXY",
        source,
        destination: tcp("10.0.0.2", 1.5),
      },
      RangeError,
      "proxyHeader.destination.port is not an integer",
    ],
    [
      {
        version: 2,
        command: "PROXY",
        source,
        destination: { ...destination, port: "80" },
      },
      TypeError,
      "proxyHeader.destination.port is not a number",
    ],
    [
      { version: 2, command: "PROXY", tlvs: {} },
      TypeError,
      "proxyHeader.tlvs is not an array",
    ],
    [
      {
        version: 2,
        command: "PROXY",
        tlvs: [{ type: 256, value: new Uint8Array() }],
      },
      RangeError,
      "proxyHeader.tlvs[0].type is not an integer from 0 to 255: current value is 256",
    ],
    [
      { version: 2, command: "PROXY", tlvs: [{ type: 1, value: "h2" }] },
      TypeError,
      'proxyHeader.tlvs[0].value is not a Uint8Array: current value is "h2"',
    ],
    [
      {
        version: 2,
        command: "PROXY",
        tlvs: [{ type: 1, value: new Uint8Array(70000) }],
      },
      RangeError,
      "proxyHeader.tlvs[0].value is longer than 65535 bytes",
    ],
    [
      {
        version: 2,
        command: "PROXY",
        tlvs: [{ type: 1, value: new Uint8Array(20000) }],
      },
      RangeError,
      "encodes to more than 16384 bytes",
    ],
    [
      {
        version: 1,
        command: "PROXY",
        tlvs: [{ type: 1, value: new Uint8Array(1) }],
      },
      TypeError,
      "proxyHeader.tlvs needs version 2",
    ],
  ];
  for (const [proxyHeader, type, message] of cases) {
    const error = await assertRejects(
      () =>
        createConnection(() => ({}), {
          port: 1,
          proxyHeader: proxyHeader as ProxyHeader,
        }),
      type as typeof TypeError,
      message,
    );
    assertInstanceOf(error, type);
    assert(error.message.startsWith("Cannot create connection as "));
  }
});

Deno.test("createServer() and createDatagramEndpoint() reject bad PROXY options at the call", async () => {
  for (const proxyProtocol of ["v3", 1, null, "true"]) {
    await assertRejects(
      () =>
        createServer(() => ({}), {
          port: 0,
          proxyProtocol: proxyProtocol as unknown as boolean,
        }),
      TypeError,
      'Cannot create server as proxyProtocol is not a boolean, "v1" or "v2": current value is',
    );
  }
  await assertRejects(
    () =>
      createServer(() => ({}), {
        proxyProtocol: true,
        proxyProtocolTimeout: "5" as unknown as number,
      }),
    TypeError,
    'Cannot create server as proxyProtocolTimeout is not a number: current value is "5"',
  );
  for (const proxyProtocolTimeout of [0, -1, NaN, 2 ** 31]) {
    await assertRejects(
      () =>
        createServer(() => ({}), { proxyProtocol: true, proxyProtocolTimeout }),
      RangeError,
      "Cannot create server as proxyProtocolTimeout is not from 1 to 2147483647",
    );
  }
  await assertRejects(
    () =>
      createDatagramEndpoint(
        () => ({}),
        {
          localAddr: { hostname: "127.0.0.1", port: 0 },
          proxyProtocol: true,
        } as Parameters<typeof createDatagramEndpoint>[1],
      ),
    TypeError,
    "Cannot create datagram endpoint as proxyProtocol is not supported on datagram endpoints: current value is true",
  );
});

// ------------------------------------------------------------ real sockets

type Event =
  | ["made", { peername: unknown; sockname: unknown; proxy: unknown }]
  | ["data", string]
  | ["eof"]
  | ["lost", string | null];

/** A protocol that logs its callbacks and echoes what it gets. */
class Recorder implements Protocol {
  events: Event[] = [];
  made = Promise.withResolvers<void>();
  lost = Promise.withResolvers<void>();
  transport: Transport | undefined;
  connectionMade(transport: Transport): void {
    this.transport = transport;
    this.events.push(["made", {
      peername: transport.getExtraInfo("peername"),
      sockname: transport.getExtraInfo("sockname"),
      proxy: transport.getExtraInfo("proxy"),
    }]);
    this.made.resolve();
  }
  dataReceived(data: Uint8Array): void {
    this.events.push(["data", decoder.decode(data)]);
    this.transport!.write(data);
  }
  eofReceived(): void {
    this.events.push(["eof"]);
  }
  connectionLost(error: Error | null): void {
    this.events.push(["lost", error === null ? null : error.name]);
    this.lost.resolve();
  }
  received(): string {
    return this.events.filter((e) => e[0] === "data").map((e) => e[1]).join("");
  }
}

async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(65536);
  while (true) {
    let n: number | null;
    try {
      n = await conn.read(buffer);
    } catch (error) {
      if (error instanceof Deno.errors.ConnectionReset) break;
      throw error;
    }
    if (n === null) break;
    chunks.push(buffer.slice(0, n));
  }
  return bytes(...chunks);
}

async function readExactly(conn: Deno.Conn, size: number): Promise<Uint8Array> {
  const out = new Uint8Array(size);
  let got = 0;
  while (got < size) {
    const n = await conn.read(out.subarray(got));
    if (n === null) throw new Error(`EOF after ${got} of ${size} bytes`);
    got += n;
  }
  return out;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  while (data.length > 0) data = data.subarray(await conn.write(data));
}

async function proxyServer(
  options: Partial<Parameters<typeof createServer>[1]> = {},
): Promise<{
  server: Awaited<ReturnType<typeof createServer>>;
  port: number;
  recorders: Recorder[];
}> {
  const recorders: Recorder[] = [];
  const server = await createServer(() => {
    const recorder = new Recorder();
    recorders.push(recorder);
    return recorder;
  }, { hostname: "127.0.0.1", port: 0, proxyProtocol: true, ...options });
  return { server, port: (server.addrs[0] as Deno.NetAddr).port, recorders };
}

Deno.test("createServer({ proxyProtocol }) takes peername, sockname and proxy from a header sent by createConnection({ proxyHeader })", async () => {
  await withHandler(async (calls) => {
    const { server, port, recorders } = await proxyServer();
    await using _ = server;
    for (
      const header of [VALID[0]!.header, VALID[2]!.header, VALID[6]!.header]
    ) {
      const [client] = await createConnection(() => ({}), {
        port,
        proxyHeader: header,
      });
      client.write(encoder.encode("after"));
      const recorder = await within(
        (async () => {
          while (
            recorders.length === 0 || recorders.at(-1)!.received() !== "after"
          ) await sleep(5);
          return recorders.at(-1)!;
        })(),
        "the data after the header",
        10_000,
      );
      assertEquals(recorder.events, [
        ["made", {
          peername: header.source,
          sockname: header.destination,
          proxy: header,
        }],
        ["data", "after"],
      ]);
      client.close();
      await within(recorder.lost.promise, "connectionLost", 10_000);
      recorders.length = 0;
    }
    assertEquals(calls, []);
  });
});

Deno.test("createServer({ proxyProtocol }) keeps the socket's own addresses for LOCAL and UNKNOWN headers", async () => {
  await withHandler(async (calls) => {
    const { server, port, recorders } = await proxyServer();
    await using _ = server;
    for (const wire of [VALID[3]!.wire, VALID[8]!.wire, VALID[12]!.wire]) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await writeAll(conn, bytes(wire, "ping"));
      assertEquals(decoder.decode(await readExactly(conn, 4)), "ping");
      const made = recorders.at(-1)!.events[0]!;
      assertEquals(made[0], "made");
      const info = made[1] as {
        peername: unknown;
        sockname: unknown;
        proxy: unknown;
      };
      assertEquals(info.peername, conn.localAddr);
      assertEquals(info.sockname, conn.remoteAddr);
      assertEquals(info.proxy, feed([wire])!.header);
      conn.close();
      await within(recorders.at(-1)!.lost.promise, "connectionLost", 10_000);
    }
    assertEquals(calls, []);
  });
});

Deno.test("createServer({ proxyProtocol }) passes the bytes after the header, in the same write, intact to a Protocol and a BufferedProtocol", async () => {
  const payload = new Uint8Array(200_000).map((_, i) =>
    (i * 7 + (i >> 9)) & 0xff
  );
  // Protocol: the echo comes back whole.
  {
    const { server, port } = await proxyServer({ proxyProtocol: "v2" });
    await using _ = server;
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const echoed = readExactly(conn, payload.length);
    await writeAll(conn, bytes(VALID[6]!.wire, payload));
    assertEquals(await within(echoed, "the echo", 20_000), payload);
    conn.close();
  }
  // BufferedProtocol with a tiny buffer: the leftover is handed over in
  // pieces, in order.
  {
    const got: number[] = [];
    const lost = Promise.withResolvers<void>();
    const done = Promise.withResolvers<void>();
    let peer: unknown;
    await using server = await createServer((): BufferedProtocol => {
      const buffer = new Uint8Array(7);
      return {
        connectionMade(transport) {
          peer = transport.getExtraInfo("peername");
        },
        getBuffer: () => buffer,
        bufferUpdated(n) {
          got.push(...buffer.subarray(0, n));
          if (got.length === 1000) done.resolve();
        },
        connectionLost: () => lost.resolve(),
      };
    }, { hostname: "127.0.0.1", port: 0, proxyProtocol: "v1" });
    const { port } = server.addrs[0] as Deno.NetAddr;
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await writeAll(conn, bytes(VALID[0]!.wire, payload.subarray(0, 1000)));
    await within(done.promise, "1000 bytes", 10_000);
    assertEquals(new Uint8Array(got), payload.subarray(0, 1000));
    assertEquals(peer, VALID[0]!.header.source);
    conn.close();
    await within(lost.promise, "connectionLost", 10_000);
  }
});

Deno.test("createServer({ proxyProtocol }) closes a connection without a valid header before any protocol, tells the exception handler once, and keeps serving", async () => {
  await withHandler(async (calls) => {
    const { server, port, recorders } = await proxyServer();
    await using _ = server;
    const bad: [Uint8Array, string][] = [
      [
        encoder.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        "does not start with",
      ],
      [
        encoder.encode("PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\nhello"),
        "destination port",
      ],
      [
        encoder.encode(`PROXY UNKNOWN ${"x".repeat(200)}`),
        "no CRLF within 107",
      ],
      [v2(0x21, 0x11, [], 0xffff), "too long"],
      [new Uint8Array(0), "closed before sending a PROXY protocol header"],
      [encoder.encode("PROXY TCP4 1.2.3.4"), "closed after 18 bytes"],
    ];
    for (const [wire, phrase] of bad) {
      const before = calls.length;
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      const peer = `127.0.0.1:${(conn.localAddr as Deno.NetAddr).port}`;
      if (wire.length > 0) await writeAll(conn, wire);
      if (phrase.startsWith("closed")) await conn.closeWrite();
      // The server closes the connection without a byte of reply.
      assertEquals(
        (await within(readAll(conn), "the close", 10_000)).length,
        0,
      );
      conn.close();
      await within(
        (async () => {
          while (calls.length === before) await sleep(5);
        })(),
        "the exception handler",
        10_000,
      );
      await sleep(20);
      assertEquals(calls.length, before + 1, phrase);
      const call = calls.at(-1)!;
      assertStringIncludes(call.message, `from ${peer}`);
      assertStringIncludes(call.message, "PROXY protocol header was rejected");
      assertStringIncludes(call.message, phrase);
      assertStringIncludes(call.message, "connection closed");
      assertInstanceOf(call.error, ProxyProtocolError);
      assertEquals(call.transport, undefined);
    }
    assertEquals(recorders.length, 0, "no protocol was made");
    // Still serving.
    const [client] = await createConnection(() => ({}), {
      port,
      proxyHeader: VALID[5]!.header,
    });
    await within(
      (async () => {
        while (recorders.length === 0) await sleep(5);
      })(),
      "a good connection",
      10_000,
    );
    await within(recorders[0]!.made.promise, "connectionMade", 10_000);
    assertEquals(recorders[0]!.events[0], ["made", {
      peername: VALID[5]!.header.source,
      sockname: VALID[5]!.header.destination,
      proxy: VALID[5]!.header,
    }]);
    client.close();
    assertEquals(calls.length, bad.length);
  });
});

Deno.test('createServer({ proxyProtocol: "v1" | "v2" }) rejects the other version', async () => {
  await withHandler(async (calls) => {
    for (
      const [mode, wire] of [["v1", VALID[5]!.wire], [
        "v2",
        VALID[0]!.wire,
      ]] as const
    ) {
      const { server, port, recorders } = await proxyServer({
        proxyProtocol: mode,
      });
      await using _ = server;
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await writeAll(conn, wire);
      assertEquals(
        (await within(readAll(conn), "the close", 10_000)).length,
        0,
      );
      conn.close();
      await within(
        (async () => {
          while (calls.length === 0) await sleep(5);
        })(),
        "the exception handler",
        10_000,
      );
      assertStringIncludes(calls[0]!.message, "does not start with");
      assertEquals(recorders.length, 0);
      calls.length = 0;
    }
  });
});

Deno.test("createServer({ proxyProtocolTimeout }) drops a peer that does not finish its header in time", async () => {
  await withHandler(async (calls) => {
    const { server, port, recorders } = await proxyServer({
      proxyProtocolTimeout: 200,
    });
    await using _ = server;
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await writeAll(conn, encoder.encode("PROXY TCP4 "));
    assertEquals((await within(readAll(conn), "the close", 10_000)).length, 0);
    conn.close();
    await within(
      (async () => {
        while (calls.length === 0) await sleep(5);
      })(),
      "the exception handler",
      10_000,
    );
    await sleep(50);
    assertEquals(calls.length, 1);
    assertInstanceOf(calls[0]!.error, Deno.errors.TimedOut);
    assertStringIncludes(
      calls[0]!.message,
      "No complete PROXY protocol header within 200 ms (11 bytes received)",
    );
    assertEquals(recorders.length, 0);
  });
});

Deno.test("Server.close() drops connections still sending their header, without an exception", async () => {
  await withHandler(async (calls) => {
    const { server, port, recorders } = await proxyServer();
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await writeAll(conn, encoder.encode("PROXY "));
    await sleep(50);
    server.close();
    assertEquals((await within(readAll(conn), "the close", 10_000)).length, 0);
    conn.close();
    await within(server.waitClosed(), "waitClosed", 10_000);
    await sleep(20);
    assertEquals(calls, []);
    assertEquals(recorders.length, 0);
  });
});

Deno.test('createServer({ transport: "unix", proxyProtocol }) takes the addresses from the header', async () => {
  const dir = await Deno.makeTempDir({ prefix: "denio_proxy_" });
  try {
    const path = `${dir}/s.sock`;
    const recorders: Recorder[] = [];
    await using _ = await createServer(() => {
      const recorder = new Recorder();
      recorders.push(recorder);
      return recorder;
    }, { transport: "unix", path, proxyProtocol: true });
    const header = VALID[1]!.header;
    const [client] = await createConnection(() => ({}), {
      transport: "unix",
      path,
      proxyHeader: header,
    });
    client.write(encoder.encode("over unix"));
    await within(
      (async () => {
        while (recorders[0]?.received() !== "over unix") await sleep(5);
      })(),
      "the data",
      10_000,
    );
    assertEquals(recorders[0]!.events[0], ["made", {
      peername: header.source,
      sockname: header.destination,
      proxy: header,
    }]);
    client.close();
    await within(recorders[0]!.lost.promise, "connectionLost", 10_000);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "createServer({ proxyProtocol, tls }) reads the header before the TLS handshake",
  async fn() {
    const certs = await makeTestCerts();
    await Deno.remove(certs.dir, { recursive: true });
    await withHandler(async (calls) => {
      const { server, port, recorders } = await proxyServer({
        tls: { cert: certs.cert, key: certs.key, alpnProtocols: ["echo"] },
      });
      await using _ = server;
      const got = Promise.withResolvers<string>();
      const [client] = await createConnection((): Protocol => ({
        dataReceived: (data: Uint8Array) => got.resolve(decoder.decode(data)),
      }), {
        port,
        proxyHeader: VALID[6]!.header,
        tls: { caCerts: [certs.caCert], alpnProtocols: ["echo"] },
      });
      client.write(encoder.encode("secret"));
      assertEquals(await within(got.promise, "the echo", 10_000), "secret");
      assertEquals(client.getExtraInfo("alpnProtocol"), "echo");
      const recorder = recorders[0]!;
      assertEquals(recorder.events, [
        ["made", {
          peername: VALID[6]!.header.source,
          sockname: VALID[6]!.header.destination,
          proxy: VALID[6]!.header,
        }],
        ["data", "secret"],
      ]);
      assertEquals(recorder.transport!.getExtraInfo("alpnProtocol"), "echo");
      client.close();
      await within(recorder.lost.promise, "connectionLost", 10_000);
      // A client that speaks TLS without the header is refused.
      await assertRejects(() =>
        createConnection(() => ({}), { port, tls: { caCerts: [certs.caCert] } })
      );
      await within(
        (async () => {
          while (calls.length === 0) await sleep(5);
        })(),
        "the exception handler",
        10_000,
      );
      assertEquals(calls.length, 1);
      assertStringIncludes(calls[0]!.message, "does not start with");
    });
    await assertRejects(
      () =>
        createServer(() => ({}), {
          port: 0,
          proxyProtocol: true,
          tls: { cert: "not a cert", key: "not a key" },
        }),
    );
  },
});

// ---------------------------------------------------------------- HAProxy

const noHaproxy = peerMissing("haproxy");

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Starts HAProxy in front of `backendPort`; resolves once it listens. */
async function startHaproxy(
  backendPort: number,
  serverOptions: string,
  tcpCheck: boolean,
): Promise<{ port: number; stop: () => Promise<string> }> {
  const dir = await Deno.makeTempDir({ prefix: "denio_haproxy_" });
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = freePort();
      const probe = freePort();
      const config = `global
  nbthread 1
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:${port}
  unique-id-format id-%cp
  default_backend be
frontend probe
  bind 127.0.0.1:${probe}
  tcp-request connection reject
backend be
${
        tcpCheck
          ? "  option tcp-check\n  tcp-check send-binary 70696e670a\n  tcp-check expect string ping\n"
          : ""
      }  server s1 127.0.0.1:${backendPort} ${serverOptions}
`;
      const path = `${dir}/haproxy.cfg`;
      await Deno.writeTextFile(path, config);
      const child = new Deno.Command("haproxy", {
        args: ["-db", "-f", path],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const output = Promise.all([
        new Response(child.stdout).text(),
        new Response(child.stderr).text(),
      ]).then(([out, err]) => out + err);
      let exited = false;
      const status = child.status.then((s) => {
        exited = true;
        return s;
      });
      const stop = async (): Promise<string> => {
        if (!exited) {
          try {
            child.kill("SIGTERM");
          } catch {
            // Already gone.
          }
        }
        await status;
        return await output;
      };
      // Ready once the probe port accepts (it touches no backend).
      let ready = false;
      for (let i = 0; i < 200 && !exited; i++) {
        try {
          const conn = await Deno.connect({
            hostname: "127.0.0.1",
            port: probe,
          });
          conn.close();
          ready = true;
          break;
        } catch {
          await sleep(25);
        }
      }
      if (ready) return { port, stop };
      const log = await stop();
      if (!/bind|address already in use/i.test(log)) {
        throw new Error(`haproxy did not start:\n${log}`);
      }
    }
    throw new Error("haproxy could not bind a free port in 5 attempts");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

for (const version of [1, 2] as const) {
  for (const checks of [false, true]) {
    const send = version === 1 ? "send-proxy" : "send-proxy-v2";
    Deno.test({
      name: `createServer({ proxyProtocol }) behind a real HAProxy (${send}${
        checks ? ", check check-send-proxy" : ""
      }) sees the client's address`,
      ignore: noHaproxy !== null,
      async fn() {
        await withHandler(async (calls) => {
          const { server, port: backend, recorders } = await proxyServer({
            proxyProtocol: version === 1 ? "v1" : "v2",
          });
          await using _ = server;
          const haproxy = await startHaproxy(
            backend,
            // v2: HAProxy adds a CRC32C and a unique-ID TLV (checked below).
            `${send}${
              version === 2 ? " proxy-v2-options crc32c,unique-id" : ""
            }${checks ? " check check-send-proxy inter 100ms" : ""}`,
            checks,
          );
          let log = "";
          try {
            const conn = await Deno.connect({
              hostname: "127.0.0.1",
              port: haproxy.port,
            });
            await writeAll(conn, encoder.encode("through haproxy"));
            assertEquals(
              decoder.decode(
                await within(readExactly(conn, 15), "the echo", 10_000),
              ),
              "through haproxy",
            );
            const relayed = recorders.find((r) =>
              r.received() === "through haproxy"
            );
            if (relayed === undefined) throw new Error("no relayed connection");
            const made = relayed.events[0]![1] as {
              peername: Deno.NetAddr;
              sockname: Deno.NetAddr;
              proxy: ProxyHeader;
            };
            // HAProxy reports the client's own socket, not itself.
            assertEquals(made.peername, conn.localAddr);
            assertEquals(made.sockname, conn.remoteAddr);
            assertEquals(made.proxy.version, version);
            assertEquals(made.proxy.command, "PROXY");
            assertEquals(made.proxy.source, conn.localAddr as Deno.NetAddr);
            if (version === 2) {
              // The parser verified HAProxy's CRC32C (a mismatch rejects).
              const types = made.proxy.tlvs!.map((t) => t.type);
              assertEquals(types.sort(), [0x03, 0x05]);
              const id = made.proxy.tlvs!.find((t) => t.type === 0x05)!;
              assertEquals(
                decoder.decode(id.value),
                `id-${(conn.localAddr as Deno.NetAddr).port}`,
              );
            } else {
              assertEquals(made.proxy.tlvs, undefined);
            }
            conn.close();
            await within(relayed.lost.promise, "connectionLost", 10_000);
            if (checks) {
              // A tcp-check every 100 ms: its own header, then "ping\n",
              // which the echo answers (so HAProxy keeps the server up).
              const probes = () =>
                recorders.filter((r) => r.received() === "ping\n");
              await within(
                (async () => {
                  while (probes().length < 3) await sleep(20);
                })(),
                "three health checks",
                15_000,
              );
              for (const probe of probes().slice(0, 3)) {
                const info = probe.events[0]![1] as {
                  peername: Deno.NetAddr;
                  sockname: Deno.NetAddr;
                  proxy: ProxyHeader;
                };
                const socket = probe.transport!.getExtraInfo(
                  "socket",
                ) as Deno.Conn;
                // The check's own socket addresses, either way.
                assertEquals(info.peername, socket.remoteAddr);
                assertEquals(info.sockname, socket.localAddr);
                if (version === 2) {
                  // A LOCAL command: no addresses, the socket's stay;
                  // HAProxy still adds its (verified) CRC32C TLV.
                  assertEquals(info.proxy.command, "LOCAL");
                  assertEquals(info.proxy.source, undefined);
                  assertEquals(info.proxy.destination, undefined);
                  assertEquals(info.proxy.tlvs!.map((t) => t.type), [0x03]);
                } else {
                  // Version 1 has no LOCAL: HAProxy sends the check's
                  // own addresses, as the specification recommends.
                  assertEquals(info.proxy, {
                    version: 1,
                    command: "PROXY",
                    source: socket.remoteAddr as Deno.NetAddr,
                    destination: socket.localAddr as Deno.NetAddr,
                  });
                }
              }
            } else {
              await sleep(300);
              assertEquals(recorders.length, 1, "no health checks");
            }
          } finally {
            log = await haproxy.stop();
          }
          assertEquals(calls.map((c) => c.message), [], log);
        });
      },
    });
  }
}

Deno.test({
  name:
    "createServer({ proxyProtocol, tls }) behind a real HAProxy in TCP mode (send-proxy-v2) serves TLS",
  ignore: noHaproxy !== null,
  async fn() {
    const certs = await makeTestCerts();
    await Deno.remove(certs.dir, { recursive: true });
    await withHandler(async (calls) => {
      const { server, port: backend, recorders } = await proxyServer({
        tls: { cert: certs.cert, key: certs.key },
      });
      await using _ = server;
      const haproxy = await startHaproxy(backend, "send-proxy-v2", false);
      let log = "";
      try {
        const got = Promise.withResolvers<string>();
        const [client] = await createConnection((): Protocol => ({
          dataReceived: (data: Uint8Array) => got.resolve(decoder.decode(data)),
        }), {
          port: haproxy.port,
          tls: { caCerts: [certs.caCert], hostname: "localhost" },
        });
        client.write(encoder.encode("tls through haproxy"));
        assertEquals(
          await within(got.promise, "the echo", 10_000),
          "tls through haproxy",
        );
        const made = recorders[0]!.events[0]![1] as {
          peername: unknown;
          proxy: ProxyHeader;
        };
        // (A TLS client's sockname lacks `transport` in Deno 2.9.)
        const local = client.getExtraInfo("sockname") as Deno.NetAddr;
        assertEquals(made.peername, {
          transport: "tcp",
          hostname: local.hostname,
          port: local.port,
        });
        assertEquals(made.proxy.version, 2);
        assertEquals(made.proxy.command, "PROXY");
        client.close();
        await within(recorders[0]!.lost.promise, "connectionLost", 10_000);
      } finally {
        log = await haproxy.stop();
      }
      assertEquals(calls.map((c) => c.message), [], log);
    });
  },
});

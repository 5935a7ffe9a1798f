// Copyright 2026 the denio authors. MIT license.
// The PROXY protocol, versions 1 and 2 (HAProxy's doc/proxy-protocol.txt):
// an incremental header parser for servers, a header encoder for clients,
// and the checks of a user's ProxyHeader. No I/O here.

import { describe } from "./_validate.ts";

/**
 * One type-length-value entry of a version 2 PROXY header, kept as sent.
 *
 * @example The host name a client asked for (HAProxy's `proxy-v2-options authority`)
 * ```ts
 * import type { ProxyHeader } from "@denio/protocols";
 * import { assertEquals } from "@std/assert";
 *
 * function authority(header: ProxyHeader): string | undefined {
 *   const tlv = header.tlvs?.find((entry) => entry.type === 0x02);
 *   return tlv && new TextDecoder().decode(tlv.value);
 * }
 * assertEquals(
 *   authority({
 *     version: 2,
 *     command: "PROXY",
 *     tlvs: [{ type: 0x02, value: new TextEncoder().encode("example.com") }],
 *   }),
 *   "example.com",
 * );
 * ```
 */
export interface ProxyTlv {
  /** The type byte, 0 to 255 (0x01 ALPN, 0x02 authority, 0x05 unique ID, 0x20 SSL, …). */
  type: number;
  /** The value bytes, unparsed (the SSL TLV's sub-TLVs stay inside it). */
  value: Uint8Array;
}

/**
 * A PROXY protocol header (HAProxy's PROXY protocol, version 1 text or
 * version 2 binary): the addresses of the connection a load balancer
 * relays. A server with `proxyProtocol` set reads one from each connection
 * and answers it as `getExtraInfo("proxy")`; `createConnection` sends one
 * given as `proxyHeader`.
 *
 * - `command` is `"PROXY"` for a relayed connection and `"LOCAL"` for one the
 *   proxy made itself (version 2 health checks); a LOCAL header carries no
 *   addresses, and the connection's own addresses stay in use.
 * - `source` is the client as the proxy saw it (the server's `peername`),
 *   `destination` the address the client connected to (its `sockname`).
 *   Both are present or both absent. They are absent for a version 1
 *   `UNKNOWN` line, a version 2 `AF_UNSPEC` or `UNSPEC` header, and a
 *   version 2 `AF_UNIX` header (the specification lets a receiver treat the
 *   families it does not map as unspecified; `Deno.NetAddr` holds no path).
 *   `transport` is `"udp"` for a version 2 datagram header, else `"tcp"`.
 *   IPv6 hostnames are in the form Deno reports (`"::1"`,
 *   `"::ffff:192.0.2.1"`).
 * - `tlvs` (version 2 only, in the order sent; absent or empty when none):
 *   a server checks a CRC32C TLV (type 0x03) against the header and rejects
 *   a mismatch; the others are kept unparsed.
 *
 * @example Send a header and read it back on a server
 * ```ts
 * import {
 *   createConnection,
 *   createServer,
 *   type ProxyHeader,
 * } from "@denio/protocols";
 * import { assertEquals } from "@std/assert";
 *
 * const seen = Promise.withResolvers<[unknown, ProxyHeader]>();
 * await using server = await createServer(() => ({
 *   connectionMade(transport) {
 *     seen.resolve([
 *       transport.getExtraInfo("peername"),
 *       transport.getExtraInfo("proxy") as ProxyHeader,
 *     ]);
 *     transport.close();
 *   },
 * }), { hostname: "127.0.0.1", port: 0, proxyProtocol: true });
 * const { port } = server.addrs[0] as Deno.NetAddr;
 *
 * const header: ProxyHeader = {
 *   version: 2,
 *   command: "PROXY",
 *   source: { transport: "tcp", hostname: "203.0.113.7", port: 51000 },
 *   destination: { transport: "tcp", hostname: "198.51.100.1", port: 443 },
 *   tlvs: [{ type: 0x02, value: new TextEncoder().encode("example.com") }],
 * };
 * const [transport] = await createConnection(() => ({}), {
 *   port,
 *   proxyHeader: header,
 * });
 * const [peername, proxy] = await seen.promise;
 * assertEquals(peername, header.source);
 * assertEquals(proxy, header);
 * transport.close();
 * ```
 */
export interface ProxyHeader {
  /** 1 (text) or 2 (binary). */
  version: 1 | 2;
  /** `"PROXY"` (a relayed connection) or `"LOCAL"` (the proxy's own, version 2 only). */
  command: "PROXY" | "LOCAL";
  /** The client's address, as the proxy saw it. */
  source?: Deno.NetAddr;
  /** The address the client connected to. */
  destination?: Deno.NetAddr;
  /** Version 2 type-length-value entries, in order. */
  tlvs?: ProxyTlv[];
}

/** Which headers a server accepts: one version, or either by its first bytes. */
export type ProxyMode = "v1" | "v2" | "any";

/** A header that breaks the specification (or this module's size cap). */
export class ProxyProtocolError extends Error {
  /** Makes the error. */
  constructor(message: string) {
    super(message);
    this.name = "ProxyProtocolError";
  }
}

/** The longest version 1 line, CRLF included (the specification's 107). */
export const V1_MAX_LENGTH = 107;
/**
 * The longest version 2 header accepted: 16 KiB, HAProxy's default buffer
 * size (`tune.bufsize`), which bounds what HAProxy itself can receive.
 */
export const V2_MAX_LENGTH = 16 * 1024;

const V2_SIGNATURE = new Uint8Array([
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
]);
const V1_PREFIX = new Uint8Array([0x50, 0x52, 0x4f, 0x58, 0x59, 0x20]); // "PROXY "
const V1_PROTOCOLS = ["TCP4 ", "TCP6 ", "UNKNOWN"];
const CR = 0x0d;
const LF = 0x0a;

/** Bytes of the address block for each version 2 family (UNSPEC, INET, INET6, UNIX). */
const V2_ADDRESS_LENGTH = [0, 12, 36, 216] as const;

/** What the parser returns once a header is complete. */
export interface ProxyParseResult {
  /** The header. */
  header: ProxyHeader;
  /** The bytes of the last chunk that follow the header (a view into it). */
  rest: Uint8Array;
}

/**
 * An incremental PROXY header parser: feed it the connection's bytes as they
 * arrive; it fails as soon as a byte cannot start a valid header and
 * returns the header and the bytes after it once the header is complete. It
 * never buffers more than the header itself.
 */
export class ProxyHeaderParser {
  #mode: ProxyMode;
  #version: 0 | 1 | 2 = 0;
  #buffer = new Uint8Array(V1_MAX_LENGTH);
  #length = 0;
  #total = 0; // version 2: 16 + the length field, once known
  #done = false;

  /** @param mode The versions accepted. */
  constructor(mode: ProxyMode) {
    this.#mode = mode;
  }

  /**
   * Feeds `chunk`; returns the result once the header is complete, else
   * `null` (more bytes needed).
   *
   * @throws {ProxyProtocolError} If the bytes cannot be a valid header.
   */
  push(chunk: Uint8Array): ProxyParseResult | null {
    if (this.#done) throw new Error("The PROXY header is already complete");
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#version === 0) this.#detect(chunk[offset]!);
      if (this.#version === 1) {
        const end = this.#pushV1(chunk, offset);
        if (end < 0) return null;
        this.#done = true;
        return {
          header: parseV1(this.#buffer.subarray(0, this.#length - 2)),
          rest: chunk.subarray(end),
        };
      }
      offset = this.#pushV2(chunk, offset);
      if (this.#total !== 0 && this.#length === this.#total) {
        this.#done = true;
        return {
          header: parseV2(this.#buffer.subarray(0, this.#length)),
          rest: chunk.subarray(offset),
        };
      }
    }
    return null;
  }

  #detect(first: number): void {
    if (first === V1_PREFIX[0] && this.#mode !== "v2") {
      this.#version = 1;
    } else if (first === V2_SIGNATURE[0] && this.#mode !== "v1") {
      this.#version = 2;
      this.#buffer = new Uint8Array(16);
    } else {
      const expected = this.#mode === "v1"
        ? 'a version 1 header ("PROXY ")'
        : this.#mode === "v2"
        ? "the version 2 signature"
        : 'a version 1 ("PROXY ") or version 2 header';
      throw new ProxyProtocolError(
        `The connection does not start with ${expected}: first byte is ${
          hexByte(first)
        }`,
      );
    }
  }

  /** Appends up to the CRLF; returns the chunk offset after it, or -1. */
  #pushV1(chunk: Uint8Array, offset: number): number {
    const buffer = this.#buffer;
    for (let i = offset; i < chunk.length; i++) {
      const byte = chunk[i]!;
      const at = this.#length;
      buffer[at] = byte;
      this.#length = at + 1;
      if (at < V1_PREFIX.length) {
        if (byte !== V1_PREFIX[at]) {
          throw new ProxyProtocolError(
            `The PROXY protocol v1 header does not start with "PROXY ": byte ${at} is ${
              hexByte(byte)
            }`,
          );
        }
        continue;
      }
      const previous = buffer[at - 1]!;
      if (previous === CR && byte !== LF) {
        throw new ProxyProtocolError(
          "The PROXY protocol v1 header has a CR not followed by LF",
        );
      }
      if (byte === LF) {
        if (previous !== CR) {
          throw new ProxyProtocolError(
            "The PROXY protocol v1 header has an LF without a CR before it",
          );
        }
        return i + 1;
      }
      if (byte !== CR) checkV1Protocol(buffer, at);
      if (this.#length === V1_MAX_LENGTH) {
        throw new ProxyProtocolError(
          `The PROXY protocol v1 header has no CRLF within ${V1_MAX_LENGTH} bytes`,
        );
      }
    }
    return -1;
  }

  /** Appends what the version 2 header still needs; returns the new offset. */
  #pushV2(chunk: Uint8Array, offset: number): number {
    while (offset < chunk.length) {
      const at = this.#length;
      if (at < 16) {
        const byte = chunk[offset++]!;
        checkV2Byte(at, byte);
        this.#buffer[at] = byte;
        this.#length = at + 1;
        if (at === 15) {
          const total = 16 + (this.#buffer[14]! << 8 | byte);
          if (total > V2_MAX_LENGTH) {
            throw new ProxyProtocolError(
              `The PROXY protocol v2 header is too long: ${total} bytes, at most ${V2_MAX_LENGTH} accepted`,
            );
          }
          const grown = new Uint8Array(total);
          grown.set(this.#buffer);
          this.#buffer = grown;
          this.#total = total;
          if (total === 16) return offset;
        }
        continue;
      }
      const take = Math.min(this.#total - at, chunk.length - offset);
      this.#buffer.set(chunk.subarray(offset, offset + take), at);
      this.#length = at + take;
      return offset + take;
    }
    return offset;
  }
}

/** Fails early when the protocol word of a version 1 line cannot match. */
function checkV1Protocol(buffer: Uint8Array, at: number): void {
  const index = at - V1_PREFIX.length;
  if (index >= 7) return;
  for (const word of V1_PROTOCOLS) {
    let matches = true;
    for (let i = 0; matches && i <= index && i < word.length; i++) {
      matches = word.charCodeAt(i) === buffer[V1_PREFIX.length + i];
    }
    if (matches) return;
  }
  throw new ProxyProtocolError(
    `The PROXY protocol v1 header has an unknown protocol: expected TCP4, TCP6 or UNKNOWN: got ${
      JSON.stringify(latin1(buffer.subarray(V1_PREFIX.length, at + 1)))
    }`,
  );
}

/** Checks byte `at` of the fixed 16-byte version 2 prefix. */
function checkV2Byte(at: number, byte: number): void {
  if (at < 12) {
    if (byte !== V2_SIGNATURE[at]) {
      throw new ProxyProtocolError(
        `The PROXY protocol v2 signature is wrong: byte ${at} is ${
          hexByte(byte)
        }, expected ${hexByte(V2_SIGNATURE[at]!)}`,
      );
    }
  } else if (at === 12) {
    if (byte >> 4 !== 2) {
      throw new ProxyProtocolError(
        `The PROXY protocol v2 header has an unsupported version: ${
          byte >> 4
        } (byte ${hexByte(byte)})`,
      );
    }
    if ((byte & 0x0f) > 1) {
      throw new ProxyProtocolError(
        `The PROXY protocol v2 header has an unknown command: ${
          byte & 0x0f
        } (0 is LOCAL, 1 is PROXY)`,
      );
    }
  } else if (at === 13) {
    if (byte >> 4 > 3 || (byte & 0x0f) > 2) {
      throw new ProxyProtocolError(
        `The PROXY protocol v2 header has an unknown address family or transport: ${
          hexByte(byte)
        }`,
      );
    }
  }
}

/** Parses a complete version 1 line, without its CRLF. */
function parseV1(line: Uint8Array): ProxyHeader {
  const text = latin1(line.subarray(V1_PREFIX.length));
  if (text === "UNKNOWN" || text.startsWith("UNKNOWN ")) {
    // The specification: anything before the CRLF is ignored.
    return { version: 1, command: "PROXY" };
  }
  const fields = text.split(" ");
  const family = fields[0];
  if (family !== "TCP4" && family !== "TCP6") {
    throw new ProxyProtocolError(
      `The PROXY protocol v1 header has an unknown protocol: expected TCP4, TCP6 or UNKNOWN: got ${
        JSON.stringify(family)
      }`,
    );
  }
  if (fields.length !== 5) {
    throw new ProxyProtocolError(
      `The PROXY protocol v1 header does not have 4 fields separated by single spaces after ${family}: got ${
        JSON.stringify(text)
      }`,
    );
  }
  const parse = family === "TCP4" ? parseIpv4 : parseIpv6;
  const names = ["source address", "destination address"];
  const addresses = [fields[1]!, fields[2]!].map((field, i) => {
    const bytes = parse(field);
    if (bytes === null) {
      throw new ProxyProtocolError(
        `The PROXY protocol v1 header's ${names[i]} is not a valid ${
          family === "TCP4" ? "IPv4" : "IPv6"
        } address: got ${JSON.stringify(field)}`,
      );
    }
    return formatIp(bytes);
  });
  const ports = [fields[3]!, fields[4]!].map((field, i) => {
    const port = parsePort(field);
    if (port === null) {
      throw new ProxyProtocolError(
        `The PROXY protocol v1 header's ${
          i === 0 ? "source" : "destination"
        } port is not a decimal from 0 to 65535 without leading zeros: got ${
          JSON.stringify(field)
        }`,
      );
    }
    return port;
  });
  return {
    version: 1,
    command: "PROXY",
    source: { transport: "tcp", hostname: addresses[0]!, port: ports[0]! },
    destination: { transport: "tcp", hostname: addresses[1]!, port: ports[1]! },
  };
}

/** Parses a complete version 2 header (its prefix already checked). */
function parseV2(bytes: Uint8Array): ProxyHeader {
  const command = (bytes[12]! & 0x0f) === 1 ? "PROXY" : "LOCAL";
  const family = bytes[13]! >> 4;
  const transport = bytes[13]! & 0x0f;
  const blockLength = bytes.length - 16;
  const addressLength = V2_ADDRESS_LENGTH[family as 0 | 1 | 2 | 3];
  let tlvStart = 16 + addressLength;
  let header: ProxyHeader = { version: 2, command };
  if (blockLength < addressLength) {
    if (command === "PROXY") {
      throw new ProxyProtocolError(
        `The PROXY protocol v2 header is too short for its addresses: ${blockLength} bytes, ${addressLength} needed for family ${family}`,
      );
    }
    // LOCAL: the address block is ignored, whatever it holds.
    tlvStart = bytes.length;
  } else if (
    command === "PROXY" && (family === 1 || family === 2) &&
    transport !== 0
  ) {
    const size = family === 1 ? 4 : 16;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    const ports = 16 + 2 * size;
    const kind = transport === 1 ? "tcp" : "udp";
    header = {
      version: 2,
      command,
      source: {
        transport: kind,
        hostname: formatIp(bytes.subarray(16, 16 + size)),
        port: view.getUint16(ports),
      },
      destination: {
        transport: kind,
        hostname: formatIp(bytes.subarray(16 + size, ports)),
        port: view.getUint16(ports + 2),
      },
    };
  }
  header.tlvs = parseTlvs(bytes, tlvStart);
  return header;
}

const CRC32C_TYPE = 0x03;

function parseTlvs(bytes: Uint8Array, start: number): ProxyTlv[] {
  const tlvs: ProxyTlv[] = [];
  let offset = start;
  while (offset < bytes.length) {
    if (offset + 3 > bytes.length) {
      throw new ProxyProtocolError(
        `The PROXY protocol v2 header ends inside a TLV header: ${
          bytes.length - offset
        } bytes left at offset ${offset}`,
      );
    }
    const type = bytes[offset]!;
    const length = bytes[offset + 1]! << 8 | bytes[offset + 2]!;
    const end = offset + 3 + length;
    if (end > bytes.length) {
      throw new ProxyProtocolError(
        `The PROXY protocol v2 TLV of type ${
          hexByte(type)
        } at offset ${offset} runs past the header: ${length} bytes announced, ${
          bytes.length - offset - 3
        } left`,
      );
    }
    if (type === CRC32C_TYPE) checkCrc(bytes, offset + 3, length);
    tlvs.push({ type, value: bytes.slice(offset + 3, end) });
    offset = end;
  }
  return tlvs;
}

function checkCrc(bytes: Uint8Array, at: number, length: number): void {
  if (length !== 4) {
    throw new ProxyProtocolError(
      `The PROXY protocol v2 CRC32C TLV is not 4 bytes long: got ${length}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const sent = view.getUint32(at);
  const copy = bytes.slice();
  copy.fill(0, at, at + 4);
  const computed = crc32c(copy);
  if (computed !== sent) {
    throw new ProxyProtocolError(
      `The PROXY protocol v2 CRC32C checksum does not match: header says ${
        hex32(sent)
      }, computed ${hex32(computed)}`,
    );
  }
}

let crcTable: Uint32Array | undefined;

/** CRC32C (Castagnoli, RFC 4960 appendix B), as the specification's TLV 0x03. */
export function crc32c(bytes: Uint8Array): number {
  if (crcTable === undefined) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const byte of bytes) crc = crcTable[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

// ------------------------------------------------------------- addresses

const IPV4 = /^(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/;

/** Parses a dotted quad (no leading zeros); null if invalid. */
export function parseIpv4(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    if (!IPV4.test(parts[i]!)) return null;
    bytes[i] = Number(parts[i]);
  }
  return bytes;
}

const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/;

/**
 * Parses an IPv6 address (groups of 1 to 4 hex digits, at most one `::`, an
 * optional dotted-quad tail as `inet_ntop` writes for mapped addresses);
 * null if invalid.
 */
export function parseIpv6(text: string): Uint8Array | null {
  if (text.length > 45) return null;
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups: number[][] = [];
  for (let h = 0; h < halves.length; h++) {
    const half = halves[h]!;
    const out: number[] = [];
    if (half !== "") {
      const parts = half.split(":");
      for (let i = 0; i < parts.length; i++) {
        const part = parts[i]!;
        if (
          i === parts.length - 1 && h === halves.length - 1 &&
          part.includes(".")
        ) {
          const v4 = parseIpv4(part);
          if (v4 === null) return null;
          out.push(v4[0]! << 8 | v4[1]!, v4[2]! << 8 | v4[3]!);
          continue;
        }
        if (!HEX_GROUP.test(part)) return null;
        out.push(parseInt(part, 16));
      }
    }
    groups.push(out);
  }
  const bytes = new Uint8Array(16);
  const head = groups[0]!;
  const tail = groups[1];
  if (tail === undefined) {
    if (head.length !== 8) return null;
  } else if (head.length + tail.length > 7) {
    return null;
  }
  const all = tail === undefined
    ? head
    : [...head, ...new Array(8 - head.length - tail.length).fill(0), ...tail];
  for (let i = 0; i < 8; i++) {
    bytes[2 * i] = all[i]! >> 8;
    bytes[2 * i + 1] = all[i]! & 0xff;
  }
  return bytes;
}

/**
 * Formats 4 or 16 address bytes as Deno reports addresses (Rust's
 * `IpAddr` display: RFC 5952, with `::ffff:a.b.c.d` for mapped IPv4).
 */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join(".");
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes[i]! << 8 | bytes[i + 1]!);
  if (
    groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff
  ) {
    return `::ffff:${bytes.subarray(12).join(".")}`;
  }
  // The longest run of at least two zero groups (the first on a tie).
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${
    hex.slice(bestStart + bestLength).join(":")
  }`;
}

const PORT = /^(?:0|[1-9][0-9]{0,4})$/;

function parsePort(text: string): number | null {
  if (!PORT.test(text)) return null;
  const port = Number(text);
  return port <= 65535 ? port : null;
}

function latin1(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return text;
}

function hexByte(byte: number): string {
  return `0x${byte.toString(16).padStart(2, "0")}`;
}

function hex32(value: number): string {
  return `0x${value.toString(16).padStart(8, "0")}`;
}

// --------------------------------------------------------------- encoding

/**
 * Checks a user's {@linkcode ProxyHeader} (the `proxyHeader` option) and
 * encodes it. Version 1 sends `PROXY UNKNOWN` when there are no addresses;
 * version 2 sends family `AF_UNSPEC` then.
 *
 * @throws {TypeError} If a field has the wrong type or form.
 * @throws {RangeError} If a number is out of range or the header too long.
 */
export function encodeProxyHeader(value: unknown, action: string): Uint8Array {
  const name = "proxyHeader";
  if (value === null || typeof value !== "object") {
    throw new TypeError(
      `Cannot ${action} as ${name} is not an object: current value is ${
        describe(value)
      }`,
    );
  }
  const header = value as Record<string, unknown>;
  const version = header.version;
  if (typeof version !== "number") {
    throw new TypeError(
      `Cannot ${action} as ${name}.version is not a number: current value is ${
        describe(version)
      }`,
    );
  }
  if (version !== 1 && version !== 2) {
    throw new RangeError(
      `Cannot ${action} as ${name}.version is not 1 or 2: current value is ${version}`,
    );
  }
  const command = header.command;
  if (command !== "PROXY" && command !== "LOCAL") {
    throw new TypeError(
      `Cannot ${action} as ${name}.command is not "PROXY" or "LOCAL": current value is ${
        describe(command)
      }`,
    );
  }
  if (version === 1 && command === "LOCAL") {
    throw new TypeError(
      `Cannot ${action} as ${name}.command "LOCAL" needs version 2: current value is version 1`,
    );
  }
  const hasSource = header.source !== undefined;
  const hasDestination = header.destination !== undefined;
  if (hasSource !== hasDestination) {
    throw new TypeError(
      `Cannot ${action} as ${name} has ${
        hasSource ? "source" : "destination"
      } without ${hasSource ? "destination" : "source"}: current value is ${
        describe(hasSource ? header.destination : header.source)
      }`,
    );
  }
  if (command === "LOCAL" && hasSource) {
    throw new TypeError(
      `Cannot ${action} as ${name} has addresses with command "LOCAL": current value is ${
        describe(header.source)
      }`,
    );
  }
  let addresses: { bytes: Uint8Array; port: number; udp: boolean }[] = [];
  if (hasSource) {
    addresses = [
      checkAddress(header.source, `${name}.source`, action),
      checkAddress(header.destination, `${name}.destination`, action),
    ];
    const [source, destination] = addresses as [
      (typeof addresses)[0],
      (typeof addresses)[0],
    ];
    if (source.bytes.length !== destination.bytes.length) {
      throw new TypeError(
        `Cannot ${action} as ${name}.source and ${name}.destination are of different address families: current value is ${
          JSON.stringify((header.destination as Deno.NetAddr).hostname)
        }`,
      );
    }
    if (source.udp !== destination.udp) {
      throw new TypeError(
        `Cannot ${action} as ${name}.source and ${name}.destination have different transports: current value is ${
          JSON.stringify((header.destination as Deno.NetAddr).transport)
        }`,
      );
    }
    if (version === 1 && source.udp) {
      throw new TypeError(
        `Cannot ${action} as ${name}.source.transport "udp" needs version 2: current value is version 1`,
      );
    }
  }
  const tlvs = checkTlvs(header.tlvs, `${name}.tlvs`, action);
  if (version === 1) {
    if (tlvs.length > 0) {
      throw new TypeError(
        `Cannot ${action} as ${name}.tlvs needs version 2: current value is version 1`,
      );
    }
    const [source, destination] = addresses;
    const line = source === undefined || destination === undefined
      ? "PROXY UNKNOWN\r\n"
      : `PROXY ${source.bytes.length === 4 ? "TCP4" : "TCP6"} ${
        formatIp(source.bytes)
      } ${formatIp(destination.bytes)} ${source.port} ${destination.port}\r\n`;
    return new TextEncoder().encode(line);
  }
  const addressLength = addresses.length === 0
    ? 0
    : 2 * addresses[0]!.bytes.length + 4;
  const tlvLength = tlvs.reduce((sum, tlv) => sum + 3 + tlv.value.length, 0);
  const total = 16 + addressLength + tlvLength;
  if (total > V2_MAX_LENGTH) {
    throw new RangeError(
      `Cannot ${action} as ${name} encodes to more than ${V2_MAX_LENGTH} bytes: current value is ${total} bytes`,
    );
  }
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out.set(V2_SIGNATURE);
  out[12] = 0x20 | (command === "PROXY" ? 1 : 0);
  if (addresses.length > 0) {
    const [source, destination] = addresses as [
      (typeof addresses)[0],
      (typeof addresses)[0],
    ];
    const size = source.bytes.length;
    out[13] = (size === 4 ? 0x10 : 0x20) | (source.udp ? 2 : 1);
    out.set(source.bytes, 16);
    out.set(destination.bytes, 16 + size);
    view.setUint16(16 + 2 * size, source.port);
    view.setUint16(18 + 2 * size, destination.port);
  }
  view.setUint16(14, total - 16);
  let offset = 16 + addressLength;
  for (const tlv of tlvs) {
    out[offset] = tlv.type;
    view.setUint16(offset + 1, tlv.value.length);
    out.set(tlv.value, offset + 3);
    offset += 3 + tlv.value.length;
  }
  return out;
}

function checkAddress(
  value: unknown,
  name: string,
  action: string,
): { bytes: Uint8Array; port: number; udp: boolean } {
  if (value === null || typeof value !== "object") {
    throw new TypeError(
      `Cannot ${action} as ${name} is not a Deno.NetAddr: current value is ${
        describe(value)
      }`,
    );
  }
  const addr = value as Record<string, unknown>;
  if (addr.transport !== "tcp" && addr.transport !== "udp") {
    throw new TypeError(
      `Cannot ${action} as ${name}.transport is not "tcp" or "udp": current value is ${
        describe(addr.transport)
      }`,
    );
  }
  if (typeof addr.hostname !== "string") {
    throw new TypeError(
      `Cannot ${action} as ${name}.hostname is not a string: current value is ${
        describe(addr.hostname)
      }`,
    );
  }
  const bytes = parseIpv4(addr.hostname) ?? parseIpv6(addr.hostname);
  if (bytes === null) {
    throw new TypeError(
      `Cannot ${action} as ${name}.hostname is not an IPv4 or IPv6 address: current value is ${
        JSON.stringify(addr.hostname)
      }`,
    );
  }
  const port = addr.port;
  if (typeof port !== "number") {
    throw new TypeError(
      `Cannot ${action} as ${name}.port is not a number: current value is ${
        describe(port)
      }`,
    );
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(
      `Cannot ${action} as ${name}.port is not an integer from 0 to 65535: current value is ${port}`,
    );
  }
  return { bytes, port, udp: addr.transport === "udp" };
}

function checkTlvs(value: unknown, name: string, action: string): ProxyTlv[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    throw new TypeError(
      `Cannot ${action} as ${name} is not an array: current value is ${
        describe(value)
      }`,
    );
  }
  return value.map((item: unknown, i) => {
    if (item === null || typeof item !== "object") {
      throw new TypeError(
        `Cannot ${action} as ${name}[${i}] is not an object: current value is ${
          describe(item)
        }`,
      );
    }
    const { type, value: bytes } = item as Record<string, unknown>;
    if (typeof type !== "number") {
      throw new TypeError(
        `Cannot ${action} as ${name}[${i}].type is not a number: current value is ${
          describe(type)
        }`,
      );
    }
    if (!Number.isInteger(type) || type < 0 || type > 255) {
      throw new RangeError(
        `Cannot ${action} as ${name}[${i}].type is not an integer from 0 to 255: current value is ${type}`,
      );
    }
    if (!(bytes instanceof Uint8Array)) {
      throw new TypeError(
        `Cannot ${action} as ${name}[${i}].value is not a Uint8Array: current value is ${
          describe(bytes)
        }`,
      );
    }
    if (bytes.length > 0xffff) {
      throw new RangeError(
        `Cannot ${action} as ${name}[${i}].value is longer than 65535 bytes: current value is ${bytes.length} bytes`,
      );
    }
    return { type, value: bytes };
  });
}

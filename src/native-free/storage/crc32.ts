// CRC-32 (the ISO-HDLC polynomial zlib uses). Node has zlib.crc32 from 20.15 (C, ~7 GB/s
// here); on older Node 20 releases the table-driven JavaScript twin below (~0.5 GB/s) runs.
import zlib from 'node:zlib';

const TABLE = new Int32Array(256);
for (let byte = 0; byte < 256; byte++) {
  let value = byte;
  for (let bit = 0; bit < 8; bit++) value = value & 1 ? 0xedb88320 ^ (value >>> 1) : value >>> 1;
  TABLE[byte] = value;
}

/** CRC-32 of `bytes`, continuing from `initial` (the CRC of what came before). */
export function crc32Table(bytes: Uint8Array, initial = 0): number {
  let crc = ~initial;
  for (let index = 0; index < bytes.length; index++) crc = TABLE[(crc ^ bytes[index]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}

export const crc32: (bytes: Uint8Array, initial?: number) => number = typeof zlib.crc32 === 'function' ? zlib.crc32 : crc32Table;

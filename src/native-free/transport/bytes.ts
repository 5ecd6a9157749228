// uWS's RecognizedString (a string, an ArrayBuffer or a typed array) to what node:http and
// `ws` take, and Node buffers to the exact ArrayBuffers uWS hands out.
import type { RecognizedString } from 'uWebSockets.js';

const encoder = new TextEncoder();

function bytesOf(value: Exclude<RecognizedString, string>): Uint8Array {
  return value instanceof ArrayBuffer ? new Uint8Array(value) : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

/** The value as text (UTF-8 for bytes). */
export function textOf(value: RecognizedString): string {
  return typeof value === 'string' ? value : Buffer.from(bytesOf(value)).toString();
}

/**
 * The value as a string or a copy of its bytes: uWS copies what it sends before returning,
 * and callers reuse their buffers at once (the output drain's scratch, the rings), while
 * Node keeps a reference to whatever it could not write yet.
 */
export function ownedCopy(value: RecognizedString): string | Buffer {
  return typeof value === 'string' ? value : Buffer.from(bytesOf(value));
}

/** The value's UTF-8 bytes as an ArrayBuffer of their own. */
export function arrayBufferOf(value: RecognizedString | undefined): ArrayBuffer {
  if (value === undefined) return new ArrayBuffer(0);
  return (typeof value === 'string' ? encoder.encode(value) : new Uint8Array(bytesOf(value))).buffer;
}

/** The buffer's bytes as an ArrayBuffer of exactly that length: its own when it spans it, else a copy. */
export function exactArrayBuffer(buffer: Buffer): ArrayBuffer {
  const whole = buffer.buffer as ArrayBuffer;
  if (buffer.byteOffset === 0 && buffer.byteLength === whole.byteLength) return whole;
  return whole.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength);
}

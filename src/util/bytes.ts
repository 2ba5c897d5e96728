/** Byte-level helpers shared by every layer. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

export function fromUtf8(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/**
 * The unsigned 32-bit little-endian integer at `offset` (the caller checks the bounds). Read byte by
 * byte: a DataView per call was a visible share of executing each value of a long catch-up.
 */
export function readUint32LE(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset] as number) | (bytes[offset + 1] as number) << 8 | (bytes[offset + 2] as number) << 16) +
    (bytes[offset + 3] as number) * 0x100_0000;
}

/**
 * Safe integers (< 2^53) stored as 8 little-endian bytes, without BigInt on the hot path. Reading
 * rejects values that do not fit a safe integer: they can only come from corrupt input.
 */
const TWO_32 = 0x1_0000_0000;

export function writeUint64(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, value % TWO_32, true);
  view.setUint32(offset + 4, Math.floor(value / TWO_32), true);
}

/** Returns -1 when the stored value is not a safe integer. */
export function readUint64(view: DataView, offset: number): number {
  const low = view.getUint32(offset, true);
  const high = view.getUint32(offset + 4, true);
  if (high >= 0x20_0000) return -1;
  return high * TWO_32 + low;
}

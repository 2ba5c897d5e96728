/**
 * The checksum function the core is given. Node ≥ 20.15 has zlib.crc32 (full CRC-32, chainable
 * through its seed argument); this module is the one place that binds it.
 */
import { crc32 } from 'node:zlib';
import type { ChecksumFunction } from '../core/config.js';

export const fullCrc32: ChecksumFunction = (data, seed) => crc32(data, seed);

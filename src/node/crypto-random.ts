/**
 * The randomness a node uses when none is injected: the OS's (node:crypto), so that group
 * identities and nonces of independent nodes never follow one another. Tests and the simulator
 * inject a SeededRandom instead, and then nothing a node draws depends on the OS.
 */
import { randomInt } from 'node:crypto';
import type { Random } from '../util/random.js';

/** randomInt's range limit. */
const RANGE = 2 ** 48;

export const CRYPTO_RANDOM: Random = Object.freeze({
  int: (min: number, max: number): number => (max <= min ? min : randomInt(min, max)),
  float: (): number => randomInt(0, RANGE) / RANGE,
});

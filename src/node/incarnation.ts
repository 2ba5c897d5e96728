/**
 * The incarnation of a node's process life: part of every proposal's identity (see
 * core/proposal-identity.ts). It must differ between any two lives of a node, so production draws
 * it from the OS; a node given its own `Random` (the simulator, tests) draws it from that, so runs
 * replay from their seed.
 */
import { randomBytes } from 'node:crypto';
import { randomIncarnation, type Incarnation } from '../core/proposal-identity.js';
import type { Random } from '../util/random.js';

export function drawIncarnation(random: Random | undefined): Incarnation {
  if (random !== undefined) return randomIncarnation(random);
  const bytes = randomBytes(8);
  return { high: bytes.readUInt32LE(0), low: bytes.readUInt32LE(4) };
}

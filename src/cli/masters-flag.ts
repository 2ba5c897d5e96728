/**
 * `--masters` of `kv serve`, `cluster up` and the kv bench: where the groups' masters start out
 * (see KvServiceOptions.masterPlacement). Its own module so the bench can check it without loading
 * the KV service.
 */
import { UsageError } from './flags.js';

export type MastersFlag = 'spread' | 'together';

/** The flag's value, undefined when it is not given; anything else is a usage error. */
export function masterPlacementOf(value: unknown): MastersFlag | undefined {
  if (value === undefined || value === 'spread' || value === 'together') return value;
  throw new UsageError(`--masters must be spread or together; got "${String(value)}"`);
}

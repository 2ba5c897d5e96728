// Whether any write was applied more than once, from what the clients saw and the keys' final
// versions. Every write that changes a key raises its version by exactly one, and nothing else
// does; so a key's final version counts the writes applied to it. It is at least the writes
// acknowledged as applied and at most those plus the writes whose outcome stayed unknown: a write
// applied twice (a retry of a write that had been applied) pushes it past that.
import type { RecordedOperation } from '../../src/testing/kv-model.js';

export interface ApplicationCount {
  readonly key: string;
  readonly finalVersion: number;
  /** Writes acknowledged as applied (a put, or a delete that deleted). */
  readonly applied: number;
  /** Writes that may have been applied (or never finished). */
  readonly unknown: number;
}

/** The keys whose final version the recorded writes cannot explain without applying one twice. */
export function writesAppliedTwice(
  entries: readonly RecordedOperation[], finalVersions: ReadonlyMap<string, number>,
): ApplicationCount[] {
  const counts = new Map<string, { applied: number; unknown: number }>();
  for (const entry of entries) {
    if (entry.input.kind === 'get') continue;
    const count = counts.get(entry.input.key) ?? { applied: 0, unknown: 0 };
    counts.set(entry.input.key, count);
    const output = entry.output;
    if (entry.outcome === 'ok' && output !== undefined && 'ok' in output && output.ok) count.applied++;
    else if (entry.outcome === 'unknown' || entry.outcome === 'pending') count.unknown++;
  }
  const violations: ApplicationCount[] = [];
  for (const [key, finalVersion] of finalVersions) {
    const { applied, unknown } = counts.get(key) ?? { applied: 0, unknown: 0 };
    const explained = finalVersion >= applied && finalVersion <= applied + unknown;
    if (!explained) violations.push({ key, finalVersion, applied, unknown });
  }
  return violations;
}

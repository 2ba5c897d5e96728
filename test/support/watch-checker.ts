// The watch checker (issue 17, after Jepsen's etcd watch analysis): given the writes a test made and
// the events each watcher saw, every watcher must have seen, for each key of its prefix, every
// version from its first write on, each once, in version order, with the value that was written.
//
// The test starts each watcher before any of its keys is written, so a watcher owes every version
// from 1. A key's version grows by exactly one per applied write, so "every version from 1 to the
// last acknowledged, consecutively" is "every acknowledged write, in order, no gap, no duplicate".
// A version above the last acknowledged one may come from a write whose outcome is unknown; its
// value must then be one that was sent for that key.

export interface WrittenValue {
  readonly key: string;
  readonly value: string;
  /** The version the write got, when acknowledged; undefined: failed or unknown outcome. */
  readonly version: number | undefined;
}

export interface SeenChange {
  readonly key: string;
  readonly version: number;
  readonly value: string | null;
}

/** Problems with what one watcher of `prefix` saw (empty: it saw every acknowledged write in order). */
export function checkWatcher(prefix: string, writes: readonly WrittenValue[], seen: readonly SeenChange[]): string[] {
  const problems: string[] = [];
  const acked = new Map<string, Map<number, string>>();
  const sent = new Map<string, Set<string>>();
  for (const write of writes) {
    if (!write.key.startsWith(prefix)) continue;
    if (!sent.has(write.key)) sent.set(write.key, new Set());
    sent.get(write.key)?.add(write.value);
    if (write.version === undefined) continue;
    if (!acked.has(write.key)) acked.set(write.key, new Map());
    acked.get(write.key)?.set(write.version, write.value);
  }
  const byKey = new Map<string, SeenChange[]>();
  for (const change of seen) {
    if (!change.key.startsWith(prefix)) problems.push(`${change.key}: outside the prefix "${prefix}"`);
    if (!byKey.has(change.key)) byKey.set(change.key, []);
    byKey.get(change.key)?.push(change);
  }
  for (const [key, changes] of byKey) {
    changes.forEach((change, index) => {
      if (change.version !== index + 1) {
        problems.push(`${key}: event ${index + 1} has version ${change.version}, expected ${index + 1} ` +
          `(${change.version <= index ? 'a duplicate or a step back' : 'a gap'})`);
      }
      const expected = acked.get(key)?.get(change.version);
      if (expected !== undefined && change.value !== expected) {
        problems.push(`${key}@${change.version}: value ${JSON.stringify(change.value)}, acknowledged ${expected}`);
      } else if (expected === undefined && (change.value === null || sent.get(key)?.has(change.value) !== true)) {
        problems.push(`${key}@${change.version}: value ${JSON.stringify(change.value)} was never written`);
      }
    });
  }
  for (const [key, versions] of acked) {
    const last = Math.max(...versions.keys());
    const count = byKey.get(key)?.length ?? 0;
    if (count < last) problems.push(`${key}: saw ${count} versions; version ${last} was acknowledged`);
  }
  return problems;
}

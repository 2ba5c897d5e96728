// What the KV state machine feeds its watch hub: exactly the writes it applied, at their instance
// and index within a batch; nothing for a refused write (stale fence, version conflict, a delete of
// an absent key) or for a session's retry answered from its stored reply; and a reset when a
// snapshot replaces the state.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeKvCommand, type Fence, type KvCommand, type SessionStamp } from '../../src/kv/kv-command.js';
import { KvStateMachine } from '../../src/kv/kv-state-machine.js';
import { KvWatchHub } from '../../src/kv/watch-hub.js';
import type { WatchChange } from '../../src/kv/watch-history.js';

const A: Fence = { nodeId: 1, masterVersion: 10 };
const B: Fence = { nodeId: 2, masterVersion: 20 };
const put = (key: string, text: string, options: { fence?: Fence; version?: number; session?: SessionStamp } = {}):
KvCommand => ({
  kind: 'put', key, value: new Uint8Array(Buffer.from(text)), expectedVersion: options.version, fence: options.fence ?? A,
  ...(options.session === undefined ? {} : { session: options.session }),
});

function changesOf(hub: KvWatchHub): string[] {
  const history = hub.histories[0];
  const out: string[] = [];
  for (let seq = history?.firstSeq ?? 0; seq < (history?.endSeq ?? 0); seq++) {
    const change = history?.at(seq) as WatchChange;
    const value = change.value === undefined ? '(deleted)' : Buffer.from(change.value).toString();
    out.push(`${change.position.instance}.${change.position.index} ${change.key}@${change.version}=${value}`);
  }
  return out;
}

test('only applied writes become changes, at their instance and index', () => {
  const hub = new KvWatchHub(1);
  const sm = new KvStateMachine({ groups: 1, observer: hub });
  const run = (instanceId: number, command: KvCommand): unknown =>
    sm.execute({ groupIndex: 0, instanceId, value: encodeKvCommand(command), context: undefined });
  run(0, { kind: 'fence', fence: A, httpAddress: 'http://a' });
  assert.deepEqual(hub.histories[0]?.head, { instance: 0, index: 0 }, 'a fence moves the head, with no change');
  run(1, put('a', 'x'));
  run(1, put('b', 'y')); // the same batch
  run(2, put('a', 'stale', { fence: B })); // refused: not the group's fence
  run(3, put('a', 'conflict', { version: 7 }));
  run(4, { kind: 'delete', key: 'never', expectedVersion: undefined, fence: A });
  const registered = run(5, { kind: 'register', fence: A, at: 1_000, ttlMs: 60_000 }) as { session: number };
  const stamp: SessionStamp = { id: registered.session, sequence: 1, at: 1_001 };
  run(6, put('a', 'once', { session: stamp }));
  run(7, put('a', 'once', { session: stamp })); // a retry: answered from the session, not applied
  run(8, { kind: 'delete', key: 'b', expectedVersion: undefined, fence: A });
  assert.deepEqual(changesOf(hub), ['1.0 a@1=x', '1.1 b@1=y', '6.0 a@2=once', '8.0 b@2=(deleted)']);
  assert.deepEqual(hub.histories[0]?.head, { instance: 8, index: 1 });
});

test('a snapshot restored into the machine resets its history to after the snapshot', () => {
  const source = new KvStateMachine({ groups: 1 });
  source.execute({ groupIndex: 0, instanceId: 40, value: encodeKvCommand({ kind: 'fence', fence: A, httpAddress: 'http://a' }),
    context: undefined });
  const captured = source.captureSnapshot(0, 41);
  const hub = new KvWatchHub(1);
  const sm = new KvStateMachine({ groups: 1, observer: hub });
  sm.restoreSnapshot({ ...captured, entries: new Map(captured.keys.map((key, i) => [key, captured.entries[i]!])) });
  assert.deepEqual(hub.histories[0]?.head, { instance: 42, index: 0 });
  // No KV execution after 40: a cursor from 41.0 on misses nothing, so it resumes here.
  assert.deepEqual(hub.histories[0]?.oldest, { instance: 41, index: 0 });
  assert.equal(hub.histories[0]?.epoch, 1);
});

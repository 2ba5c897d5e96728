// Sessions in the KV state machine: a session write applies at most once however often it is
// executed (a retry proposed again, through the same or a new master), its retry gets the first
// answer, and a session that is unknown or expired refuses. The session table travels in snapshots;
// a snapshot of format 1 (before sessions) still loads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32 } from 'node:zlib';
import { decodeKvCommand, encodeKvCommand, type Fence, type KvCommand, type SessionStamp } from '../../src/kv/kv-command.js';
import { decodeKvSnapshot, encodeKvSnapshot, KvSnapshotError } from '../../src/kv/kv-snapshot-codec.js';
import { KvStateMachine, type KvOutcome } from '../../src/kv/kv-state-machine.js';

const A: Fence = { nodeId: 1, masterVersion: 10 };
const B: Fence = { nodeId: 2, masterVersion: 20 };

function machine(options: { maxSessionsPerGroup?: number } = {}): {
  sm: KvStateMachine; run: (command: KvCommand) => KvOutcome; instance: () => number;
} {
  const sm = new KvStateMachine({ groups: 1, ...options });
  let next = 0;
  const run = (command: KvCommand): KvOutcome =>
    sm.execute({ groupIndex: 0, instanceId: next++, value: encodeKvCommand(command), context: undefined });
  return { sm, run, instance: () => next - 1 };
}

const fence = (f: Fence): KvCommand => ({ kind: 'fence', fence: f, httpAddress: `http://node${f.nodeId}:1` });
const register = (at: number, ttlMs = 60_000, f: Fence = A): KvCommand => ({ kind: 'register', fence: f, at, ttlMs });
const put = (
  key: string, text: string, session: SessionStamp | undefined, f: Fence = A, expectedVersion?: number,
): KvCommand => ({ kind: 'put', key, value: new Uint8Array(Buffer.from(text)), expectedVersion, fence: f, ...(session === undefined ? {} : { session }) });
const del = (key: string, session: SessionStamp, f: Fence = A): KvCommand =>
  ({ kind: 'delete', key, expectedVersion: undefined, fence: f, session });
const sessionOf = (outcome: KvOutcome): number => {
  assert.ok(outcome.ok && outcome.session !== undefined, JSON.stringify(outcome));
  return outcome.session;
};

test('a session write executed again applies once and answers as the first time', () => {
  const { sm, run } = machine();
  run(fence(A));
  const id = sessionOf(run(register(1_000)));
  assert.equal(id, 1);
  const first = put('k', 'v1', { id, sequence: 1, at: 1_001 });
  assert.deepEqual(run(first), { ok: true, version: 1 });
  // The same write chosen twice (a retry whose first copy was chosen after all): applied once.
  assert.deepEqual(run(first), { ok: true, version: 1, duplicate: true });
  assert.deepEqual(run(put('k', 'v1', { id, sequence: 1, at: 1_500 })), { ok: true, version: 1, duplicate: true });
  assert.deepEqual(sm.read(0, 'k').version, 1);
  assert.deepEqual(run(put('k', 'v2', { id, sequence: 2, at: 1_600 })), { ok: true, version: 2 });
  assert.deepEqual(run(first), { ok: false, code: 'STALE_SEQUENCE', lastSequence: 2 }, 'an old copy, not applied');
  assert.equal(sm.read(0, 'k').version, 2);
});

test('a retry through a new master gets the stored answer, not FENCED; one refused for its fence is not recorded', () => {
  const { sm, run } = machine();
  run(fence(A));
  const id = sessionOf(run(register(1)));
  assert.deepEqual(run(put('k', 'v', { id, sequence: 1, at: 2 })), { ok: true, version: 1 });
  run(fence(B));
  // A's answer was lost; the client retries through B, which proposes the same number under its fence.
  assert.deepEqual(run(put('k', 'v', { id, sequence: 1, at: 3 }, B)), { ok: true, version: 1, duplicate: true });
  // Number 2 proposed by the deposed A is refused for its fence and leaves the session as it was...
  assert.deepEqual(run(put('k', 'w', { id, sequence: 2, at: 4 }, A)).ok, false);
  // ... so its retry through B applies.
  assert.deepEqual(run(put('k', 'w', { id, sequence: 2, at: 5 }, B)), { ok: true, version: 2 });
  assert.equal(sm.read(0, 'k').version, 2);
});

test('refusals that settle a write are stored too: a retry gets the same VERSION_CONFLICT or KEY_NOT_FOUND', () => {
  const { sm, run } = machine();
  run(fence(A));
  const id = sessionOf(run(register(1)));
  assert.deepEqual(run(put('k', 'v', { id, sequence: 1, at: 2 }, A, 5)), { ok: false, code: 'VERSION_CONFLICT', version: 0 });
  run(put('k', 'other', undefined)); // someone else's write: now at version 1
  // The retry is answered as the first try was, though a fresh check would now see version 1.
  assert.deepEqual(run(put('k', 'v', { id, sequence: 1, at: 3 }, A, 5)),
    { ok: false, code: 'VERSION_CONFLICT', version: 0, duplicate: true });
  assert.deepEqual(run(del('absent', { id, sequence: 2, at: 4 })), { ok: false, code: 'KEY_NOT_FOUND', version: 0 });
  run(put('absent', 'now', undefined));
  assert.deepEqual(run(del('absent', { id, sequence: 2, at: 5 })),
    { ok: false, code: 'KEY_NOT_FOUND', version: 0, duplicate: true }, 'not deleted on the retry');
  assert.equal(sm.read(0, 'absent').value?.length, 3);
});

test('an unknown or expired session refuses, not applied; a registration under a stale fence is refused', () => {
  const { sm, run } = machine();
  run(fence(A));
  const never = run(put('k', 'v', { id: 1, sequence: 1, at: 1 }));
  assert.equal(!never.ok && never.code, 'SESSION_EXPIRED');
  assert.equal(!never.ok && never.code === 'SESSION_EXPIRED' && !never.registered, true,
    'never registered: nothing of it was ever applied');
  assert.equal(sm.read(0, 'k').version, 0);
  const id = sessionOf(run(register(1_000, 500)));
  assert.deepEqual(run(put('k', 'v', { id, sequence: 1, at: 1_400 })), { ok: true, version: 1 });
  // The retry of number 1 comes 501 ms of log time after the session's last activity: expired, and
  // since an earlier copy may have been applied (it was), the refusal says it was registered.
  const late = run(put('k', 'v', { id, sequence: 1, at: 1_901 }));
  assert.equal(!late.ok && late.code === 'SESSION_EXPIRED' && late.registered, true);
  assert.equal(sm.read(0, 'k').version, 1);
  // Log time moved on from another session's command: the expired one stays expired.
  const other = sessionOf(run(register(2_100, 500)));
  assert.notEqual(other, id, 'its id is not handed out again');
  const later = run(put('k', 'w', { id, sequence: 2, at: 2_150 }));
  assert.equal(!later.ok && later.code, 'SESSION_EXPIRED');
  assert.equal(sm.read(0, 'k').version, 1);
  const stale = run(register(2_200, 500, B));
  assert.equal(!stale.ok && stale.code, 'FENCED');
  assert.deepEqual(sm.sessionStats(0).sessions, 1, 'only the other session: none for the fenced registration');
});

test('the table per group is bounded; an evicted session refuses its retry (never applies it again)', () => {
  const { sm, run } = machine({ maxSessionsPerGroup: 2 });
  run(fence(A));
  const first = sessionOf(run(register(1)));
  assert.deepEqual(run(put('k', 'v', { id: first, sequence: 1, at: 2 })), { ok: true, version: 1 });
  sessionOf(run(register(3)));
  sessionOf(run(register(4)));
  assert.equal(sm.sessionStats(0).sessions, 2);
  const retry = run(put('k', 'v', { id: first, sequence: 1, at: 5 }));
  assert.equal(!retry.ok && retry.code, 'SESSION_EXPIRED');
  assert.equal(sm.read(0, 'k').version, 1);
});

test('session commands round-trip through the codec, and bad ones are refused', () => {
  const commands: KvCommand[] = [
    register(2 ** 45, 86_400_000),
    put('k', 'v', { id: 7, sequence: 2 ** 40, at: 1_700_000_000_000 }, A, 3),
    del('k', { id: 1, sequence: 1, at: 0 }),
  ];
  for (const command of commands) {
    const bytes = encodeKvCommand(command);
    assert.deepEqual(decodeKvCommand(bytes), command);
    for (let length = 0; length < bytes.length; length++) {
      assert.throws(() => decodeKvCommand(bytes.subarray(0, length)));
    }
  }
  assert.throws(() => encodeKvCommand(register(1, 0)), /time to live/);
  assert.throws(() => encodeKvCommand(put('k', 'v', { id: 0, sequence: 1, at: 1 })), /at least 1/);
  assert.throws(() => encodeKvCommand(put('k', 'v', { id: 1, sequence: 0, at: 1 })), /at least 1/);
  const zeroSequence = Buffer.from(encodeKvCommand(put('k', 'v', { id: 1, sequence: 1, at: 1 })));
  zeroSequence.writeUInt32BE(0, 14 + 8 + 4); // the low word of the sequence number
  assert.throws(() => decodeKvCommand(zeroSequence), /start at 1/);
});

test('sessions travel in the snapshot: a restored machine still answers a retry from its stored reply', () => {
  const { sm, run, instance } = machine();
  run(fence(A));
  const old = sessionOf(run(register(10, 1_000)));
  const id = sessionOf(run(register(20)));
  run(put('k', 'v', { id, sequence: 1, at: 30 }));
  run(put('j', 'v', { id: old, sequence: 1, at: 40 }, A, 9)); // a VERSION_CONFLICT, stored
  const bytes = encodeKvSnapshot(sm.captureSnapshot(0, instance()));
  const decoded = decodeKvSnapshot(bytes, { group: 0, groups: 1 });
  const restored = new KvStateMachine({ groups: 1 });
  restored.restoreSnapshot(decoded);
  let next = instance() + 1;
  const again = (command: KvCommand): KvOutcome =>
    restored.execute({ groupIndex: 0, instanceId: next++, value: encodeKvCommand(command), context: undefined });
  assert.deepEqual(again(put('k', 'v', { id, sequence: 1, at: 50 })), { ok: true, version: 1, duplicate: true });
  assert.deepEqual(again(put('j', 'v', { id: old, sequence: 1, at: 60 }, A, 9)),
    { ok: false, code: 'VERSION_CONFLICT', version: 0, duplicate: true });
  assert.deepEqual(restored.sessionStats(0), { sessions: 2, logTime: 60 });
  assert.equal(sessionOf(again(register(70))), 3, 'ids are not handed out twice after a restore');
  // The log time is kept: the old session (ttl 1 s, last active at 60) expires at the same point.
  assert.equal((again(put('j', 'w', { id: old, sequence: 2, at: 1_061 })) as { code?: string }).code, 'SESSION_EXPIRED');
});

test('a snapshot of format 1 (before sessions) still loads, with no sessions; bad session sections are refused', () => {
  const { sm, run, instance } = machine();
  run(fence(A));
  run(put('k', 'v', undefined));
  // Written by the encoder of the build before sessions (format 1): group 0 of 1, instance 7, the
  // fence of node 2 at master version 5 ("http://127.0.0.1:9"), k = "v1" at version 3, and "gone" a
  // tombstone at version 2.
  const v1 = Buffer.from('4d504b56534e415001000000000000000100000007000000000000000700000000000000020000000000' +
    '0000010200000005000000000000001200687474703a2f2f3132372e302e302e313a3901006b030000000000000001020000007631' +
    '0400676f6e65020000000000000000ef473229', 'hex');
  const decoded = decodeKvSnapshot(v1, { group: 0, groups: 1 });
  assert.equal(decoded.sessions, undefined);
  assert.equal(decoded.instanceId, 7);
  assert.deepEqual(decoded.fence, { nodeId: 2, masterVersion: 5, httpAddress: 'http://127.0.0.1:9' });
  assert.deepEqual([...decoded.entries],
    [['k', { value: new Uint8Array(Buffer.from('v1')), version: 3 }], ['gone', { value: undefined, version: 2 }]]);
  const restored = new KvStateMachine({ groups: 1 });
  restored.restoreSnapshot(decoded);
  assert.deepEqual(restored.sessionStats(0), { sessions: 0, logTime: 0 });
  assert.equal(restored.read(0, 'k').version, 3);
  assert.throws(() => encodeKvSnapshot({ ...sm.captureSnapshot(0, instance()), sessions: undefined as never }),
    /session table/, 'a snapshot without its sessions is not written');

  // Format 2 with a session whose reply does not go with its number, or listed out of activity order.
  const id = sessionOf(run(register(5)));
  run(register(6));
  run(put('k', 'w', { id, sequence: 1, at: 7 }));
  const good = Buffer.from(encodeKvSnapshot(sm.captureSnapshot(0, instance())));
  const sessions = good.length - 4 - 2 * 37;
  const noReply = Buffer.from(good);
  noReply[sessions + 37 + 28] = 0; // the second session listed (the one that wrote) loses its reply kind
  assert.throws(() => decodeKvSnapshot(withCrc(noReply), { group: 0, groups: 1 }), /a reply goes with a sequence/);
  const versionWithoutReply = Buffer.from(good);
  versionWithoutReply[sessions + 29] = 1; // the first session listed has no reply, but now a reply version
  assert.throws(() => decodeKvSnapshot(withCrc(versionWithoutReply), { group: 0, groups: 1 }),
    /no reply, but a reply version/);
  const swapped = Buffer.from(good);
  good.copy(swapped, sessions, sessions + 37, sessions + 74);
  good.copy(swapped, sessions + 37, sessions, sessions + 37);
  assert.throws(() => decodeKvSnapshot(withCrc(swapped), { group: 0, groups: 1 }), /out of activity order/);
  const beyond = Buffer.from(good);
  beyond.writeUInt32LE(3, sessions - 4); // claims a third session the file does not hold
  assert.throws(() => decodeKvSnapshot(withCrc(beyond), { group: 0, groups: 1 }), KvSnapshotError);
});

function withCrc(bytes: Buffer): Buffer {
  const body = bytes.subarray(0, bytes.length - 4);
  bytes.writeUInt32LE(crc32(body) >>> 0, bytes.length - 4);
  return bytes;
}

test('each group\'s session bound is a share of the node\'s: 64 groups keep 4,096 each, not 65,536', () => {
  assert.equal(new KvStateMachine({ groups: 1 }).maxSessionsPerGroup, 65_536);
  assert.equal(new KvStateMachine({ groups: 4 }).maxSessionsPerGroup, 65_536);
  assert.equal(new KvStateMachine({ groups: 64 }).maxSessionsPerGroup, 4_096);
  assert.equal(new KvStateMachine({ groups: 1_000 }).maxSessionsPerGroup, 1_024, 'never below 1,024');
  assert.equal(new KvStateMachine({ groups: 64, maxSessionsPerGroup: 10 }).maxSessionsPerGroup, 10);
});

test('a snapshot whose session table is refused leaves the group as it was (checked before anything changes)', () => {
  const sm = new KvStateMachine({ groups: 1 });
  const entries = new Map([['k', Object.freeze({ value: new Uint8Array([1]), version: 1 })]]);
  const bad = {
    group: 0, groups: 1, instanceId: 3, lastExecutedInstanceId: 3, fence: undefined, entries,
    sessions: {
      nextId: 2, logTime: 10, sessions: [{ id: 5, lastActiveAt: 1, ttlMs: 100, lastSequence: 0, reply: undefined }],
    },
  };
  assert.throws(() => sm.restoreSnapshot(bad), /session 5/);
  assert.deepEqual(sm.stats(), { keys: 0, tombstones: 0, valueBytes: 0 });
  assert.equal(sm.read(0, 'k').version, 0);
  assert.equal(sm.checkpointInstanceId(0), -1);
  sm.restoreSnapshot({ ...bad, sessions: { nextId: 6, logTime: 10, sessions: bad.sessions.sessions } });
  assert.deepEqual(sm.stats(), { keys: 1, tombstones: 0, valueBytes: 1 });
});

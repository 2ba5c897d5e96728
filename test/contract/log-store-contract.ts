/**
 * The LogStore contract, as one suite that every implementation runs (docs/architecture.md,
 * Storage): register it with `describeLogStoreContract(name, makeStore)` from a `.test.ts` file.
 * Not a test file itself.
 *
 * `makeStore` returns a fresh, empty store. When the implementation survives a restart it also
 * returns `reopen`: the contract closes the current store with `close()` first, then `reopen()`
 * must return a store over the same durable data (a new process life). `cleanup` releases
 * whichever store is current and everything the harness made.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NULL_BALLOT, type Ballot } from '../../src/core/ballot.js';
import type { AcceptorRecord } from '../../src/core/ready.js';
import type { LogStore } from '../../src/runtime/interfaces.js';
import { utf8 } from '../../src/util/bytes.js';

export interface LogStoreHarness {
  readonly store: LogStore;
  /** A new store over the same durable data; called after the contract closed the current one. */
  readonly reopen?: () => Promise<LogStore>;
  readonly cleanup: () => Promise<void>;
}

export type LogStoreFactory = () => Promise<LogStoreHarness>;

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const ONE_MIB = 1024 * 1024;

/** One test's view of the store under test, across restarts. */
class Session {
  store: LogStore;
  reopens = 0;
  private readonly harness: LogStoreHarness;

  constructor(harness: LogStoreHarness) {
    this.harness = harness;
    this.store = harness.store;
  }

  get canReopen(): boolean {
    return this.harness.reopen !== undefined;
  }

  /** Close and reopen the store; false (and the same store) when the implementation cannot. */
  async reopen(): Promise<boolean> {
    const reopen = this.harness.reopen;
    if (reopen === undefined) return false;
    await this.store.close();
    this.store = await reopen();
    this.reopens++;
    return true;
  }

  /** Run `check` on the store now and, when it can reopen, again after a reopen. */
  async nowAndAfterReopen(check: (store: LogStore, phase: string) => Promise<void>): Promise<void> {
    await check(this.store, 'before reopen');
    if (await this.reopen()) await check(this.store, 'after reopen');
  }
}

export function ballot(proposalId: number, nodeId: number): Ballot {
  return { proposalId, nodeId };
}

export function record(instanceId: number, value: string | Uint8Array, options: {
  promised?: Ballot; accepted?: Ballot; checksum?: number;
} = {}): AcceptorRecord {
  const promised = options.promised ?? ballot(instanceId + 1, 1);
  return {
    instanceId, promised, accepted: options.accepted ?? promised,
    value: typeof value === 'string' ? utf8(value) : value,
    checksum: options.checksum ?? (instanceId * 7 + 3) >>> 0,
  };
}

/** Bytes that are different at every position (no run of zeros to hide a misplaced read). */
export function patternBytes(length: number, seed = 1): Uint8Array {
  const bytes = new Uint8Array(length);
  let state = (seed * 2654435761) >>> 0;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    bytes[i] = state >>> 24;
  }
  return bytes;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length &&
    Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

function describeBytes(bytes: Uint8Array): string {
  const head = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, 16)).toString('hex');
  return `${bytes.length} bytes (${head}${bytes.length > 16 ? '…' : ''})`;
}

/** Field-by-field equality of a read record with what was written, with a readable message. */
export function assertRecord(actual: AcceptorRecord | undefined, expected: AcceptorRecord, where: string): void {
  assert.ok(actual !== undefined, `${where}: instance ${expected.instanceId} has no record`);
  const label = `${where}: instance ${expected.instanceId}`;
  assert.equal(actual.instanceId, expected.instanceId, `${label}: instanceId`);
  assert.deepEqual([actual.promised.proposalId, actual.promised.nodeId],
    [expected.promised.proposalId, expected.promised.nodeId], `${label}: promised ballot`);
  assert.deepEqual([actual.accepted.proposalId, actual.accepted.nodeId],
    [expected.accepted.proposalId, expected.accepted.nodeId], `${label}: accepted ballot`);
  assert.equal(actual.checksum, expected.checksum, `${label}: checksum`);
  assert.ok(actual.value instanceof Uint8Array, `${label}: value is not a Uint8Array`);
  assert.ok(sameBytes(actual.value, expected.value),
    `${label}: value is ${describeBytes(actual.value)}, expected ${describeBytes(expected.value)}`);
}

async function assertBytes(actual: Promise<Uint8Array | undefined>, expected: Uint8Array | undefined,
  what: string): Promise<void> {
  const value = await actual;
  if (expected === undefined) {
    assert.equal(value, undefined, `${what}: expected none`);
    return;
  }
  assert.ok(value !== undefined, `${what}: missing`);
  assert.ok(sameBytes(value, expected), `${what}: is ${describeBytes(value)}, expected ${describeBytes(expected)}`);
}

export function describeLogStoreContract(name: string, makeStore: LogStoreFactory): void {
  const contractTest = (title: string, body: (session: Session) => Promise<void>): void => {
    test(title, { timeout: 60_000 }, async () => {
      const harness = await makeStore();
      const session = new Session(harness);
      try {
        await body(session);
      } finally {
        await harness.cleanup();
      }
    });
  };

  describe(`LogStore contract: ${name}`, () => {
    contractTest('an empty store has no records, no max instance, min chosen 0 and no variables', async (s) => {
      await s.nowAndAfterReopen(async (store, phase) => {
        for (const group of [0, 1, 17]) {
          assert.equal(await store.get(group, 0), undefined, `${phase}: get`);
          assert.equal(await store.get(group, MAX_SAFE), undefined, `${phase}: get of the largest instance`);
          assert.equal(await store.maxInstanceId(group), undefined, `${phase}: maxInstanceId`);
          assert.equal(await store.minChosenInstanceId(group), 0, `${phase}: minChosenInstanceId`);
          assert.equal(await store.systemVariables(group), undefined, `${phase}: systemVariables`);
          assert.equal(await store.masterVariables(group), undefined, `${phase}: masterVariables`);
        }
      });
    });

    contractTest('put/get round trip every field: ballots, values of 0 B to 1 MiB, checksums, ids up to 2^53-1',
      async (s) => {
        const records: AcceptorRecord[] = [
          record(0, new Uint8Array(0), { promised: ballot(1, 1), accepted: NULL_BALLOT, checksum: 0 }),
          record(1, 'x', { promised: ballot(7, 3), accepted: ballot(5, 2), checksum: 0xffffffff }),
          record(2, patternBytes(256, 2), { promised: ballot(2 ** 32, 0xffffffff), accepted: ballot(2 ** 32 - 1, 0),
            checksum: 0x80000000 }),
          record(3, patternBytes(ONE_MIB, 3), { promised: ballot(MAX_SAFE, 9), accepted: ballot(MAX_SAFE, 9),
            checksum: 0x12345678 }),
          record(2 ** 32 - 1, 'below 2^32', { checksum: 1 }),
          record(2 ** 32, 'at 2^32', { promised: ballot(MAX_SAFE - 1, 4), accepted: ballot(3, 4) }),
          record(2 ** 40 + 5, new Uint8Array([0, 0, 0, 0]), { promised: ballot(0, 0), accepted: ballot(0, 0) }),
          record(MAX_SAFE, 'the largest safe instance', { promised: ballot(MAX_SAFE, 0xffffffff),
            accepted: ballot(MAX_SAFE, 0xffffffff), checksum: 0xfffffffe }),
        ];
        await s.store.put(0, records.slice(0, 4), { sync: true });
        await s.store.put(0, records.slice(4), { sync: true });
        await s.nowAndAfterReopen(async (store, phase) => {
          for (const expected of records) assertRecord(await store.get(0, expected.instanceId), expected, phase);
          assert.equal(await store.get(0, 4), undefined, `${phase}: an instance never written`);
          assert.equal(await store.get(0, MAX_SAFE - 1), undefined, `${phase}: an instance never written`);
          assert.equal(await store.maxInstanceId(0), MAX_SAFE, `${phase}: maxInstanceId`);
        });
      });

    contractTest('stored records and variables are copies: neither the caller\'s buffers nor returned ones '
      + 'can change them', async (s) => {
      const written = record(5, 'abc');
      await s.store.put(0, [written], { sync: true });
      written.value[0] = 0x7a;
      const first = await s.store.get(0, 5);
      assertRecord(first, record(5, 'abc'), 'after the caller changed its buffer');
      first?.value.fill(0);
      assertRecord(await s.store.get(0, 5), record(5, 'abc'), 'after the caller changed a returned value');

      const variables = utf8('system');
      await s.store.setSystemVariables(0, variables);
      variables[0] = 0x21;
      (await s.store.systemVariables(0))?.fill(0);
      await assertBytes(s.store.systemVariables(0), utf8('system'), 'system variables');
      const master = utf8('master');
      await s.store.setMasterVariables(0, master);
      master[0] = 0x21;
      (await s.store.masterVariables(0))?.fill(0);
      await assertBytes(s.store.masterVariables(0), utf8('master'), 'master variables');
    });

    contractTest('the newest record of an instance wins: across puts, within one put, and after reopen',
      async (s) => {
        await s.store.put(0, [record(1, 'one-a'), record(2, 'two-a'), record(3, 'three-a')], { sync: true });
        await s.store.put(0, [record(2, 'two-b', { promised: ballot(9, 2), accepted: ballot(8, 2) })], { sync: true });
        await s.store.put(0, [record(3, 'three-b'), record(3, 'three-c', { checksum: 99 })], { sync: true });
        // A promise-only record after an accepted one: the accepted ballot goes back to null as written.
        await s.store.put(0, [record(1, '', { promised: ballot(20, 3), accepted: NULL_BALLOT, checksum: 0 })],
          { sync: true });
        const expected = [
          record(1, '', { promised: ballot(20, 3), accepted: NULL_BALLOT, checksum: 0 }),
          record(2, 'two-b', { promised: ballot(9, 2), accepted: ballot(8, 2) }),
          record(3, 'three-c', { checksum: 99 }),
        ];
        await s.nowAndAfterReopen(async (store, phase) => {
          for (const want of expected) assertRecord(await store.get(0, want.instanceId), want, phase);
          assert.equal(await store.maxInstanceId(0), 3, `${phase}: maxInstanceId`);
        });
        // Overwrite again after the reopen: the newest still wins, and after another reopen too.
        await s.store.put(0, [record(2, 'two-c')], { sync: true });
        await s.nowAndAfterReopen(async (store, phase) => {
          assertRecord(await store.get(0, 2), record(2, 'two-c'), `${phase} (second round)`);
          assertRecord(await store.get(0, 3), record(3, 'three-c', { checksum: 99 }), `${phase} (second round)`);
        });
      });

    contractTest('records, variables, deletion and clearing of different groups are independent', async (s) => {
      const groups = [0, 1, 2, 99];
      for (const group of groups) {
        await s.store.put(group, [record(10, `g${group}-10`), record(group + 20, `g${group}-top`)], { sync: true });
        await s.store.setSystemVariables(group, utf8(`sys-${group}`));
        await s.store.setMasterVariables(group, utf8(`master-${group}`));
      }
      await s.store.deleteBelow(1, 15);
      await s.store.clear(2);
      await s.store.setMinChosenInstanceId(99, 5);
      await s.nowAndAfterReopen(async (store, phase) => {
        assertRecord(await store.get(0, 10), record(10, 'g0-10'), `${phase}: group 0`);
        assertRecord(await store.get(0, 20), record(20, 'g0-top'), `${phase}: group 0`);
        assert.equal(await store.get(0, 21), undefined, `${phase}: group 0 does not see group 1's instance 21`);
        assert.equal(await store.maxInstanceId(0), 20, `${phase}: group 0 max`);
        assert.equal(await store.minChosenInstanceId(0), 0, `${phase}: group 0 min chosen`);

        assert.equal(await store.get(1, 10), undefined, `${phase}: group 1 deleted below 15`);
        assertRecord(await store.get(1, 21), record(21, 'g1-top'), `${phase}: group 1`);
        assert.equal(await store.maxInstanceId(1), 21, `${phase}: group 1 max`);
        assert.equal(await store.minChosenInstanceId(1), 15, `${phase}: group 1 min chosen`);

        assert.equal(await store.get(2, 10), undefined, `${phase}: group 2 cleared`);
        assert.equal(await store.get(2, 22), undefined, `${phase}: group 2 cleared`);
        assert.equal(await store.maxInstanceId(2), undefined, `${phase}: group 2 max`);

        assertRecord(await store.get(99, 10), record(10, 'g99-10'), `${phase}: group 99`);
        assert.equal(await store.maxInstanceId(99), 119, `${phase}: group 99 max`);
        assert.equal(await store.minChosenInstanceId(99), 5, `${phase}: group 99 min chosen`);
        assert.equal(await store.maxInstanceId(3), undefined, `${phase}: a group never written`);
        for (const group of groups) {
          await assertBytes(store.systemVariables(group), utf8(`sys-${group}`), `${phase}: group ${group} system`);
          await assertBytes(store.masterVariables(group), utf8(`master-${group}`), `${phase}: group ${group} master`);
        }
      });
    });

    contractTest('a pending checkpoint is kept per group with its variables, survives a reopen, and can be cleared', async (s) => {
      assert.equal(await s.store.pendingCheckpoint(0), undefined, 'none at first');
      await s.store.put(0, [record(4, 'four')], { sync: true });
      await s.store.setPendingCheckpoint(0, { instanceId: 2 ** 33, systemVariables: utf8('system-c'), masterVariables: utf8('master-c') });
      await s.store.setPendingCheckpoint(1, { instanceId: 7 });
      await s.store.setPendingCheckpoint(1, undefined);
      await s.store.setPendingCheckpoint(2, { instanceId: 9 });
      await s.nowAndAfterReopen(async (store, phase) => {
        const pending = await store.pendingCheckpoint(0);
        assert.equal(pending?.instanceId, 2 ** 33, `${phase}: group 0`);
        await assertBytes(Promise.resolve(pending?.systemVariables), utf8('system-c'), `${phase}: its system variables`);
        await assertBytes(Promise.resolve(pending?.masterVariables), utf8('master-c'), `${phase}: its master variables`);
        assert.equal(await store.systemVariables(0), undefined, `${phase}: the group's own variables untouched`);
        const bare = await store.pendingCheckpoint(2);
        assert.equal(bare?.instanceId, 9, `${phase}: group 2`);
        assert.equal(bare?.systemVariables, undefined, `${phase}: group 2 has no variables`);
        assert.equal(await store.pendingCheckpoint(1), undefined, `${phase}: group 1 cleared`);
        assertRecord(await store.get(0, 4), record(4, 'four'), `${phase}: records untouched`);
      });
    });

    contractTest('maxInstanceId is undefined when empty and the highest instance written, in any order',
      async (s) => {
        assert.equal(await s.store.maxInstanceId(0), undefined);
        await s.store.put(0, [record(10, 'ten')], { sync: true });
        assert.equal(await s.store.maxInstanceId(0), 10);
        await s.store.put(0, [record(3, 'three'), record(7, 'seven')], { sync: true });
        assert.equal(await s.store.maxInstanceId(0), 10, 'lower instances do not lower the max');
        await s.store.put(0, [record(10, 'ten again')], { sync: true });
        await s.store.put(0, [record(2 ** 33, 'far'), record(11, 'eleven')], { sync: true });
        await s.nowAndAfterReopen(async (store, phase) => {
          assert.equal(await store.maxInstanceId(0), 2 ** 33, phase);
          assert.equal(await store.maxInstanceId(1), undefined, `${phase}: another group`);
        });
      });

    contractTest('deleteBelow removes the records below, raises min chosen, and empties the max when all go',
      async (s) => {
        const all = Array.from({ length: 20 }, (_, i) => record(i, `v${i}`));
        await s.store.put(0, all.slice(0, 10), { sync: true });
        await s.store.put(0, all.slice(10), { sync: true });
        await s.store.deleteBelow(0, 10);
        await s.nowAndAfterReopen(async (store, phase) => {
          for (let i = 0; i < 10; i++) assert.equal(await store.get(0, i), undefined, `${phase}: instance ${i} deleted`);
          for (let i = 10; i < 20; i++) assertRecord(await store.get(0, i), all[i] as AcceptorRecord, phase);
          assert.equal(await store.minChosenInstanceId(0), 10, `${phase}: min chosen`);
          assert.equal(await store.maxInstanceId(0), 19, `${phase}: max`);
        });
        await s.store.deleteBelow(0, 4);
        assert.equal(await s.store.minChosenInstanceId(0), 10, 'deleting below a lower mark does not lower it');
        assertRecord(await s.store.get(0, 10), all[10] as AcceptorRecord, 'after deleteBelow(4)');
        await s.store.deleteBelow(0, 15);
        assert.equal(await s.store.get(0, 14), undefined);
        assertRecord(await s.store.get(0, 15), all[15] as AcceptorRecord, 'after deleteBelow(15)');
        await s.store.deleteBelow(0, 20);
        await s.nowAndAfterReopen(async (store, phase) => {
          for (let i = 0; i < 20; i++) assert.equal(await store.get(0, i), undefined, `${phase}: instance ${i} deleted`);
          assert.equal(await store.maxInstanceId(0), undefined, `${phase}: max after deleting everything`);
          assert.equal(await store.minChosenInstanceId(0), 20, `${phase}: min chosen after deleting everything`);
        });
        await s.store.put(0, [record(20, 'after the cleaning')], { sync: true });
        await s.nowAndAfterReopen(async (store, phase) => {
          assertRecord(await store.get(0, 20), record(20, 'after the cleaning'), phase);
          assert.equal(await store.maxInstanceId(0), 20, `${phase}: max`);
          assert.equal(await store.get(0, 19), undefined, `${phase}: a deleted record stays deleted`);
        });
      });

    contractTest('min chosen instance: 0 by default, set and read back, per group, after reopen', async (s) => {
      assert.equal(await s.store.minChosenInstanceId(0), 0);
      await s.store.setMinChosenInstanceId(0, 7);
      assert.equal(await s.store.minChosenInstanceId(0), 7);
      await s.store.setMinChosenInstanceId(0, 2 ** 40);
      await s.store.setMinChosenInstanceId(1, 3);
      await s.nowAndAfterReopen(async (store, phase) => {
        assert.equal(await store.minChosenInstanceId(0), 2 ** 40, phase);
        assert.equal(await store.minChosenInstanceId(1), 3, phase);
        assert.equal(await store.minChosenInstanceId(2), 0, phase);
      });
      await s.store.setMinChosenInstanceId(1, 0);
      await s.nowAndAfterReopen(async (store, phase) => {
        assert.equal(await store.minChosenInstanceId(1), 0, `${phase}: set back to 0`);
      });
    });

    contractTest('system and master variables round trip, are replaced whole, survive reopen and clear',
      async (s) => {
        const system = patternBytes(64 * 1024, 11);
        await s.store.setSystemVariables(0, utf8('first system'));
        await s.store.setMasterVariables(0, utf8('first master'));
        await s.store.setSystemVariables(0, system);
        await s.store.setMasterVariables(0, new Uint8Array(0));
        await s.store.setSystemVariables(1, new Uint8Array([0, 1, 2, 0]));
        await s.store.put(0, [record(0, 'zero'), record(1, 'one')], { sync: true });
        await s.nowAndAfterReopen(async (store, phase) => {
          await assertBytes(store.systemVariables(0), system, `${phase}: system variables (64 KiB)`);
          await assertBytes(store.masterVariables(0), new Uint8Array(0), `${phase}: empty master variables`);
          await assertBytes(store.systemVariables(1), new Uint8Array([0, 1, 2, 0]), `${phase}: group 1 system`);
          await assertBytes(store.masterVariables(1), undefined, `${phase}: group 1 master was never set`);
        });
        await s.store.clear(0);
        await s.nowAndAfterReopen(async (store, phase) => {
          await assertBytes(store.systemVariables(0), system, `${phase}: system variables survive clear`);
          await assertBytes(store.masterVariables(0), new Uint8Array(0), `${phase}: master variables survive clear`);
          assert.equal(await store.get(0, 0), undefined, `${phase}: the records did not survive clear`);
        });
      });

    contractTest('clear forgets every record of the group, resets min chosen, and accepts new writes', async (s) => {
      const old = Array.from({ length: 30 }, (_, i) => record(i, `old-${i}`));
      await s.store.put(0, old, { sync: true });
      await s.store.put(1, [record(4, 'other group')], { sync: true });
      await s.store.deleteBelow(0, 5);
      await s.store.setSystemVariables(0, utf8('kept'));
      await s.store.clear(0);
      await s.nowAndAfterReopen(async (store, phase) => {
        for (const { instanceId } of old) {
          assert.equal(await store.get(0, instanceId), undefined, `${phase}: instance ${instanceId} cleared`);
        }
        assert.equal(await store.maxInstanceId(0), undefined, `${phase}: max after clear`);
        assert.equal(await store.minChosenInstanceId(0), 0, `${phase}: min chosen after clear`);
        assertRecord(await store.get(1, 4), record(4, 'other group'), `${phase}: another group is untouched`);
        await assertBytes(store.systemVariables(0), utf8('kept'), `${phase}: system variables`);
      });
      // A checkpoint install: the log restarts at the checkpoint, below where the old one ended.
      await s.store.setMinChosenInstanceId(0, 12);
      await s.store.put(0, [record(12, 'new-12'), record(13, 'new-13')], { sync: true });
      await s.nowAndAfterReopen(async (store, phase) => {
        assertRecord(await store.get(0, 12), record(12, 'new-12'), `${phase}: written after clear`);
        assertRecord(await store.get(0, 13), record(13, 'new-13'), `${phase}: written after clear`);
        assert.equal(await store.get(0, 14), undefined, `${phase}: an old record must not come back`);
        assert.equal(await store.get(0, 29), undefined, `${phase}: an old record must not come back`);
        assert.equal(await store.maxInstanceId(0), 13, `${phase}: max counts only new records`);
        assert.equal(await store.minChosenInstanceId(0), 12, `${phase}: min chosen`);
      });
      // Cleared twice: the second clear forgets the new records as well.
      await s.store.clear(0);
      await s.store.put(0, [record(0, 'third life')], { sync: true });
      await s.nowAndAfterReopen(async (store, phase) => {
        assertRecord(await store.get(0, 0), record(0, 'third life'), `${phase}: after a second clear`);
        assert.equal(await store.get(0, 12), undefined, `${phase}: the second life is gone`);
        assert.equal(await store.maxInstanceId(0), 0, `${phase}: max`);
      });
    });

    contractTest('a put with an empty list resolves and changes nothing', async (s) => {
      await s.store.put(0, [], { sync: true });
      await s.store.put(0, [], { sync: false });
      assert.equal(await s.store.maxInstanceId(0), undefined);
      await s.store.put(0, [record(1, 'one')], { sync: true });
      await s.store.put(0, [], { sync: true });
      await s.nowAndAfterReopen(async (store, phase) => {
        assert.equal(await store.maxInstanceId(0), 1, phase);
        assertRecord(await store.get(0, 1), record(1, 'one'), phase);
      });
    });

    contractTest('a put without sync is readable as soon as it resolves', async (s) => {
      await s.store.put(3, [record(0, 'unsynced'), record(1, 'also')], { sync: false });
      assertRecord(await s.store.get(3, 0), record(0, 'unsynced'), 'unsynced put');
      assertRecord(await s.store.get(3, 1), record(1, 'also'), 'unsynced put');
      assert.equal(await s.store.maxInstanceId(3), 1);
      // A later synced put makes the group's state durable.
      await s.store.put(3, [record(2, 'synced')], { sync: true });
      await s.nowAndAfterReopen(async (store, phase) => {
        assertRecord(await store.get(3, 2), record(2, 'synced'), phase);
      });
    });

    contractTest('many concurrent puts from several groups are all durable, readable, and applied in call order',
      async (s) => {
        const groups = [0, 1, 2, 3, 4, 5];
        const putsPerGroup = 60;
        const expected = new Map<number, Map<number, AcceptorRecord>>();
        const pending: Promise<void>[] = [];
        for (let round = 0; round < putsPerGroup; round++) {
          for (const group of groups) {
            const latest = expected.get(group) ?? new Map<number, AcceptorRecord>();
            expected.set(group, latest);
            // Each put writes a new instance and overwrites the previous put's one (so call order matters).
            const records = [record(round, patternBytes(50 + ((round * 37 + group * 11) % 700), round * 100 + group),
              { promised: ballot(round + 1, group + 1), checksum: (round * 1000 + group) >>> 0 })];
            if (round > 0) records.push(record(round - 1, `overwritten by round ${round} of group ${group}`));
            for (const written of records) latest.set(written.instanceId, written);
            pending.push(s.store.put(group, records, { sync: true }));
          }
        }
        await Promise.all(pending);
        await s.nowAndAfterReopen(async (store, phase) => {
          for (const group of groups) {
            assert.equal(await store.maxInstanceId(group), putsPerGroup - 1, `${phase}: group ${group} max`);
            for (const [instanceId, want] of expected.get(group) ?? []) {
              assertRecord(await store.get(group, instanceId), want, `${phase}: group ${group}`);
            }
          }
        });
      });

    contractTest('everything synced survives repeated reopens, and writes after each reopen land', async (s) => {
      if (!s.canReopen) {
        assert.equal(await s.reopen(), false);
        return;
      }
      const written = new Map<number, AcceptorRecord>();
      for (let life = 0; life < 4; life++) {
        const batch = Array.from({ length: 25 }, (_, i) => record(life * 25 + i,
          patternBytes(100 + i * 13, life * 100 + i)));
        await s.store.put(0, batch, { sync: true });
        await s.store.put(0, [record(life, `rewritten in life ${life}`)], { sync: true });
        for (const item of batch) written.set(item.instanceId, item);
        written.set(life, record(life, `rewritten in life ${life}`));
        await s.store.setMasterVariables(0, utf8(`life ${life}`));
        await s.reopen();
        for (const [instanceId, want] of written) {
          assertRecord(await s.store.get(0, instanceId), want, `after reopen ${s.reopens}`);
        }
        assert.equal(await s.store.maxInstanceId(0), life * 25 + 24, `after reopen ${s.reopens}: max`);
        await assertBytes(s.store.masterVariables(0), utf8(`life ${life}`), `after reopen ${s.reopens}: master`);
      }
    });
  });
}

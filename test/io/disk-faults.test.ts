// FileLogStore on a disk that fails: a full file system (ENOSPC) and a read-only one (EROFS), on a
// small tmpfs mounted for the test. A failed write halts the store (STORAGE_UNAVAILABLE), nothing that
// was acknowledged is lost, and a GroupDriver on such a store halts its group and rejects its proposals.
// Needs root (mount); skipped otherwise. Resuming after such failures: disk-resume.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open as openFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { GroupCore } from '../../src/core/group-core.js';
import type { AcceptorRecord, HaltReason } from '../../src/core/ready.js';
import { PaxosError } from '../../src/errors.js';
import { recordBytesOnDisk } from '../../src/io/file-log-store.js';
import { GroupDriver } from '../../src/runtime/group-driver.js';
import type { Clock, ExecuteInput, LogStore, StateMachine } from '../../src/runtime/interfaces.js';
import { restoreGroup } from '../../src/runtime/restore.js';
import { StateMachineRegistry } from '../../src/runtime/state-machine-registry.js';
import { frameValue } from '../../src/runtime/value-frame.js';
import { utf8 } from '../../src/util/bytes.js';
import { assertRecord, patternBytes, record } from '../contract/log-store-contract.js';
import { makeConfig } from '../core/fixtures.js';
import { RecordingLogger, spareReady } from './file-store-fixtures.js';
import { rejection, withTmpfs } from './tmpfs-fixtures.js';

const SEGMENT = 64 * 1024;
/** 1024-byte frames: 64 fill a segment exactly, so once no segment can be made, no put fits. */
const VALUE = 1024 - recordBytesOnDisk(0);
const TEST_TIMEOUT_MS = 60_000;

function assertHalted(error: unknown, cause: RegExp): PaxosError {
  assert.ok(error instanceof PaxosError, `expected a PaxosError, got ${String(error)}`);
  assert.equal(error.code, 'STORAGE_UNAVAILABLE', error.message);
  assert.match(error.message, cause);
  return error;
}

function fill(instanceId: number): AcceptorRecord {
  return record(instanceId, patternBytes(VALUE, instanceId + 1));
}

class Echo implements StateMachine {
  readonly id = 1;
  readonly executed: string[] = [];
  execute(input: ExecuteInput): unknown {
    this.executed.push(Buffer.from(input.value).toString());
    return 'ok';
  }
}

/** A one-node group 0 driven over `store`, as the runtime would. */
async function driverOver(store: LogStore): Promise<{ driver: GroupDriver; halts: HaltReason[]; fatal: unknown[];
  machine: Echo; logger: RecordingLogger; }> {
  const clock: Clock = { now: () => 0 };
  const machine = new Echo();
  const registry = new StateMachineRegistry(0, [machine]);
  const restored = await restoreGroup(store, 0, registry);
  const core = new GroupCore(makeConfig({ nodeId: 1, members: [1] }), restored, clock.now());
  const halts: HaltReason[] = [];
  const fatal: unknown[] = [];
  const logger = new RecordingLogger();
  const driver: GroupDriver = new GroupDriver({
    groupIndex: 0, core, store, registry, clock, logger, syncWrites: true,
    queueLimits: { maxCount: 8, maxBytes: 1 << 20 }, batchLimits: { maxCount: 1, maxBytes: 1 << 20 },
    send: (_group, to, message) => {
      if (to === 1) setImmediate(() => driver.step(message));
    },
    onTimersChanged: () => {},
    onFatal: (error) => fatal.push(error),
    onHalt: (reason) => halts.push(reason),
  });
  return { driver, halts, fatal, machine, logger };
}

async function assertDriverHalts(store: LogStore, cause: RegExp): Promise<void> {
  const { driver, halts, fatal, machine, logger } = await driverOver(store);
  const first = driver.propose(frameValue(1, utf8('first')), { timeoutMs: 5_000 });
  const second = driver.propose(frameValue(1, utf8('second')), { timeoutMs: 5_000 });
  assertHalted(await rejection(first), cause);
  assertHalted(await rejection(second), cause);
  assert.equal(halts.length, 1);
  assert.equal(halts[0]?.code, 'STORAGE_UNAVAILABLE');
  assert.match(halts[0]?.message ?? '', cause);
  assert.equal(driver.halted?.code, 'STORAGE_UNAVAILABLE');
  assert.deepEqual(machine.executed, [], 'nothing executed on a state it could not persist');
  assert.deepEqual(fatal, []);
  assert.ok(logger.lines.some((line) => line.level === 'error' && /log write failed/.test(line.message)));
  assertHalted(await rejection(driver.propose(frameValue(1, utf8('later')), { timeoutMs: 5_000 })), cause);
  driver.stop();
}

const NO_SPACE = /ENOSPC|no space/i;
const READ_ONLY = /EROFS|read-only/i;

test('ENOSPC: the failing put halts the store, later puts reject, acknowledged records survive a reopen',
  { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withTmpfs(t, '2m', async (mount, openStore) => {
      const directory = join(mount.path, 'store');
      const logger = new RecordingLogger();
      const store = await openStore({ directory, segmentBytes: SEGMENT, logger });
      let acknowledged = 0;
      let failure: unknown;
      for (let i = 0; i < 10_000 && failure === undefined; i++) {
        await store.put(7, [fill(i)], { sync: true }).then(() => {
          acknowledged++;
        }, (error: unknown) => {
          failure = error;
        });
      }
      assert.ok(failure !== undefined, `the 2 MiB disk took ${acknowledged} KiB of records without filling up`);
      t.diagnostic(`${acknowledged} records acknowledged, then: ${String(failure)}`);
      assertHalted(failure, NO_SPACE);
      assert.ok(acknowledged >= SEGMENT / 1024 * 8, `only ${acknowledged} records fit before ENOSPC`);
      assert.ok(logger.lines.some((line) => line.level === 'error' && /log write failed/.test(line.message)));

      // The store refuses every further write, and says why; reads go on.
      assertHalted(await rejection(store.put(7, [record(acknowledged, 'small')], { sync: true })), NO_SPACE);
      assertHalted(await rejection(store.put(8, [record(0, 'other group')], { sync: false })), NO_SPACE);
      assertHalted(await rejection(store.setSystemVariables(7, utf8('x'))), NO_SPACE);
      assertRecord(await store.get(7, acknowledged - 1), fill(acknowledged - 1), 'the last acknowledged record');
      assert.equal(await store.get(7, acknowledged), undefined, 'the failed record was not indexed');
      assert.equal(await store.maxInstanceId(7), acknowledged - 1);
      // A group driven over it halts at its first write, and every proposal rejects.
      await assertDriverHalts(store, NO_SPACE);
      await store.close();

      // On the still-full disk a writable store does not start (no room for its spare segment), says
      // why, and leaves no half-made segment; read-only, everything acknowledged is there.
      await assert.rejects(openStore({ directory, segmentBytes: SEGMENT }), (error: unknown) => {
        assertHalted(error, NO_SPACE);
        assert.match((error as Error).message, /needs about \d+ MiB free/);
        return true;
      });
      assert.deepEqual((await readdir(join(directory, 'log'))).filter((name) => name.endsWith('.tmp')), []);
      const reopened = await openStore({ directory, segmentBytes: SEGMENT, readOnly: true });
      assert.equal(reopened.recovery.truncatedTail, null);
      for (let i = 0; i < acknowledged; i++) assertRecord(await reopened.get(7, i), fill(i), 'after reopen');
      assert.equal(await reopened.maxInstanceId(7), acknowledged - 1);
      await reopened.close();

      // With space again, the same directory opens and takes writes; nothing was lost.
      mount.remount('size=4m');
      const grown = await openStore({ directory, segmentBytes: SEGMENT });
      await grown.put(7, [fill(acknowledged)], { sync: true });
      for (let i = 0; i <= acknowledged; i++) assertRecord(await grown.get(7, i), fill(i), 'after the disk grew');
      await grown.close();
      const leftovers = (await readdir(join(directory, 'log'))).filter((name) => !/^\d{10}\.log$/.test(name));
      assert.deepEqual(leftovers, [], 'no half-made segment is left behind once creation succeeds');
    });
  });

test('ENOSPC on a metadata write: the change is refused, the store halts, the old metadata stays durable',
  { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withTmpfs(t, '1m', async (mount, openStore) => {
      const directory = join(mount.path, 'store');
      const store = await openStore({ directory, segmentBytes: SEGMENT });
      await store.setSystemVariables(0, utf8('old'));
      await store.put(0, [fill(0)], { sync: true });
      await spareReady(directory);
      // Take the rest of the space: the pre-allocated segments still have room, the metadata has none.
      const filler = join(mount.path, 'filler');
      const handle = await openFile(filler, 'w');
      try {
        const chunk = Buffer.alloc(64 * 1024, 1);
        for (;;) await handle.write(chunk);
      } catch (error) {
        assert.match(String(error), NO_SPACE);
      } finally {
        await handle.close();
      }
      const refused = await rejection(store.setSystemVariables(0, utf8('new')));
      t.diagnostic(String(refused));
      assertHalted(refused, NO_SPACE);
      assert.equal(Buffer.from((await store.systemVariables(0)) ?? []).toString(), 'old',
        'the store does not report variables it could not persist');
      // Like a failed put, a failed metadata write stops every later write.
      assertHalted(await rejection(store.put(0, [fill(1)], { sync: true })), NO_SPACE);
      assertHalted(await rejection(store.setMasterVariables(0, utf8('m'))), NO_SPACE);
      assertHalted(await rejection(store.deleteBelow(0, 1)), NO_SPACE);
      await store.close();

      await rm(filler);
      const reopened = await openStore({ directory, segmentBytes: SEGMENT });
      assert.equal(Buffer.from((await reopened.systemVariables(0)) ?? []).toString(), 'old');
      assertRecord(await reopened.get(0, 0), fill(0), 'after reopen');
      assert.equal(await reopened.get(0, 1), undefined);
      assert.equal(await reopened.minChosenInstanceId(0), 0);
      await reopened.setSystemVariables(0, utf8('new'));
      await reopened.close();
    });
  });

test('EROFS: puts on a file system remounted read-only halt the store; acknowledged data is intact after rw',
  { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withTmpfs(t, '8m', async (mount, openStore) => {
      const directory = join(mount.path, 'store');
      const writer = await openStore({ directory, segmentBytes: SEGMENT });
      const written = Array.from({ length: 100 }, (_, i) => fill(i));
      for (const item of written) await writer.put(3, [item], { sync: true });
      await writer.setSystemVariables(3, utf8('system'));
      await writer.close();

      // Open for writing, then the file system turns read-only under the open store (remounting needs
      // no file open for writing, which holds until the store's first write or read).
      const logger = new RecordingLogger();
      const store = await openStore({ directory, segmentBytes: SEGMENT, logger });
      mount.remount('ro');
      try {
        const refused = assertHalted(await rejection(store.put(3, [fill(100)], { sync: true })), READ_ONLY);
        t.diagnostic(String(refused));
        assertHalted(await rejection(store.put(3, [fill(101)], { sync: true })), READ_ONLY);
        assertHalted(await rejection(store.setMasterVariables(3, utf8('m'))), READ_ONLY);
        assert.ok(logger.lines.some((line) => line.level === 'error' && /log write failed/.test(line.message)));
        await store.close();

        // A writable store cannot even start on the read-only file system: start-up makes what it
        // recovered durable before anything else, and says why it cannot.
        await assert.rejects(openStore({ directory, segmentBytes: SEGMENT }), /EROFS|read-only/);
      } finally {
        mount.remount('rw');
      }

      const reopened = await openStore({ directory, segmentBytes: SEGMENT });
      assert.equal(reopened.recovery.truncatedTail, null);
      for (const item of written) assertRecord(await reopened.get(3, item.instanceId), item, 'after remount rw');
      assert.equal(await reopened.get(3, 100), undefined, 'the refused write left nothing');
      assert.equal(await reopened.maxInstanceId(3), 99);
      assert.equal(Buffer.from((await reopened.systemVariables(3)) ?? []).toString(), 'system');
      assert.equal(await reopened.masterVariables(3), undefined);
      await reopened.put(3, [fill(100)], { sync: true });
      assertRecord(await reopened.get(3, 100), fill(100), 'written after remount rw');
      await reopened.close();
    });
  });

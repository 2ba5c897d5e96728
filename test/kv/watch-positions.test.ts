// Watch positions compare across nodes however a node got its state: one node executes the log
// (KV instances and others, such as master lease bids, which never reach the KV state machine),
// another restores a snapshot of it; a cursor taken on either resumes on the other, neither
// compacted nor waiting for a write that may never come.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeKvCommand, type Fence, type KvCommand } from '../../src/kv/kv-command.js';
import { KvStateMachine } from '../../src/kv/kv-state-machine.js';
import { formatCursor } from '../../src/kv/watch-cursor.js';
import { KvWatchHub, type WatchSink } from '../../src/kv/watch-hub.js';

const FENCE: Fence = { nodeId: 1, masterVersion: 10 };

const sink = (): WatchSink & { events: string[] } => {
  const events: string[] = [];
  return { events, write: (event) => { events.push(event); return true; }, end: () => {} };
};

/** A node's KV machine and hub, with `next` standing for the node's next instance (all state machines). */
function node(): { hub: KvWatchHub; machine: KvStateMachine; run: (instance: number, command: KvCommand) => void;
  next: { instance: number } } {
  const hub = new KvWatchHub(1);
  const machine = new KvStateMachine({ groups: 1, observer: hub });
  const next = { instance: 0 };
  hub.followExecution(() => next.instance);
  const run = (instanceId: number, command: KvCommand): void => {
    machine.execute({ groupIndex: 0, instanceId, value: encodeKvCommand(command), context: undefined });
    next.instance = instanceId + 1;
  };
  return { hub, machine, run, next };
}

test('a node restored from a snapshot and one that executed the log have the same head, and resume each other', () => {
  const b = node();
  b.run(0, { kind: 'fence', fence: FENCE, httpAddress: 'http://b' });
  b.run(1, { kind: 'put', key: 'k', value: new Uint8Array([1]), expectedVersion: undefined, fence: FENCE });
  b.next.instance = 10; // instances 2..9 went to other state machines (master lease bids)
  const captured = b.machine.captureSnapshot(0, 9);

  const a = node();
  const entries = new Map(captured.keys.map((key, i) => [key, captured.entries[i]!]));
  a.machine.restoreSnapshot({ ...captured, entries });
  a.next.instance = 10;

  assert.deepEqual(b.hub.headCursor(), [{ instance: 10, index: 0 }]);
  assert.deepEqual(a.hub.headCursor(), b.hub.headCursor(), 'the same state, the same head');
  for (const [from, to] of [[b, a], [a, b]] as const) {
    const started = to.hub.start('', from.hub.headCursor(), sink());
    assert.ok(started.ok, `resumed: ${started.ok ? '' : started.reason}`);
    started.watcher.close();
  }
  // A cursor from between the last KV instance and the snapshot also resumes on the restored node.
  const between = a.hub.start('', [{ instance: 5, index: 0 }], sink());
  assert.ok(between.ok, 'nothing changed from 5.0 through the snapshot');
  between.watcher.close();
  // Just after the change at 1.0 is still older than what the snapshot tells: compacted there (another
  // node may still hold it), not a silent gap.
  const old = a.hub.start('', [{ instance: 1, index: 0 }], sink());
  assert.equal(old.ok ? 'ok' : old.reason, 'compacted');

  // Both go on executing the same log: a change at 10, then other state machines' instances.
  for (const n of [a, b]) {
    n.run(10, { kind: 'put', key: 'k', value: new Uint8Array([2]), expectedVersion: undefined, fence: FENCE });
    n.next.instance = 13;
  }
  assert.deepEqual(a.hub.headCursor(), [{ instance: 13, index: 0 }]);
  assert.deepEqual(b.hub.headCursor(), a.hub.headCursor());
});

test('a heartbeat carries a caught-up cursor past instances of other state machines', () => {
  const b = node();
  b.run(0, { kind: 'fence', fence: FENCE, httpAddress: 'http://b' });
  const events = sink();
  const started = b.hub.start('', b.hub.headCursor(), events);
  assert.ok(started.ok);
  b.next.instance = 7;
  started.watcher.heartbeat();
  assert.equal(events.events[0], `event: progress\nid: ${formatCursor([{ instance: 7, index: 0 }])}\ndata: {}\n\n`);
  started.watcher.close();
});

test('a wait for a cursor ends when other state machines move the node there', async () => {
  const b = node();
  setTimeout(() => { b.next.instance = 5; }, 20);
  const reached = await b.hub.reach([{ instance: 5, index: 0 }], performance.now() + 2_000);
  assert.equal(reached, true);
});

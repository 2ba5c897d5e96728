// The watch's bookkeeping without a cluster: cursor tokens, one group's bounded ring (positions,
// eviction, resets by snapshots, where a cursor resumes), and the hub's watchers on a sink that
// takes only so much (delivery from a cursor, prefixes, drop of a slow watcher, compaction).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvError } from '../../src/kv/kv-error.js';
import { comparePositions, formatCursor, parseCursor } from '../../src/kv/watch-cursor.js';
import { WatchHistory } from '../../src/kv/watch-history.js';
import { KvWatchHub, STALLED_HEARTBEATS, type WatchSink } from '../../src/kv/watch-hub.js';

const bytes = (text: string): Uint8Array => Buffer.from(text, 'utf8');

test('cursor tokens round-trip, and anything else is refused', () => {
  const positions = [{ instance: 12, index: 0 }, { instance: -1, index: 0 }, { instance: 40, index: 2 }];
  assert.equal(formatCursor(positions), '0:12.0,1:-1.0,2:40.2');
  assert.deepEqual(parseCursor('0:12.0,1:-1.0,2:40.2', 3), positions);
  for (const bad of ['', '0:1.0', '0:1.0,1:2.0,2:3', '1:1.0,0:1.0,2:1.0', '0:1.0,1:x.0,2:1.0', '0:1.0,1:1.0,2:1.0,3:1.0',
    '0:99999999999999999.0,1:1.0,2:1.0']) {
    assert.throws(() => parseCursor(bad, 3), (error: unknown) => error instanceof KvError && error.code === 'BAD_REQUEST',
      bad);
  }
  assert.ok(comparePositions({ instance: 3, index: 9 }, { instance: 4, index: 0 }) < 0);
  assert.ok(comparePositions({ instance: 4, index: 1 }, { instance: 4, index: 0 }) > 0);
});

test('changes get positions by instance and index within it; the head follows execution', () => {
  const history = new WatchHistory(0);
  assert.deepEqual(history.head, { instance: -1, index: 0 });
  history.executed(0); // a fence: no change
  assert.deepEqual(history.head, { instance: 0, index: 0 });
  const a = history.changed(1, 'a', 1, bytes('x'));
  const b = history.changed(1, 'b', 1, bytes('y')); // same batch
  const c = history.changed(3, 'a', 2, undefined);
  assert.deepEqual([a.position, b.position, c.position], [
    { instance: 1, index: 0 }, { instance: 1, index: 1 }, { instance: 3, index: 0 }]);
  assert.deepEqual(history.head, { instance: 3, index: 1 });
  assert.ok(history.reached({ instance: 3, index: 1 }));
  assert.ok(!history.reached({ instance: 3, index: 2 }), 'a third change of instance 3 is not executed here yet');
  assert.ok(!history.reached({ instance: 4, index: 0 }));
  history.executed(4);
  assert.ok(history.reached({ instance: 4, index: 0 }));
  // Resuming: the first change at or after the cursor.
  assert.equal(history.seqFrom({ instance: 1, index: 1 }), b.seq);
  assert.equal(history.seqFrom({ instance: 1, index: 2 }), c.seq);
  assert.equal(history.seqFrom({ instance: 4, index: 0 }), history.endSeq);
  assert.ok(history.covers({ instance: -1, index: 0 }), 'nothing evicted: everything since the start is here');
});

test('eviction by count and bytes raises the oldest resumable cursor to just after the evicted change', () => {
  const history = new WatchHistory(0, { maxChanges: 3, maxBytes: 1_000_000 });
  for (let instance = 0; instance < 5; instance++) history.changed(instance, 'k', instance + 1, bytes('v'));
  assert.equal(history.size, 3);
  assert.deepEqual(history.oldest, { instance: 1, index: 1 });
  assert.ok(!history.covers({ instance: 1, index: 0 }), 'the change at 1.0 is gone: that cursor is compacted');
  assert.ok(history.covers({ instance: 1, index: 1 }));
  assert.equal(history.at(history.firstSeq)?.position.instance, 2);
  assert.equal(history.at(history.firstSeq - 1), undefined);

  const small = new WatchHistory(0, { maxChanges: 100, maxBytes: 300 });
  small.changed(0, 'a', 1, new Uint8Array(100));
  small.changed(1, 'b', 1, new Uint8Array(100));
  assert.equal(small.size, 1, 'two changes of 166 bytes do not fit in 300');
  small.changed(2, 'c', 1, new Uint8Array(1000));
  assert.equal(small.size, 1, 'the newest change is kept even when larger than the bound');
});

test('a snapshot replacing the state resets the ring: nothing before it resumes', () => {
  const history = new WatchHistory(0);
  history.changed(5, 'a', 1, bytes('x'));
  const epoch = history.epoch;
  history.reset(100);
  assert.equal(history.epoch, epoch + 1);
  assert.equal(history.size, 0);
  assert.deepEqual(history.head, { instance: 101, index: 0 });
  assert.ok(!history.covers({ instance: 6, index: 0 }));
  assert.ok(history.covers({ instance: 101, index: 0 }));
  const next = history.changed(101, 'b', 1, bytes('y'));
  assert.deepEqual(next.position, { instance: 101, index: 0 });
});

/** A sink that takes `room` events and then reports full until `drain`. */
class TestSink implements WatchSink {
  readonly events: string[] = [];
  ended = false;
  constructor(public room: number) {}
  write(event: string): boolean {
    this.events.push(event);
    this.room--;
    return this.room > 0;
  }
  end(): void {
    this.ended = true;
  }
  changes(): { key: string; version: number; id: string }[] {
    return this.events.filter((event) => event.startsWith('event: change')).map((event) => {
      const id = /id: (.*)\n/.exec(event)?.[1] as string;
      const data = JSON.parse(/data: (.*)\n/.exec(event)?.[1] as string) as { key: string; version: number };
      return { key: data.key, version: data.version, id };
    });
  }
}

/** Watchers send new changes on the next turn of the event loop (not inside the execution). */
const turn = async (): Promise<void> => await new Promise((resolve) => setImmediate(resolve));

const entry = (version: number, value?: string) => ({ version, value: value === undefined ? undefined : bytes(value) });

test('a watcher delivers every matching change after its cursor, in order, and resumes from an event id', async () => {
  const hub = new KvWatchHub(2);
  hub.changed(0, 0, 'p/a', entry(1, 'x'));
  const start = hub.headCursor();
  hub.changed(0, 1, 'p/a', entry(2, 'y'));
  hub.changed(1, 1, 'q/b', entry(1, 'z'));
  hub.changed(1, 2, 'p/c', entry(1, 'w'));
  const sink = new TestSink(100);
  const started = hub.start('p/', start, sink);
  assert.ok(started.ok);
  started.watcher.wake();
  assert.deepEqual(sink.changes().map(({ key, version }) => `${key}@${version}`), ['p/a@2', 'p/c@1']);
  hub.changed(0, 2, 'p/a', entry(3));
  assert.equal(sink.changes().length, 2, 'not sent from inside the execution');
  await turn();
  assert.deepEqual(sink.changes().map(({ key, version }) => `${key}@${version}`), ['p/a@2', 'p/c@1', 'p/a@3']);
  // Resuming from the first event's id gives the rest, nothing twice.
  const first = sink.changes()[0]?.id as string;
  const again = new TestSink(100);
  const resumed = hub.start('p/', parseCursor(first, 2), again);
  assert.ok(resumed.ok);
  resumed.watcher.wake();
  // Groups 0 and 1 interleave in no particular order; each group's changes come in its log order.
  assert.deepEqual(again.changes().map(({ key, version }) => `${key}@${version}`).sort(), ['p/a@3', 'p/c@1']);
  // A cursor ahead of this node is refused as behind, never served from older state.
  const ahead = hub.start('p/', [{ instance: 9, index: 0 }, { instance: 0, index: 0 }], new TestSink(1));
  assert.equal(ahead.ok ? 'ok' : ahead.reason, 'behind');
});

test('a slow watcher is dropped with an event once the ring evicts what it has not delivered', async () => {
  const hub = new KvWatchHub(1, { history: { maxChanges: 4 } });
  const slow = new TestSink(2);
  const fast = new TestSink(1_000);
  const startSlow = hub.start('', hub.headCursor(), slow);
  const startFast = hub.start('', hub.headCursor(), fast);
  assert.ok(startSlow.ok && startFast.ok);
  for (let instance = 0; instance < 10; instance++) {
    hub.changed(0, instance, 'k', entry(instance + 1, 'v'));
    await turn();
  }
  assert.equal(fast.changes().length, 10);
  assert.ok(slow.ended, 'the slow watcher ended');
  const last = slow.events[slow.events.length - 1] as string;
  assert.match(last, /^event: dropped\n/);
  const cursor = (JSON.parse(/data: (.*)\n/.exec(last)?.[1] as string) as { cursor: string }).cursor;
  assert.equal(cursor, slow.changes()[slow.changes().length - 1]?.id, 'dropped names the last cursor delivered');
  assert.equal(hub.watching, 1);
  assert.equal(hub.dropped, 1);
  // That cursor is older than the ring now: resuming from it is compacted, not a gap.
  const resumed = hub.start('', parseCursor(cursor, 1), new TestSink(10));
  assert.equal(resumed.ok ? 'ok' : resumed.reason, 'compacted');
});

test('a snapshot install under a live watcher ends it as unavailable with its cursor, unless its key is elsewhere',
  async () => {
  const hub = new KvWatchHub(2);
  const sink = new TestSink(100);
  const started = hub.start('', hub.headCursor(), sink);
  assert.ok(started.ok);
  const otherGroup = new TestSink(100);
  const keyWatch = hub.start({ key: 'b' }, hub.headCursor(), otherGroup, 1);
  assert.ok(keyWatch.ok);
  hub.changed(0, 0, 'a', entry(1, 'x'));
  await turn();
  hub.replaced(0, 50);
  assert.ok(sink.ended);
  // Resumable elsewhere (another node's ring may hold what this one skipped), so not `compacted`.
  assert.match(sink.events[sink.events.length - 1] as string,
    /^event: unavailable\ndata: \{"group":0,"reason":".*snapshot.*","cursor":"0:0\.1,1:-1\.0"\}/);
  assert.equal(hub.compacted, 0);
  assert.ok(!otherGroup.ended, 'a watch of a key of group 1 goes on');
  hub.changed(0, 51, 'c', entry(1, 'z'));
  hub.changed(1, 3, 'b', entry(1, 'y'));
  await turn();
  assert.deepEqual(otherGroup.changes().map(({ key, version, id }) => `${key}@${version} ${id}`), ['b@1 0:51.1,1:3.1']);
});

test('a heartbeat carries the cursor forward past changes of other keys', async () => {
  const hub = new KvWatchHub(1);
  const sink = new TestSink(100);
  const started = hub.start('mine/', hub.headCursor(), sink);
  assert.ok(started.ok);
  hub.changed(0, 3, 'other', entry(1, 'x'));
  hub.executed(0, 4);
  await turn();
  started.watcher.heartbeat();
  assert.match(sink.events[0] as string, /^event: progress\nid: 0:4\.0\n/);
  started.watcher.heartbeat();
  assert.equal(sink.events[1], ': heartbeat\n\n');
});

test('a key from a version starts at its change to the next version, at the head, behind or compacted', () => {
  const hub = new KvWatchHub(1, { history: { maxChanges: 3 } });
  hub.changed(0, 0, 'k', entry(1, 'a'));
  hub.changed(0, 1, 'k', entry(2, 'b'));
  hub.changed(0, 2, 'other', entry(1, 'c'));
  hub.changed(0, 3, 'k', entry(3, 'd'));
  assert.deepEqual(hub.keyCursor('k', 0, 1, 3), [{ instance: 1, index: 0 }], 'version 2 is at 1.0');
  assert.deepEqual(hub.keyCursor('k', 0, 3, 3), [{ instance: 3, index: 1 }], 'at the current version: the head');
  const behind = hub.keyCursor('k', 0, 4, 3);
  assert.ok(!Array.isArray(behind) && !behind.ok && behind.reason === 'behind');
  const gone = hub.keyCursor('k', 0, 0, 3);
  assert.ok(!Array.isArray(gone) && !gone.ok && gone.reason === 'compacted', 'version 1 was evicted');
});

test('a change is rendered once for all its watchers, and sent after the execution that made it', async () => {
  const hub = new KvWatchHub(1);
  const sinks = [new TestSink(100), new TestSink(100), new TestSink(100)];
  for (const sink of sinks) assert.ok(hub.start('', hub.headCursor(), sink).ok);
  const value = bytes('first');
  hub.changed(0, 0, 'k', { version: 1, value });
  assert.deepEqual(sinks.map((sink) => sink.events.length), [0, 0, 0]);
  await turn();
  const change = hub.histories[0]?.at(hub.histories[0].firstSeq);
  assert.equal(change?.data, '{"group":0,"key":"k","version":1,"value":"first","deleted":false}');
  // The data is the cached string: rendering it again (the value was never to change) does not.
  value.set(bytes('FIRST'));
  const late = new TestSink(100);
  const started = hub.start('', [{ instance: 0, index: 0 }], late);
  assert.ok(started.ok);
  started.watcher.wake();
  for (const sink of [...sinks, late]) assert.match(sink.events[0] as string, /"value":"first"/);
});

test('a watcher whose sink stays full for some heartbeats is dropped and its sink destroyed', async () => {
  const hub = new KvWatchHub(1);
  const stuck = Object.assign(new TestSink(1), { destroyed: false, destroy(): void { this.destroyed = true; } });
  const started = hub.start('', hub.headCursor(), stuck);
  assert.ok(started.ok);
  hub.changed(0, 0, 'k', entry(1, 'v'));
  await turn();
  assert.equal(stuck.changes().length, 1, 'the sink is full after one event');
  for (let beat = 1; beat < STALLED_HEARTBEATS; beat++) started.watcher.heartbeat();
  assert.ok(!stuck.ended && hub.watching === 1, 'not yet');
  started.watcher.drained(); // it read: the count starts again
  started.watcher.heartbeat(); // written, and the sink is full again
  assert.equal(stuck.events[stuck.events.length - 1], ': heartbeat\n\n');
  for (let beat = 1; beat < STALLED_HEARTBEATS; beat++) started.watcher.heartbeat();
  assert.ok(!stuck.ended, 'a drain resets the count');
  started.watcher.heartbeat();
  assert.ok(stuck.ended && stuck.destroyed);
  assert.equal(hub.watching, 0);
  assert.equal(hub.dropped, 1);
  assert.match(stuck.events[stuck.events.length - 1] as string,
    /^event: dropped\ndata: .*took no data.*"cursor":"0:0\.1"/);
});

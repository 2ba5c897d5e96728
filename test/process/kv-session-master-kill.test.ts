// Exactly-once through a master's death, with real processes: the master of the group applies a
// session write and is killed with kill -9 before its answer reaches the client (a proxy holds the
// answer back, kills the node, then cuts the client's connection). The client cannot know whether
// the write was applied; it sends it again with the same session number until a new master serves,
// which answers from the session's stored reply: the caller gets the version the dead master gave,
// and the key was written once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { KvClient } from '../../src/kv/client.js';
import { answerLosingProxy } from '../support/answer-losing-proxy.js';
import { clusterScope, kvServeProcess, processesMentioning, startClusterUp } from '../support/cluster-up.js';
import { servingMaster } from '../support/kv-nemesis.js';

const LEASE_MS = 1_000;

test('a master killed between choosing a session write and answering it: the retry gets the first answer',
  { timeout: 60_000 }, async (t) => {
    const { dir, track, undo } = await clusterScope(t, 'kv-session-master-kill');
    const cluster = await startClusterUp({
      dir, json: true, flags: ['--groups', '1', '--master-lease', String(LEASE_MS), '--restart=false'], track,
    });
    const { endpoints } = cluster;
    const probe = new KvClient({ endpoints, timeoutMs: 1_000, sessions: false });
    undo.push(() => probe.close());
    let master: number | undefined;
    for (const started = performance.now(); master === undefined && performance.now() - started < 15_000;) {
      master = await servingMaster(probe, endpoints, 0);
      if (master === undefined) await sleep(50);
    }
    assert.ok(master !== undefined, 'a master serves group 0');
    const victim = await kvServeProcess(dir, master);
    assert.ok(victim !== undefined);
    const survivors = endpoints.filter((_, index) => index + 1 !== master);

    // Through the proxy to the master; once it is killed, to a survivor (which names the new master).
    let target = endpoints[master - 1] as string;
    let killedAt = 0;
    const proxy = await answerLosingProxy(() => target, (index) => index > 0 ? {} : {
      loseAnswer: true,
      onLost: async () => {
        process.kill(victim.pid, 'SIGKILL');
        killedAt = performance.now();
        target = survivors[0] as string;
        await cluster.waitFor(new RegExp(`"event":"exit","nodeId":${master},`), 5_000);
      },
    });
    undo.push(() => proxy.close());
    const client = new KvClient({ endpoints: [proxy.endpoint], timeoutMs: 20_000 });
    undo.push(() => client.close());

    const written = await client.put('exactly-once', 'v');
    const failoverMs = performance.now() - killedAt;
    assert.equal(proxy.lost.length, 1, 'the dead master\'s answer was lost');
    const lost = proxy.lost[0] as { status: number; body: string };
    assert.equal(lost.status, 200, lost.body);
    const firstAnswer = JSON.parse(lost.body) as { version: number };
    assert.deepEqual(written, { key: 'exactly-once', version: firstAnswer.version }, 'the first answer, given again');
    assert.equal(firstAnswer.version, 1);

    const reader = new KvClient({ endpoints: survivors, timeoutMs: 10_000, sessions: false });
    undo.push(() => reader.close());
    assert.deepEqual(await reader.get('exactly-once'), { key: 'exactly-once', value: 'v', version: 1 }, 'written once');
    const next = await servingMaster(probe, survivors, 0);
    assert.ok(next !== undefined && next !== master);
    const metrics = await fetch(`${endpoints[next - 1] as string}/metrics`).then((response) => response.text());
    const duplicates = Number(/^multipaxos_kv_session_duplicates_total (\d+)$/m.exec(metrics)?.[1]);
    assert.ok(duplicates >= 1, `the new master answered the retry from the stored reply (${duplicates})`);
    t.diagnostic(`node ${master} killed with the answer in flight; node ${next} answered the retry ` +
      `${Math.round(failoverMs)} ms later`);

    // The next write goes on in the same session, on the new master.
    assert.deepEqual(await client.put('exactly-once', 'w', { version: 1 }), { key: 'exactly-once', version: 2 });

    cluster.child.kill('SIGINT');
    await cluster.exitWithin(20_000);
    const left = (await processesMentioning(dir)).filter(({ argv }) => argv.includes('serve'));
    assert.deepEqual(left, [], 'kv serve processes left behind');
  });

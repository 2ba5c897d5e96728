// The examples run as documented and say what they should.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

function run(path: string): { status: number | null; stdout: string; stderr: string } {
  const script = fileURLToPath(new URL(path, import.meta.url));
  return spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 60_000 });
}

test('examples/echo/embed: three nodes agree on a value and the proposer gets it back', () => {
  const { status, stdout, stderr } = run('../../examples/echo/embed.js');
  assert.equal(status, 0, stderr);
  assert.match(stdout, /chosen at instance 1; node 1 got back "hello, paxos"/);
  for (const id of [1, 2, 3]) assert.match(stdout, new RegExp(`node ${id} executed "hello, paxos"`));
});

test('examples/election: one master, all agree, and another after the drop', () => {
  const { status, stdout, stderr } = run('../../examples/election/election.js');
  assert.equal(status, 0, stderr);
  const lines = stdout.split('\n');
  const before = lines.find((line) => line.startsWith('5s: '));
  const after = lines.find((line) => line.startsWith('10s: '));
  const agreed = (line: string | undefined): string | undefined => {
    const seen = [...(line ?? '').matchAll(/sees (\d+)/g)].map((match) => match[1]);
    return seen.length === 3 && new Set(seen).size === 1 ? seen[0] : undefined;
  };
  assert.ok(agreed(before) !== undefined, `all three agree at 5 s: ${before}`);
  assert.ok(agreed(after) !== undefined, `all three agree at 10 s: ${after}`);
  assert.notEqual(agreed(after), agreed(before), 'the master changed after the drop');
});

test('examples/counter/simulate: the counter passes 50 simulated seeds, its own check included', () => {
  const { status, stdout, stderr } = run('../../examples/counter/simulate.js');
  assert.equal(status, 0, stdout + stderr);
  const match = /^50 seeds: 0 failed; (\d+) acknowledged increments$/m.exec(stdout);
  assert.ok(match !== null, stdout);
  assert.ok(Number(match[1]) > 1000, 'the seeds did work');
});

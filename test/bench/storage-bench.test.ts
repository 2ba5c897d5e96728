import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCH = fileURLToPath(new URL('../../bench/main.js', import.meta.url));

type Line = Record<string, unknown>;

function positive(line: Line, field: string): void {
  const value = line[field];
  assert.ok(typeof value === 'number' && Number.isFinite(value) && value > 0,
    `${field} of ${JSON.stringify(line)} is not a positive number`);
}

test('storage bench --quick --json --smoke prints well-formed lines with positive numbers', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'storage-bench-test-'));
  try {
    const run = spawnSync(process.execPath, [BENCH, 'storage', '--quick', '--json', '--smoke', '--dir', directory],
      { encoding: 'utf8', timeout: 60_000 });
    assert.equal(run.status, 0, run.stderr);
    const lines = run.stdout.trim().split('\n').map((text) => JSON.parse(text) as Line);
    const [environment] = lines;
    assert.equal(environment?.kind, 'environment');
    assert.equal(environment?.profile, 'smoke');
    const engines = environment?.engines as string[];
    assert.equal(engines[0], 'raw');
    assert.equal(engines[1], 'file-log');
    assert.ok(engines[2] === 'classic-level' || engines[2] === 'append', `alternative engine: ${engines[2]}`);

    const commits = lines.filter((line) => line.kind === 'commit');
    assert.deepEqual(commits.map((line) => `${String(line.engine)}×${String(line.recordsPerCommit)}`),
      [1, 16, 128].flatMap((batch) => engines.map((engine) => `${engine}×${batch}`)));
    for (const line of commits) {
      for (const field of ['recordsPerSec', 'commitsPerSec', 'p50Ms', 'p99Ms', 'maxMs', 'seconds']) positive(line, field);
      assert.equal(line.records, (line.commits as number) * (line.recordsPerCommit as number));
      assert.ok((line.p50Ms as number) <= (line.p99Ms as number) && (line.p99Ms as number) <= (line.maxMs as number));
      if (line.engine === 'raw') assert.equal(line.vsRaw, undefined);
      else positive(line, 'vsRaw');
    }

    const recovery = lines.filter((line) => line.kind === 'recovery');
    const deletion = lines.filter((line) => line.kind === 'delete');
    const bulkEngines = engines[2] === 'classic-level' ? ['file-log', 'classic-level'] : ['file-log'];
    assert.deepEqual(recovery.map((line) => line.engine), bulkEngines);
    assert.deepEqual(deletion.map((line) => line.engine), bulkEngines);
    for (const line of recovery) {
      for (const field of ['records', 'bytes', 'ms', 'recordsPerSec']) positive(line, field);
      assert.ok(Array.isArray(line.runsMs));
    }
    for (const line of deletion) {
      for (const field of ['records', 'deleted', 'ms', 'recordsPerSec', 'bytesBefore']) positive(line, field);
      assert.equal(line.deleted, (line.records as number) / 2);
    }
    assert.equal(lines.length, 1 + commits.length + recovery.length + deletion.length);
    assert.deepEqual(await readdir(directory), [], 'the temporary directory is removed');
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});

test('storage bench rejects unknown flags and engines', () => {
  const flag = spawnSync(process.execPath, [BENCH, 'storage', '--bogus'], { encoding: 'utf8' });
  assert.equal(flag.status, 2);
  assert.match(flag.stderr, /unknown flag --bogus/);
  const engine = spawnSync(process.execPath, [BENCH, 'storage', '--engines', 'raw,nope'], { encoding: 'utf8' });
  assert.equal(engine.status, 2);
  assert.match(engine.stderr, /unknown engine "nope"/);
});

// `npm run bench -- kv-restart` end to end on a small load: both series run, each restart in its own
// process, and the snapshot it restarts from is reported.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BENCH = fileURLToPath(new URL('../../bench/main.js', import.meta.url));

test('kv-restart times restarts without and with a snapshot', () => {
  const run = spawnSync(process.execPath, [BENCH, 'kv-restart', '--keys', '3000', '--runs', '1', '--json'],
    { encoding: 'utf8', timeout: 120_000 });
  assert.equal(run.status, 0, run.stderr);
  const result = JSON.parse(run.stdout) as {
    keys: number; snapshot: { mb: number; copyMs: number };
    withSnapshot: { restartsMs: number[] }; withoutSnapshot: { restartsMs: number[] };
  };
  assert.equal(result.keys, 3000);
  assert.ok(result.snapshot.mb > 0);
  assert.equal(result.withSnapshot.restartsMs.length, 1);
  assert.equal(result.withoutSnapshot.restartsMs.length, 1);
});

// Usage errors as an operator meets them: the error and one line naming the --help to read (not
// every command's usage), exit status 2; a command's --help shows that command only; a port in use
// is one line, not a stack trace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { runCli, runCliWith } from '../support/cluster-up.js';
import { tempRoot } from '../support/local.js';

const NO_STACK = /^\s+at /m;

test('a usage error prints the error and one line pointing at the right --help, exit 2', async () => {
  const cases: [string[], RegExp, string][] = [
    [['kv', 'put', 'a'], /expected KEY VALUE/, 'multipaxos kv put --help'],
    [['kv'], /kv needs an action/, 'multipaxos kv --help'],
    [['kv', 'frobnicate', 'a'], /unknown kv action "frobnicate"/, 'multipaxos kv --help'],
    [['frobnicate'], /unknown command "frobnicate"/, 'multipaxos --help'],
    [['members', 'list', '--bogus'], /unknown flag --bogus/, 'multipaxos members list --help'],
    [['log', 'inspect'], /log inspect needs --data DIR/, 'multipaxos log inspect --help'],
    [['status', 'extra'], /status takes no arguments/, 'multipaxos status --help'],
    [['sim', '--seeds', '-3'], /--seeds must be at least 1; got -3/, 'multipaxos sim --help'],
    [['sim', '--jobs', '0'], /--jobs must be at least 1/, 'multipaxos sim --help'],
    [['sim', '--trace'], /--trace replays one seed: give it with --seed S/, 'multipaxos sim --help'],
  ];
  const runs = await Promise.all(cases.map(async ([args]) => await runCli(args)));
  runs.forEach((run, index) => {
    const [args, message, help] = cases[index] as [string[], RegExp, string];
    const what = `${args.join(' ')}: ${run.stderr}`;
    assert.equal(run.code, 2, what);
    const lines = run.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 2, what);
    assert.match(lines[0] as string, message, what);
    assert.equal(lines[1], `run '${help}' for usage`, what);
    assert.equal(run.stdout, '', what);
  });
});

test("a command's --help shows that command's usage only", async () => {
  const put = await runCli(['kv', 'put', '--help']);
  assert.equal(put.code, 0, put.stderr);
  assert.match(put.stdout, /^usage: multipaxos kv put KEY/);
  assert.doesNotMatch(put.stdout, /multipaxos (kv serve|cluster up|status|log inspect)/);
  const top = await runCli(['--help']);
  assert.equal(top.code, 0, top.stderr);
  assert.match(top.stdout, /^commands:/m);
  assert.doesNotMatch(top.stdout, /^usage: multipaxos kv put/m, 'the overview lists the commands, not their usages');
});

test('a port in use is one clear line (kv serve --http and --listen, cluster up)', async (t) => {
  const root = await tempRoot('port-in-use');
  const taken: Server = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  t.after(() => taken.close());
  const port = (taken.address() as { port: number }).port;
  const serve = ['kv', 'serve', '--id', '1', '--peers', `1=127.0.0.1:${port}`, '--data', join(root, 'n1')];
  const cases: [string[], RegExp][] = [
    [[...serve, '--listen', `127.0.0.1:${port}`, '--http', '127.0.0.1:0'], new RegExp(`--listen 127.0.0.1:${port}: the port is in use`)],
    [[...serve, '--listen', '127.0.0.1:0', '--http', `127.0.0.1:${port}`], new RegExp(`--http 127.0.0.1:${port}: the port is in use`)],
    [['cluster', 'up', '--nodes', '1', '--base-port', String(port - 1), '--dir', join(root, 'c')],
      new RegExp(`port ${port} on 127.0.0.1 is in use`)],
  ];
  for (const [args, message] of cases) {
    const run = await runCli(args);
    assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, message);
    assert.equal(run.stderr.trimEnd().split('\n').length, 1, run.stderr);
    assert.doesNotMatch(run.stderr, NO_STACK);
  }
});

test('a bad --endpoints (or $MULTIPAXOS_ENDPOINTS) is a usage error at once, not a TIMEOUT', async () => {
  // https:// endpoints are valid since the API can serve HTTPS (docs/security.md).
  for (const bad of ['localhost:8081', 'http://localhost', 'ftp://127.0.0.1:8081', 'http://127.0.0.1:8081/v1',
    'http://127.0.0.1:99999', 'nonsense', 'http://127.0.0.1:8081,oops']) {
    for (const args of [['kv', 'get', 'k', '--endpoints', bad], ['status', '--endpoints', bad]]) {
      const began = Date.now();
      const run = await runCli(args);
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, /--endpoints: ".*" is not an http:\/\/HOST:PORT URL/);
      assert.ok(Date.now() - began < 5_000, 'at once');
    }
  }
  const fromEnv = await runCliWith(['kv', 'get', 'k'], { env: { ...process.env, MULTIPAXOS_ENDPOINTS: 'host-without-port' } });
  assert.equal(fromEnv.code, 2, fromEnv.stderr);
  assert.match(fromEnv.stderr, /\$MULTIPAXOS_ENDPOINTS: "host-without-port" is not an http:\/\/HOST:PORT URL/);
});

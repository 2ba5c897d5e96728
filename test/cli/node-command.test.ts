// `multipaxos node` as an operator runs it: three processes, a value typed on one node's standard
// input is executed by all three, and Ctrl-C (SIGINT) stops each one cleanly.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../support/local.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const children: ChildProcessWithoutNullStreams[] = [];
after(() => {
  for (const child of children) child.kill('SIGKILL');
});


function waitForOutput(child: ChildProcessWithoutNullStreams, output: () => string, pattern: RegExp): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${pattern} in: ${output()}`)), 20_000);
    const check = (): void => {
      if (!pattern.test(output())) return;
      clearTimeout(timer);
      child.stdout.off('data', check);
      resolve();
    };
    child.stdout.on('data', check);
    check();
  });
}

test('three node processes: a line typed on one is chosen and executed on all; SIGINT stops each with 0', async () => {
  const root = await mkdtemp(join(tmpdir(), 'node-command-test-'));
  try {
    const ports = [await freePort(), await freePort(), await freePort()];
    const peers = ports.map((port, index) => `${index + 1}=127.0.0.1:${port}`).join(',');
    const outputs = ['', '', ''];
    const nodes = ports.map((port, index) => {
      const child = spawn(process.execPath, [CLI, 'node', '--id', String(index + 1), '--listen', `127.0.0.1:${port}`,
        '--peers', peers, '--data', join(root, `n${index + 1}`)]);
      children.push(child);
      child.stdout.on('data', (chunk: Buffer) => { outputs[index] += chunk.toString(); });
      child.stderr.on('data', (chunk: Buffer) => { outputs[index] += chunk.toString(); });
      return child;
    });
    const outputOf = (index: number) => (): string => outputs[index] as string;
    await Promise.all(nodes.map((child, index) => waitForOutput(child, outputOf(index), /listening on/)));
    nodes[0]!.stdin.write('hello from the terminal\n');
    await waitForOutput(nodes[0]!, () => outputs[0] as string,
      /chosen: group 0 instance 1 batch index 0: hello from the terminal/);
    await Promise.all(nodes.map((child, index) => waitForOutput(child, () => outputs[index] as string,
      /executed group 0 instance 1: hello from the terminal/)));
    const exits = nodes.map((child) => new Promise<number | null>((resolve) => child.once('exit', resolve)));
    for (const child of nodes) child.kill('SIGINT');
    assert.deepEqual(await Promise.all(exits), [0, 0, 0], outputs.join('\n---\n'));
    for (const output of outputs) assert.match(output, /stopped/);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('node --help prints the usage; a missing flag is a usage error (exit 2) that names it', () => {
  const help = spawnSync(process.execPath, [CLI, 'node', '--help'], { encoding: 'utf8' });
  assert.equal(help.status, 0);
  assert.match(help.stdout, /usage: multipaxos node --id N --listen HOST:PORT/);
  const missing = spawnSync(process.execPath, [CLI, 'node', '--listen', '127.0.0.1:1'], { encoding: 'utf8' });
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /--id is required/);
  const badPeers = spawnSync(process.execPath, [CLI, 'node', '--id', '1', '--listen', '127.0.0.1:1', '--peers', 'x',
    '--data', '/tmp/unused'], { encoding: 'utf8' });
  assert.equal(badPeers.status, 2);
  assert.match(badPeers.stderr, /--peers entries must be ID=HOST:PORT/);
});

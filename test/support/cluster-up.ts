// Helpers for tests that drive the built `multipaxos` CLI as real processes: `multipaxos cluster up`
// on free loopback ports, one-shot commands with a deadline, and a look into /proc to find (and
// finally kill) every process that mentions a test's data directory, so nothing outlives a test.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A child process whose output is collected as it comes, and whose exit is never missed. */
export interface Spawned {
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first match of `pattern` in stdout; rejects on timeout or when the child exits first. */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray>;
  /** The exit, or undefined when the child is still running after `timeoutMs`. */
  exitWithin(timeoutMs: number): Promise<Exit | undefined>;
  /** SIGKILL unless it has exited. */
  kill(): void;
}

export function spawnCli(args: readonly string[], options: { ipc?: boolean } = {}): Spawned {
  const stdio: ('pipe' | 'ignore' | 'ipc')[] = ['ignore', 'pipe', 'pipe'];
  if (options.ipc === true) stdio.push('ipc');
  const child = spawn(process.execPath, [CLI, ...args], { stdio });
  let out = '';
  let err = '';
  let done = false;
  child.stdout?.on('data', (chunk: Buffer) => { out += chunk.toString('utf8'); });
  child.stderr?.on('data', (chunk: Buffer) => { err += chunk.toString('utf8'); });
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      done = true;
      resolve({ code, signal });
    });
  });
  return {
    child, exited,
    stdout: () => out,
    stderr: () => err,
    async waitFor(pattern, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const match = pattern.exec(out);
        if (match !== null) return match;
        if (done) throw new Error(`exited before printing ${pattern}; stdout:\n${out}\nstderr:\n${err}`);
        if (Date.now() > deadline) throw new Error(`no ${pattern} within ${timeoutMs} ms; stdout:\n${out}\nstderr:\n${err}`);
        await sleep(25);
      }
    },
    async exitWithin(timeoutMs) {
      return await Promise.race([exited, sleep(timeoutMs, undefined, { ref: false })]);
    },
    kill() {
      if (!done) child.kill('SIGKILL');
    },
  };
}

export interface CliResult extends Exit {
  readonly stdout: string;
  readonly stderr: string;
}

/** Run one CLI command to completion; SIGKILLed (and reported as such) after `timeoutMs`. */
export async function runCli(args: readonly string[], timeoutMs = 15_000): Promise<CliResult> {
  const run = spawnCli(args);
  const exit = await run.exitWithin(timeoutMs);
  if (exit === undefined) {
    run.kill();
    const killed = await run.exited;
    return { ...killed, stdout: run.stdout(), stderr: `${run.stderr()}\n(killed after ${timeoutMs} ms)` };
  }
  return { ...exit, stdout: run.stdout(), stderr: run.stderr() };
}

/** Run the CLI with an environment and standard input of the test's choosing. */
export async function runCliWith(
  args: readonly string[], options: { env?: NodeJS.ProcessEnv; input?: string | Buffer } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { env: options.env ?? process.env, stdio: 'pipe' });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString('utf8'); });
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8'); });
  child.stdin.on('error', () => {});
  child.stdin.end(options.input);
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** Whether nothing listens on 127.0.0.1:port right now. */
export async function portIsFree(port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

/** A base port P with P+1..P+nodes (HTTP) and P+101..P+100+nodes (Paxos) free on loopback right now. */
export async function freeBasePort(nodes: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    // Below the usual ephemeral range (32768..), so outgoing connections do not take them meanwhile.
    const base = 20_000 + Math.floor(Math.random() * 12_000);
    const ports = Array.from({ length: nodes }, (_, index) => [base + 1 + index, base + 101 + index]).flat();
    let free = true;
    for (const port of ports) {
      if (!(await portIsFree(port))) {
        free = false;
        break;
      }
    }
    if (free) return base;
  }
  throw new Error('no free base port found');
}

export interface ClusterUp extends Spawned {
  readonly basePort: number;
  /** The endpoints of the `ready` line. */
  readonly endpoints: string[];
}

export interface ClusterUpOptions {
  readonly dir: string;
  /** Flags after `cluster up --dir DIR` (not --base-port, which is chosen here unless `reuseBasePort`). */
  readonly flags: readonly string[];
  readonly json: boolean;
  readonly nodes?: number;
  /** Start without --base-port: the data directory's saved shape decides (it must be `basePort`). */
  readonly reuseBasePort?: number;
  readonly readyTimeoutMs?: number;
  /** Every process started here, so the test's cleanup can kill what is left. */
  readonly track: Spawned[];
}

/**
 * `multipaxos cluster up` on free ports, resolved once it prints its ready line. A base port taken
 * between the probe and the start (cluster up refuses it with exit 2) is retried with another one.
 */
export async function startClusterUp(options: ClusterUpOptions): Promise<ClusterUp> {
  const readyPattern = options.json ? /^\{"event":"ready".*\}$/m : /^ready (\S+)$/m;
  for (let attempt = 1; ; attempt++) {
    const basePort = options.reuseBasePort ?? await freeBasePort(options.nodes ?? 3);
    const args = ['cluster', 'up', '--dir', options.dir, ...options.flags];
    if (options.reuseBasePort === undefined) args.push('--base-port', String(basePort));
    if (options.json) args.push('--json');
    const run = spawnCli(args);
    options.track.push(run);
    try {
      const match = await run.waitFor(readyPattern, options.readyTimeoutMs ?? 20_000);
      const endpoints = options.json
        ? (JSON.parse(match[0]) as { endpoints: string[] }).endpoints
        : (match[1] as string).split(',');
      return { ...run, basePort, endpoints };
    } catch (error) {
      run.kill();
      const exit = await run.exited;
      const portTaken = exit.code === 2 && /is in use/.test(run.stderr());
      if (!portTaken || options.reuseBasePort !== undefined || attempt >= 5) throw error;
    }
  }
}

export interface ProcessInfo {
  readonly pid: number;
  readonly ppid: number;
  readonly argv: readonly string[];
}

/** Every live process (zombies excluded) whose command line has an argument containing `text` (Linux /proc). */
export async function processesMentioning(text: string): Promise<ProcessInfo[]> {
  const found: ProcessInfo[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const argv = (await readFile(`/proc/${name}/cmdline`, 'utf8')).split('\0').filter((arg) => arg.length > 0);
      if (!argv.some((arg) => arg.includes(text))) continue;
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so parse after the last ')'.
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (state === 'Z') continue;
      found.push({ pid: Number(name), ppid: Number(ppid), argv });
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
}

/** The `kv serve` process of node `id` whose data lives under `dir`. */
export async function kvServeProcess(dir: string, id: number): Promise<ProcessInfo | undefined> {
  const all = await processesMentioning(dir);
  return all.find(({ argv }) => {
    const at = argv.indexOf('serve');
    const idAt = argv.indexOf('--id');
    return at > 0 && argv[at - 1] === 'kv' && idAt > at && argv[idAt + 1] === String(id);
  });
}

/** SIGKILL every tracked child and every process still mentioning `dir`; the last line of a test's cleanup. */
export async function killEverything(track: readonly Spawned[], dir: string): Promise<void> {
  for (const run of track) run.kill();
  await Promise.all(track.map((run) => Promise.race([run.exited, sleep(5_000, undefined, { ref: false })])));
  for (const leftover of await processesMentioning(dir)) {
    try {
      process.kill(leftover.pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
}

export interface ClusterScope {
  readonly dir: string;
  /** Processes started for the test: killed after it. */
  readonly track: Spawned[];
  /** Cleanup steps, undone last first after the test (also when an assertion fails). */
  readonly undo: (() => unknown)[];
}

/** A temporary directory for a test's cluster; its processes and files are removed after the test. */
export async function clusterScope(t: TestContext, prefix: string): Promise<ClusterScope> {
  const dir = await mkdtemp(join(tmpdir(), `${prefix}-`));
  const track: Spawned[] = [];
  const undo: (() => unknown)[] = [];
  t.after(async () => {
    while (undo.length > 0) await undo.pop()?.();
  });
  undo.push(async () => {
    await killEverything(track, dir);
    await rm(dir, { recursive: true, force: true });
  });
  return { dir, track, undo };
}

// The private network of a nemesis run, seen from outside: a network namespace of its own (a unique
// name per run), its loopback up, the driver started inside it, and the namespace removed at the end
// with every process still in it killed, whatever happened. Inside, all of 127.0.0.0/8 is on `lo`,
// so each node has an address of its own (127.0.0.11, .12, ...) and the driver's nft rules touch
// nothing outside.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

async function ip(...args: string[]): Promise<string> {
  const { stdout } = await run('ip', args, { timeout: 10_000 });
  return stdout;
}

/**
 * Why a nemesis run is impossible here (undefined when it is possible): it needs root, `ip netns`
 * and `nft`. A namespace is made and removed to prove it.
 */
export async function nemesisUnsupported(): Promise<string | undefined> {
  if (process.platform !== 'linux') return `network namespaces are Linux only (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'network namespaces and nftables need root';
  for (const tool of ['ip', 'nft']) {
    try {
      await run(tool, [tool === 'ip' ? '-V' : '--version'], { timeout: 5_000 });
    } catch {
      return `\`${tool}\` is not installed (apt-get install -y ${tool === 'ip' ? 'iproute2' : 'nftables'})`;
    }
  }
  const name = namespaceName('probe');
  try {
    await ip('netns', 'add', name);
    await ip('netns', 'exec', name, 'nft', 'list', 'tables');
  } catch (error) {
    return `cannot create a network namespace with nftables in it: ${(error as Error).message.split('\n')[0]}`;
  } finally {
    await ip('netns', 'del', name).catch(() => {});
  }
  return undefined;
}

function namespaceName(purpose: string): string {
  return `mpx-${purpose}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

export interface Namespace {
  readonly name: string;
  /** Start `command` inside the namespace (stdio as given). */
  spawn(command: string, args: readonly string[], stdio: 'inherit' | 'pipe'): ChildProcess;
  /** Kill whatever runs inside, then delete the namespace. Safe to call twice. */
  remove(): Promise<void>;
}

export async function createNamespace(): Promise<Namespace> {
  const name = namespaceName('nemesis');
  await ip('netns', 'add', name);
  // One removal, however many callers ask (a signal handler and a finally block may both): each
  // waits for the same one to finish.
  let removal: Promise<void> | undefined;
  const removeOnce = async (): Promise<void> => {
    // Every process inside (the driver, its nodes, anything they left), then the namespace itself.
    for (let round = 0; round < 3; round++) {
      const pids = (await ip('netns', 'pids', name).catch(() => '')).split('\n').filter((line) => /^\d+$/.test(line));
      if (pids.length === 0) break;
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // Gone meanwhile.
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    await ip('netns', 'del', name);
  };
  const remove = (): Promise<void> => {
    removal ??= removeOnce();
    return removal;
  };
  try {
    await ip('netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up');
  } catch (error) {
    await remove();
    throw error;
  }
  return {
    name,
    spawn: (command, args, stdio) => spawn('ip', ['netns', 'exec', name, command, ...args],
      { stdio: stdio === 'inherit' ? 'inherit' : ['ignore', 'pipe', 'pipe'] }),
    remove,
  };
}

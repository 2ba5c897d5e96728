// `npm run nemesis -- [--minutes N] [--faults a,b,...] [--seed N] [--out DIR] ...`: a nemesis run
// outside CI. It makes the private network namespace, runs the driver inside it (as root), and
// removes the namespace with everything in it at the end, also on Ctrl-C. The driver writes the
// history, the timeline picture and the figures to --out (default: a new temporary directory).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createNamespace, nemesisUnsupported } from './netns.js';

const DRIVER = fileURLToPath(new URL('./driver.js', import.meta.url));

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const why = await nemesisUnsupported();
  if (why !== undefined) {
    console.error(`nemesis: cannot run here: ${why}`);
    return 2;
  }
  if (!args.some((arg) => arg === '--out' || arg.startsWith('--out='))) {
    args.push('--out', mkdtempSync(join(tmpdir(), 'multipaxos-nemesis-run-')));
  }
  // The nodes' data: made and deleted here, since a driver that is killed cannot delete it.
  const data = mkdtempSync(join(tmpdir(), 'multipaxos-nemesis-data-'));
  const namespace = await createNamespace();
  const cleanUp = async (): Promise<void> => {
    await namespace.remove();
    rmSync(data, { recursive: true, force: true, maxRetries: 3 });
  };
  const stop = (): void => {
    void cleanUp().finally(() => process.exit(130));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const driver = namespace.spawn(process.execPath, [DRIVER, ...args, '--data', data], 'inherit');
    return await new Promise<number>((resolve) => driver.once('exit', (code) => resolve(code ?? 2)));
  } finally {
    await cleanUp();
  }
}

main().then((code) => process.exit(code), (error: unknown) => {
  console.error(error instanceof Error ? error.stack : error);
  process.exit(2);
});

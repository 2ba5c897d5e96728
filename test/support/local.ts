// Helpers for tests that run real nodes on this machine: free loopback ports and temporary
// directories removed when the test file ends.
import { after } from 'node:test';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Ports outside the kernel's ephemeral range (see src/testing/free-port.ts).
export { freePort, freePorts } from '../../src/testing/free-port.js';

const roots: string[] = [];

/** Directories that could not be removed after the tests: removed as the process exits. */
const leftovers: string[] = [];

// Registered when a test file imports this module, so it is a hook of the file, not of whichever test
// first asked for a directory (a hook added while a test runs is not run after the file's tests).
// Being registered first, it runs before the file's own `after` hooks, which may still be stopping
// nodes that write into these directories (rm then fails with ENOTEMPTY): a failure here must not
// throw, or those hooks never run, the nodes never stop and the test file never ends.
after(async () => {
  for (const root of roots.splice(0)) {
    try {
      await rm(root, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      leftovers.push(root);
    }
  }
});
process.once('exit', () => {
  for (const root of leftovers) {
    try {
      rmSync(root, { recursive: true, force: true });
    } catch {
      // Left in the OS temporary directory; nothing else depends on it.
    }
  }
});

/** A fresh temporary directory, deleted after the test file's tests. */
export async function tempRoot(prefix: string): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), `${prefix}-`));
  roots.push(root);
  return root;
}

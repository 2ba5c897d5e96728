// tsc writes the CLI entry without the executable bit; the package's bin (and `npx multipaxos` in a
// clone, whatever npm cached for that path before) needs it.
import { chmodSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

chmodSync(fileURLToPath(new globalThis.URL('../dist/src/cli/main.js', import.meta.url)), 0o755);

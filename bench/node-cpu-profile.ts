/**
 * `npm run bench -- kv --node-cpu-prof DIR`: a module preloaded into every process `cluster up`
 * starts (through NODE_OPTIONS=--import, since Node refuses --cpu-prof there). It profiles the
 * process from its start with the inspector and writes DIR/{role}-{pid}.cpuprofile when the
 * process exits (a node stopped by SIGTERM or by its parent going away exits cleanly), for
 * Chrome DevTools or any .cpuprofile reader.
 */
import { Session } from 'node:inspector';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The environment variable naming the directory the profiles go to. */
export const CPU_PROFILE_DIR_ENV = 'MULTIPAXOS_BENCH_CPU_PROF_DIR';

const dir = process.env[CPU_PROFILE_DIR_ENV];
if (dir !== undefined && dir !== '') {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.start');
  // `kv serve --id N` is node-N; anything else (cluster up itself) by its first argument.
  const idAt = process.argv.indexOf('--id');
  const role = idAt >= 0 ? `node-${process.argv[idAt + 1] ?? ''}` : (process.argv[2] ?? 'process');
  process.once('exit', () => {
    // The main thread's session answers synchronously, so the profile is written before exit.
    session.post('Profiler.stop', (error, result) => {
      if (error !== null) return;
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `${role}-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}

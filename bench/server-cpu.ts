/**
 * The CPU time a benchmarked server spends, for `npm run bench -- kv`'s CPU a put: the user and
 * system time of a process and of every process under it (`cluster up` and its nodes), read from
 * /proc. The figure depends less on other jobs sharing the machine than throughput does. Linux
 * only: elsewhere (or once the processes are gone) it is undefined.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** A target whose server processes can be charged with the CPU they used. */
export interface ServerCpu {
  /** Milliseconds of CPU the server's processes have used so far; undefined where that cannot be read. */
  serverCpuMs(): number | undefined;
}

/** /proc counts CPU time in clock ticks of USER_HZ, which Linux fixes at 100 a second for user space. */
const MS_PER_TICK = 10;

/** The CPU time of process `pid` and its descendants, in ms; undefined without /proc or once it has exited. */
export function processTreeCpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    let ticks = 0;
    for (const each of [pid, ...descendantsOf(pid)]) ticks += cpuTicksOf(each);
    return ticks * MS_PER_TICK;
  } catch {
    return undefined;
  }
}

function cpuTicksOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces: count fields after its end.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
  return Number(fields[11]) + Number(fields[12]);
}

function descendantsOf(pid: number): number[] {
  const found: number[] = [];
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    const children = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
    for (const child of children === '' ? [] : children.split(/\s+/).map(Number)) {
      found.push(child, ...descendantsOf(child));
    }
  }
  return found;
}

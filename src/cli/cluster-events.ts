/**
 * How `cluster up` tells of a node's death and restart: one line each, as text or, with --json,
 * as an event object (`exit`, `restart`, `gave-up`), in the style of its other events.
 */
import type { SupervisorEvent } from './node-supervisor.js';

export type Say = (event: string, fields: Record<string, unknown>, text: string) => void;

export function sayNodeEvent(say: Say, event: SupervisorEvent): void {
  if (event.kind === 'restart') {
    say('restart', { nodeId: event.nodeId, pid: event.pid, attempt: event.attempt },
      `node ${event.nodeId} restarted (pid ${event.pid ?? '?'})`);
    return;
  }
  const { kind: _kind, ...fields } = event;
  const head = `node ${event.nodeId} ${event.detail}`;
  switch (event.next) {
    case 'restart':
      say('exit', fields, `${head}; restarting it in ${seconds(event.restartInMs ?? 0)}`);
      return;
    case 'stopped':
      say('exit', fields, `${head}: it was asked to stop, so it stays stopped`);
      return;
    case 'none':
      say('exit', fields, head);
      return;
    case 'gave-up':
      say('exit', fields, head);
      say('gave-up', { nodeId: event.nodeId, startFailures: event.startFailures },
        `node ${event.nodeId} failed to start ${event.startFailures} times in a row; not restarting it ` +
        '(see its messages above; fix the cause, then run cluster up again)');
  }
}

function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))} s`;
}

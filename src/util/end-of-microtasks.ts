/**
 * Runs `callback` once every promise continuation queued so far, and every one those queue, has
 * run: still within the current turn, before I/O, timers and setImmediate. A tick queued from
 * inside the microtask queue runs only after that queue is drained, so a microtask that queues a
 * tick marks the end of the turn's microtasks.
 */
export function atEndOfMicrotasks(callback: () => void): void {
  queueMicrotask(() => process.nextTick(callback));
}

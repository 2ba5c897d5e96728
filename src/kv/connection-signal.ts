/**
 * One AbortSignal per client connection, aborted when the connection closes: what a key request
 * hands its waits (the proposal, the forward to the master) so that they stop when the client has
 * gone. A request on a keep-alive connection can only go away with its connection, so the signal
 * is shared by the connection's requests instead of being made for each (an AbortController and
 * its listener cost more than the rest of routing a request). Waiters remove their listeners when
 * they settle; pipelined requests may wait at once, so the signal takes many of them, but not
 * without bound: past MAX_WAITERS Node warns, the one alarm a listener left behind would raise
 * on a connection that lives for hours.
 */
import { setMaxListeners } from 'node:events';
import type { Socket } from 'node:net';

const signals = new WeakMap<Socket, AbortSignal>();
/** Listeners one connection's requests may hold at once before Node warns of a leak. */
export const MAX_WAITERS = 1000;

/** The signal of `socket`'s connection: aborted at once when it is closed already. */
export function connectionSignal(socket: Socket): AbortSignal {
  const known = signals.get(socket);
  if (known !== undefined) return known;
  const controller = new AbortController();
  setMaxListeners(MAX_WAITERS, controller.signal);
  if (socket.destroyed) controller.abort();
  else socket.once('close', () => controller.abort());
  signals.set(socket, controller.signal);
  return controller.signal;
}

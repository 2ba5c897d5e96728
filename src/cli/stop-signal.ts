/**
 * When a long-running command should stop: SIGINT, SIGTERM, or (when a parent started it with an
 * IPC channel) the parent going away. Waiting for it, the command then stops cleanly.
 */
export interface StopSignal {
  readonly requested: Promise<void>;
  /** Ask to stop from inside (a control message, say). */
  readonly request: () => void;
}

/** `unrefChannel`: the IPC channel only watches the parent and must not keep the process alive. */
export function stopSignal(options: { readonly unrefChannel: boolean }): StopSignal {
  let request: () => void = () => {};
  const requested = new Promise<void>((resolve) => { request = resolve; });
  process.once('SIGINT', () => request());
  process.once('SIGTERM', () => request());
  if (process.send !== undefined) {
    process.once('disconnect', () => request());
    if (!process.connected) request();
    if (options.unrefChannel) process.channel?.unref();
  }
  return { requested, request };
}

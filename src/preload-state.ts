/**
 * The state graceful-restart/register shares with the rest of the package,
 * kept on globalThis under one symbol so that it is the same object whichever
 * copy of a module reads it. A GracefulServer made by the application itself
 * sets apiInUse: the application then uses the API, and the register's hook
 * of net.Server#listen steps aside for good.
 */
export interface PreloadState {
  /** The hook of net.Server#listen is installed. */
  installed: boolean;
  /** The application made a GracefulServer of its own. */
  apiInUse: boolean;
  /** The register is making its own GracefulServer (which does not count as the application's). */
  creating: boolean;
  /** net.Server.prototype.listen as Node defines it, taken by the first copy of raw-listen.ts loaded. */
  rawListen?: unknown;
  /** fs.unlinkSync as Node defines it, taken likewise (the register guards the program's unlinks of its socket files). */
  rawUnlinkSync?: unknown;
}

const KEY = Symbol.for('graceful-restart.preload');

/** preloadState: the one PreloadState of this process. */
export function preloadState(): PreloadState {
  const g = globalThis as unknown as Record<symbol, PreloadState | undefined>;
  return (g[KEY] ??= { installed: false, apiInUse: false, creating: false });
}

/** noteGracefulServer: a GracefulServer is being made; one the register does not make is the application's. */
export function noteGracefulServer(): void {
  const state = preloadState();
  if (!state.creating) state.apiInUse = true;
}

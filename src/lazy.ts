/**
 * Modules loaded on first use, synchronously. A synchronous API (the
 * GracefulServer constructor) that needs a module it does not import
 * statically asks for it here by its path under src/; loadOnce requires it
 * (Node loads an ES module with require() since 20.19 and 22.12), and the
 * module, as it is evaluated, provides what it hands out under that path.
 * The path resolves from this module's directory: dist/src/ compiled, and
 * dist/bundle/ bundled, where scripts/bundle.js makes each such module an
 * entry at the same path. Where Node cannot require an ES module, the
 * package's main entry for that Node (the "default" condition of
 * package.json's exports, dist/bundle/index-eager.js) imports them at once,
 * so that they are provided before anything asks.
 */
import { createRequire } from 'node:module';
import { PartLoadFailedError } from './errors.js';

const requireHere = createRequire(import.meta.url);
const provided = new Map<string, unknown>();

/** provide records what the module at path (under src/, as `control/service-parts.js`) hands out; it calls this as it is evaluated. */
export function provide(path: string, parts: unknown): void {
  provided.set(path, parts);
}

/**
 * loadOnce returns what the module at path (under src/) provided, requiring
 * it first if nothing asked yet. It throws ERR_GRACEFUL_PART_LOAD_FAILED
 * (with the loader's error as `cause`) when the module cannot be loaded: on a
 * Node that cannot require an ES module (ERR_REQUIRE_ESM) the message says
 * which entry to import instead; a module missing, or loaded and providing
 * nothing, means the package's files are incomplete or from two builds.
 */
export function loadOnce<T>(path: string): T {
  if (!provided.has(path)) {
    try {
      requireHere(`./${path}`);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code === 'ERR_REQUIRE_ESM') {
        throw new PartLoadFailedError(`graceful-restart: this Node (${process.version}) cannot load ${path} where first used, as require() of an ES module needs ` +
          "Node 20.19 or 22.12: import the package by its name, 'graceful-restart', whose entry for this Node loads it at once", { cause: err });
      }
      const why = code === 'MODULE_NOT_FOUND' ? 'it, or a module it needs, is missing: the package\'s files are incomplete; reinstall it' : String((err as Error)?.message ?? err);
      throw new PartLoadFailedError(`graceful-restart: cannot load ${path} where first used: ${why}`, { cause: err });
    }
    if (!provided.has(path)) {
      throw new PartLoadFailedError(`graceful-restart: ${path} was loaded but provided nothing: the package's files are from two builds; reinstall it`);
    }
  }
  return provided.get(path) as T;
}

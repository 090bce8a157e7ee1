/**
 * Modules loaded on first use, synchronously. A synchronous API (the
 * GracefulServer constructor) that needs a module it does not import
 * statically requires it where first used: Node loads an ES module with
 * require() since 20.19 and 22.12. The module, as it is evaluated, provides
 * what it hands out here under its name. Where Node cannot require an ES
 * module, the package's main entry for that Node (the "default" condition of
 * package.json's exports, dist/bundle/index-eager.js) imports the module at
 * once, so that it is provided before anything uses it.
 */

const provided = new Map<string, unknown>();

/** provide records what the module named id hands out; the module calls it as it is evaluated. */
export function provide(id: string, parts: unknown): void {
  provided.set(id, parts);
}

/**
 * loadOnce returns what the module named id provided, running load (a
 * require() of that module, relative to the caller) first if it did not yet.
 * A Node that cannot require an ES module throws ERR_REQUIRE_ESM there: the
 * error then says which entry to import instead.
 */
export function loadOnce<T>(id: string, load: () => unknown): T {
  if (!provided.has(id)) {
    try {
      load();
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'ERR_REQUIRE_ESM') throw err;
      throw new Error(`graceful-restart: this Node (${process.version}) cannot load ${id} on first use (require() of an ES module needs Node 20.19 or 22.12): ` +
        "import the package by its name, 'graceful-restart', whose entry for this Node loads it at once", { cause: err });
    }
    if (!provided.has(id)) throw new Error(`graceful-restart: ${id} was loaded but provided nothing`);
  }
  return provided.get(id) as T;
}

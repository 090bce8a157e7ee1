#!/usr/bin/env node
// bundle: joins the compiled entry points (dist/src/index.js, handoff.js, register.js) into
// dist/bundle/, a few files instead of about a hundred modules, so that importing the package
// costs a fraction of what Node's module loader spends on many small files. The entries share
// their chunks, so `graceful-restart` and `graceful-restart/handoff` hand out the same classes;
// the register's service and the roles' rarely used parts stay in chunks loaded when needed.
// The parts a GracefulServer is built from (control/service-parts.js: the engine, the control
// socket of a service; workers/role-parts.js: the roles with workers) are entries of their own at
// the same paths as in dist/src/, which the facade require()s where first needed (src/lazy.ts); index-eager.js, the main
// entry for a Node that cannot require() an ES module (package.json's "default" condition, where
// "module-sync" is not known), imports them at once.
// Source maps go through to src/*.ts. Where esbuild is not installed (a checkout linked without
// its dev dependencies), a dist/bundle/ built before is used as it is.
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'dist/bundle');
let esbuild;
try {
  esbuild = createRequire(path.join(root, 'package.json'))('esbuild');
} catch {
  if (existsSync(path.join(out, 'index.js'))) {
    console.error(`graceful-restart: esbuild is not installed in ${root}: using the dist/bundle/ built there before`);
    process.exit(0);
  }
  console.error(`graceful-restart: esbuild is not installed in ${root}, so dist/bundle/ cannot be built: run \`npm ci\` in ${root} first`);
  process.exit(1);
}
rmSync(out, { recursive: true, force: true });
/** The modules loaded where first used (src/lazy.ts), each an entry at its path under dist/src/. */
const lazy = ['control/service-parts.js', 'workers/role-parts.js'];
// esbuild puts each module in a chunk by the set of entries that load it, so a module shared by
// the main entry and some others only gets a chunk of its own, one more file to load at import.
// A few imports first, on the first line of a module (so that the lines map as before), make the
// sets the same: each lazy module imports the main entry (it loads after it anyway: the facade asks
// for it), so that what they share stays in the main entry's chunks; the hand-off entry imports
// the two small core modules the main entry and the lazy ones share with it alone (the names
// processes agree on, and sd_notify), so that they join the chunks it shares with the main entry.
const firstImports = new Map([
  ...lazy.map((f) => [`dist/src/${f}`, ['dist/src/index.js']]),
  ['dist/src/handoff.js', ['dist/src/protocol.js', 'dist/src/systemd.js']],
].map(([file, imports]) => [path.join(root, file), imports.map((i) => `import ${JSON.stringify(path.join(root, i))};`).join(' ')]));
const alignChunks = {
  name: 'align-chunks',
  setup(build) {
    build.onLoad({ filter: /\.js$/ }, async (args) => (firstImports.has(args.path)
      ? { contents: `${firstImports.get(args.path)} ${await readFile(args.path, 'utf8')}`, loader: 'js' }
      : undefined));
  },
};
await esbuild.build({
  absWorkingDir: root,
  entryPoints: {
    index: 'dist/src/index.js',
    handoff: 'dist/src/handoff.js',
    register: 'dist/src/register.js',
    ...Object.fromEntries(lazy.map((f) => [f.replace(/\.js$/, ''), `dist/src/${f}`])),
  },
  plugins: [alignChunks],
  outdir: out,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  sourcemap: 'linked',
  chunkNames: 'chunk-[hash]',
  logLevel: 'warning',
});
// esbuild may leave a chunk with no code (the share of modules that hold only types) that other
// files import for nothing: each costs the loader a file at import. Such imports become empty
// lines (so that the source maps keep their lines) and the chunk goes.
const files = (dir) => readdirSync(path.join(out, dir), { withFileTypes: true })
  .flatMap((e) => (e.isDirectory() ? files(path.join(dir, e.name)) : [path.join(dir, e.name)]));
const outputs = files('').filter((f) => f.endsWith('.js'));
const texts = new Map(outputs.map((f) => [f, readFileSync(path.join(out, f), 'utf8')]));
const empty = outputs.filter((f) => texts.get(f).replace(/^\/\/# sourceMappingURL=.*$/m, '').trim() === '');
// Each other output, read and written once: imports of an empty chunk become empty lines (so that
// the source maps keep their lines), and a class that refers to itself, which esbuild writes as
// `var X = class _X` (named `_X` in stack traces and `constructor.name`), gets its own name back,
// after the code (the lines map as before). esbuild's keepNames would name every function too, at
// a cost to the import.
for (const f of outputs.filter((o) => !empty.includes(o))) {
  const file = path.join(out, f);
  const text = texts.get(f);
  let kept = text.split('\n').map((line) => {
    const m = /^import "(\.{1,2}\/[^"]+)";$/.exec(line);
    return m && empty.includes(path.relative(out, path.resolve(path.dirname(file), m[1]))) ? '' : line;
  }).join('\n');
  const renamed = [...kept.matchAll(/^var ([A-Za-z$][\w$]*) = class _\1\b/gm)].map((m) => m[1]);
  if (renamed.length > 0) {
    const names = renamed.map((n) => `Object.defineProperty(${n}, "name", { value: ${JSON.stringify(n)} });`).join(' ');
    kept = kept.replace(/(\/\/# sourceMappingURL=.*\n?)?$/, (map) => `${names}\n${map}`);
  }
  if (kept !== text) writeFileSync(file, kept);
}
for (const f of empty) for (const g of [f, `${f}.map`]) rmSync(path.join(out, g), { force: true });
writeFileSync(path.join(out, 'index-eager.js'), [
  '// The main entry for a Node that cannot require() an ES module (before 20.19 and 22.12): the parts',
  '// of a GracefulServer load at once, before the entry, instead of at its first construction.',
  ...lazy.map((f) => `import './${f}';`),
  "export * from './index.js';",
  '',
].join('\n'));

#!/usr/bin/env node
// bundle: joins the compiled entry points (dist/src/index.js, handoff.js, register.js) into
// dist/bundle/, a few files instead of about a hundred modules, so that importing the package
// costs a fraction of what Node's module loader spends on many small files. The entries share
// their chunks, so `graceful-restart` and `graceful-restart/handoff` hand out the same classes;
// the register's service and the roles' rarely used parts stay in chunks loaded when needed.
// The parts a GracefulServer is built from (control/service-parts.js: the engine, the roles,
// the control socket of a service) are an entry of their own at the same path as in dist/src/,
// which the facade require()s at its first construction (src/lazy.ts); index-eager.js, the main
// entry for a Node that cannot require() an ES module (package.json's "default" condition, where
// "module-sync" is not known), imports them at once.
// Source maps go through to src/*.ts. Where esbuild is not installed (a checkout linked without
// its dev dependencies), a dist/bundle/ built before is used as it is.
import { existsSync, rmSync, writeFileSync } from 'node:fs';
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
await esbuild.build({
  absWorkingDir: root,
  entryPoints: {
    index: 'dist/src/index.js',
    handoff: 'dist/src/handoff.js',
    register: 'dist/src/register.js',
    'control/service-parts': 'dist/src/control/service-parts.js',
  },
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
writeFileSync(path.join(out, 'index-eager.js'), [
  '// The main entry for a Node that cannot require() an ES module (before 20.19 and 22.12): the parts',
  '// of a GracefulServer load at once, before the entry, instead of at its first construction.',
  "import './control/service-parts.js';",
  "export * from './index.js';",
  '',
].join('\n'));

#!/usr/bin/env node
// bundle: joins the compiled entry points (dist/src/index.js, handoff.js, register.js) into
// dist/bundle/, a few files instead of about a hundred modules, so that importing the package
// costs a fraction of what Node's module loader spends on many small files. The entries share
// their chunks, so `graceful-restart` and `graceful-restart/handoff` hand out the same classes;
// the register's service and the roles' rarely used parts stay in chunks loaded when needed.
// Source maps go through to src/*.ts. Where esbuild is not installed (a checkout linked without
// its dev dependencies), a dist/bundle/ built before is used as it is.
import { existsSync, rmSync } from 'node:fs';
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
  entryPoints: ['dist/src/index.js', 'dist/src/handoff.js', 'dist/src/register.js'],
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

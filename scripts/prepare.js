#!/usr/bin/env node
// prepare: compiles the TypeScript into dist/ and bundles the entry points (dist/bundle/). npm runs it after `npm ci` in a checkout, for a git
// dependency (whose clone gets its dev dependencies) and before `npm pack`. A checkout linked with
// `npm install <path>` does not get its dev dependencies: there a dist/ built before is used as it
// is, and without one this says what to do instead of failing on a missing `tsc`.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'package.json'));

let tsc;
try {
  tsc = path.join(path.dirname(require.resolve('typescript/package.json')), 'bin/tsc');
} catch {
  tsc = undefined;
}

if (tsc) {
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.json')], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
  // The package's entry points are the bundle of what tsc compiled (scripts/bundle.js).
  const b = spawnSync(process.execPath, [path.join(root, 'scripts/bundle.js')], { stdio: 'inherit' });
  process.exit(b.status ?? 1);
} else if (existsSync(path.join(root, 'dist/src/index.js'))) {
  console.error(`graceful-restart: TypeScript is not installed in ${root}: using the dist/ built there before`);
} else {
  console.error(
    `graceful-restart: ${root} is a checkout without its dev dependencies, so its TypeScript cannot be compiled: ` +
      `run \`npm ci\` in ${root} first, or install the package from its tarball (\`npm pack\` there)`,
  );
  process.exit(1);
}

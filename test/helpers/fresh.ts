/**
 * Programs run in a fresh node process, for what a process loads or the
 * limits it runs under, without this process's state.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { root } from '../helpers.js';

/** distUrl: the file: URL of a compiled file under dist/, for a program run by inFresh to import. */
export function distUrl(file: string): string {
  return pathToFileURL(path.join(root, 'dist', file)).href;
}

/**
 * inFresh runs an ES module program in a new node, in the repository's root,
 * with env (this process's by default) and under a command that runs node
 * (as `prlimit --nofile=64`), and returns what it printed, as JSON, once it
 * exited 0 with nothing on stderr.
 */
export function inFresh(program: string, options: { env?: NodeJS.ProcessEnv; under?: string[] } = {}): unknown {
  const [command, ...args] = [...(options.under ?? []), process.execPath, '--input-type=module', '-e', program];
  const r = spawnSync(command!, args, { encoding: 'utf8', cwd: root, env: options.env ?? process.env });
  expect(r.stderr).to.equal('');
  expect(r.status).to.equal(0);
  return JSON.parse(r.stdout);
}

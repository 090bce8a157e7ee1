/**
 * An image's file system without an image: a private mount namespace where
 * /run is a fresh tmpfs (so nothing of this machine's /run is touched) and a
 * project is bind-mounted at /srv/app, as an image or a deployment lays it
 * out. With `pid`, the command is also PID 1 of a new pid namespace, as in a
 * container. The command line itself runs unchanged (sh execs it).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { fixtures } from '../helpers.js';
import { makeProject } from './project.js';

/** nsSkipReason: why namespaces cannot be used here (not root, unshare refused), or null. */
export async function nsSkipReason(pid: boolean): Promise<string | null> {
  if (process.getuid?.() !== 0) return 'not root: unshare needs CAP_SYS_ADMIN';
  if (!fs.existsSync('/srv')) return 'no /srv directory to mount the project over';
  const args = pid ? ['--pid', '--fork', '--mount-proc', 'true'] : ['--mount', 'true'];
  return new Promise((resolve) => execFile('unshare', args, { timeout: 10_000 }, (err) => resolve(err ? `unshare ${args.join(' ')} fails: ${err.message}` : null)));
}

/**
 * imageCommand: the unshare command line that runs argv in cwd, with
 * /srv/app being project and /run/app an empty directory (made by `mkdirs`,
 * the image's `RUN mkdir -p` or systemd's RuntimeDirectory).
 */
export function imageCommand(project: string, cwd: string, argv: string[], options: { pid: boolean; mkdirs: string[] }): [string, string[]] {
  const ns = options.pid ? ['--pid', '--fork', '--mount-proc'] : ['--mount', '--propagation', 'private'];
  const script = [
    'set -e',
    'mount -t tmpfs -o mode=0755 tmpfs /run',
    'mount -t tmpfs -o mode=0755 tmpfs /srv',
    'mkdir /srv/app',
    'mount --bind "$1" /srv/app',
    ...options.mkdirs.map((d) => `mkdir -p ${d}`),
    'cd "$2"',
    'shift 2',
    'exec "$@"',
  ].join('; ');
  return ['unshare', [...ns, 'sh', '-c', script, 'sh', project, cwd, ...argv]];
}

/** childOf: the one child of pid (unshare's forked PID 1), from /proc. */
export function childOf(pid: number): number | null {
  try {
    const list = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    return list.length ? Number(list[0]) : null;
  } catch {
    return null;
  }
}

/**
 * testAppProject: a project whose app.mjs is the tests' graceful server
 * (test/fixtures/app.ts: GET /slow?ms=N answers after N ms, "ready <pid> <port>
 * <generation>" on stdout), where a recipe runs `node app.mjs`.
 */
export async function testAppProject(): Promise<string> {
  const project = await makeProject({});
  fs.writeFileSync(path.join(project, 'app.mjs'), `import ${JSON.stringify(pathToFileURL(path.join(fixtures, 'app.js')).href)};\n`);
  return project;
}

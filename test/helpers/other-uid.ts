/**
 * Other-uid cases: tests that run a process as uid 65534 (nobody) through setuid, to see what the
 * kernel and the server refuse to another user. Such a process reaches only what every user can
 * reach, while the checkout may be anywhere (a `mktemp -d` directory is 0700, and so is root's
 * home) and TMPDIR too. So what it runs is copied into a directory every user can traverse
 * (otherUidCli), and the sockets it talks to live in one (otherUidDir).
 *
 * Each such case starts with otherUidCase(this): it skips, printing why, when the case cannot run
 * (not root, or no directory that every user can traverse); else it counts the case. At exit the
 * counts are printed ("other-uid cases: N ran, M skipped"), so a skip is never silent.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { root } from '../helpers.js';

/** The other uid (and gid) the cases run as: nobody. */
export const OTHER_UID = 65534;

const counts = { ran: 0, skipped: 0 };
const reasons = new Set<string>();
const made: string[] = [];
process.on('exit', () => {
  for (const d of made) fs.rmSync(d, { recursive: true, force: true });
  if (counts.ran + counts.skipped > 0) {
    process.stderr.write(`other-uid cases: ${counts.ran} ran, ${counts.skipped} skipped${reasons.size ? ` (${[...reasons].join('; ')})` : ''}\n`);
  }
});

/** otherUidCounts: how many other-uid cases ran and were skipped so far in this process. */
export function otherUidCounts(): { ran: number; skipped: number } {
  return { ...counts };
}

/** traversableByAll tells whether every user may search dir and each of its ancestors (o+x on each). */
export function traversableByAll(dir: string): boolean {
  let d = path.resolve(dir);
  for (;;) {
    let st: fs.Stats;
    try {
      st = fs.statSync(d);
    } catch {
      return false;
    }
    if (!st.isDirectory() || (st.mode & 0o001) === 0) return false;
    const up = path.dirname(d);
    if (up === d) return true;
    d = up;
  }
}

let base: string | null | undefined;
/** sharedBase: the first of TMPDIR, /tmp, /var/tmp and /dev/shm that every user can traverse, or null. */
function sharedBase(): string | null {
  if (base === undefined) base = [os.tmpdir(), '/tmp', '/var/tmp', '/dev/shm'].find((d) => traversableByAll(d)) ?? null;
  return base;
}

/** otherUidSkipReason: why an other-uid case cannot run here, or null when it can. */
export function otherUidSkipReason(): string | null {
  if (process.getuid?.() !== 0) return 'running a process as another uid needs root';
  if (sharedBase() === null) return `no directory every user can traverse among TMPDIR (${os.tmpdir()}), /tmp, /var/tmp and /dev/shm`;
  return null;
}

/**
 * otherUidCase: call first in a case that runs something as OTHER_UID. It skips the case, printing
 * the reason, when that cannot be done here; else it counts the case as run.
 */
export function otherUidCase(ctx: Mocha.Context): void {
  const reason = otherUidSkipReason();
  if (reason !== null) {
    counts.skipped++;
    reasons.add(reason);
    process.stderr.write(`  skipped (${ctx.test?.title ?? 'an other-uid case'}): ${reason}\n`);
    ctx.skip();
  }
  counts.ran++;
}

/** otherUidDir makes a directory (mode 0755) that OTHER_UID can reach, removed at exit. Only after otherUidCase. */
export function otherUidDir(): string {
  if (sharedBase() === null) throw new Error(otherUidSkipReason() ?? 'no shared directory');
  return sharedDir(0o755);
}

/**
 * sharedDir makes a directory of the given mode (0o755 by default) that OTHER_UID can reach when any
 * such place exists (else under TMPDIR: the other-uid cases skip there anyway), removed at exit.
 * For the sockets and files a test shares between its own processes and an other-uid one.
 */
export function sharedDir(mode = 0o755): string {
  const dir = fs.mkdtempSync(path.join(sharedBase() ?? os.tmpdir(), 'gr-'));
  fs.chmodSync(dir, mode);
  made.push(dir);
  return dir;
}

/** copyTree copies the files under from (recursively) whose names pass keep, world-readable. */
function copyTree(from: string, to: string, keep: (name: string) => boolean = () => true): void {
  fs.mkdirSync(to, { recursive: true, mode: 0o755 });
  for (const e of fs.readdirSync(from, { withFileTypes: true })) {
    const src = path.join(from, e.name);
    const dst = path.join(to, e.name);
    if (e.isDirectory()) copyTree(src, dst, keep);
    else if (e.isFile() && keep(e.name)) {
      fs.copyFileSync(src, dst);
      fs.chmodSync(dst, 0o644);
    }
  }
}

/** loadedAddon: the addon file this process mapped (GRACEFUL_ADDON_PATH's, or the package's own build). */
function loadedAddon(): string {
  const file = fs.readFileSync('/proc/self/maps', 'utf8').split('\n').map((l) => l.split(/\s+/)[5]).find((f) => f?.endsWith('.node'));
  if (!file) throw new Error('the addon is not loaded in this process');
  return file;
}

let cliCopy: string | undefined;
/**
 * otherUidCli: the path of a copy of the CLI (bin/graceful-restart.js) that OTHER_UID can load, with
 * what it imports: dist/src, package.json, commander, node-gyp-build, and the addon this process
 * loaded, at the place the package looks first (build/Release). Run it with env from otherUidEnv().
 * Made once per process, after otherUidCase.
 */
export function otherUidCli(): string {
  if (cliCopy !== undefined) return cliCopy;
  const dir = otherUidDir();
  fs.copyFileSync(path.join(root, 'package.json'), path.join(dir, 'package.json'));
  copyTree(path.join(root, 'bin'), path.join(dir, 'bin'));
  fs.chmodSync(path.join(dir, 'bin/graceful-restart.js'), 0o755);
  copyTree(path.join(root, 'dist/src'), path.join(dir, 'dist/src'), (n) => n.endsWith('.js'));
  for (const dep of ['commander', 'node-gyp-build']) copyTree(path.join(root, 'node_modules', dep), path.join(dir, 'node_modules', dep));
  fs.mkdirSync(path.join(dir, 'build/Release'), { recursive: true, mode: 0o755 });
  fs.copyFileSync(loadedAddon(), path.join(dir, 'build/Release/graceful_fdpass.node'));
  fs.chmodSync(path.join(dir, 'build/Release/graceful_fdpass.node'), 0o755);
  for (const d of ['build', 'node_modules', 'dist']) fs.chmodSync(path.join(dir, d), 0o755);
  cliCopy = path.join(dir, 'bin/graceful-restart.js');
  return cliCopy;
}

/** otherUidEnv: env for a process run as OTHER_UID: no addon override pointing into the checkout, a HOME it can reach. */
export function otherUidEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env, HOME: '/' };
  delete out.GRACEFUL_ADDON_PATH;
  return out;
}

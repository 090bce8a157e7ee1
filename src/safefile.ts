/**
 * Files in directories other users may write to (`/tmp`, `/var/tmp`, a
 * group-writable run directory): the rules the kernel applies with
 * `fs.protected_symlinks` and `fs.protected_regular`, enforced here because
 * many machines run with them off.
 *
 * - A directory that belongs to another user (not root, not us) is refused:
 *   its owner can replace anything in it.
 * - A directory others may write to is refused unless it is sticky.
 * - In a sticky shared directory a symbolic link is followed only when it
 *   belongs to us or to the directory's owner, and an existing file we open
 *   must belong to one of them; a new name is opened with `O_NOFOLLOW`, so a
 *   link planted between the check and the open fails instead of being followed.
 */
import fs from 'node:fs';
import nodePath from 'node:path';
import { builtin } from './node-builtins.js';
import { UnsafeDirectoryError, UnsafeFileError, isSystemError } from './errors.js';

const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_SYNC, O_NOFOLLOW } = fs.constants;

/** SharedDirectory: what checkDirectory found about the directory of a path. */
export interface SharedDirectory {
  dir: string;
  /** Others may create names in it (it is then sticky, or it was refused). */
  shared: boolean;
  /** uid of the directory's owner. */
  owner: number;
}

function myUid(): number {
  return process.getuid?.() ?? 0;
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/**
 * checkDirectory checks the directory that holds file (what is meant is the
 * thing the file is, e.g. 'the socket' or 'the pid file') and throws
 * UnsafeDirectoryError for one that belongs to another user or that others may
 * write to without the sticky bit. A missing directory is left to the caller's
 * own open or bind, which fails with ENOENT.
 */
export function checkDirectory(file: string, api: string, what = 'the file'): SharedDirectory | null {
  const dir = nodePath.dirname(nodePath.resolve(file));
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (err) {
    if (isSystemError(err, 'ENOENT') || isSystemError(err, 'ENOTDIR')) return null;
    throw err;
  }
  return directoryRules(dir, st, api, what);
}

/** directoryRules applies checkDirectory's rules to dir, whose stat is st. */
function directoryRules(dir: string, st: fs.Stats, api: string, what: string): SharedDirectory {
  const uid = myUid();
  if (st.uid !== uid && st.uid !== 0) {
    throw new UnsafeDirectoryError(
      `${api}: ${dir} belongs to uid ${st.uid}, who could replace ${what} at any time: ` +
        `use a directory that belongs to this user (uid ${uid}) or to root`,
    );
  }
  const shared = (st.mode & 0o022) !== 0;
  if (shared && (st.mode & 0o1000) === 0) {
    throw new UnsafeDirectoryError(
      `${api}: ${dir} is writable by other users (mode ${octal(st.mode)}) without the sticky bit, ` +
        `so anyone could replace ${what}: use a directory only this user can write (e.g. mode 0700), or set the sticky bit`,
    );
  }
  return { dir, shared, owner: st.uid };
}

/** The most links checkPath follows (and names it looks at again after a mkdir lost a race), as the kernel's 40. */
const MAX_HOPS = 40;

/**
 * checkPath checks every component of dir, from the root down, before
 * anything is made or written under it: each directory under checkDirectory's
 * rules, and each symbolic link under the symlink rule (in a directory others
 * can write to, a link is followed only when it belongs to us or to that
 * directory's owner). With mode, the missing directories are made one at a
 * time (mkdir(2) never follows a link planted at the name: it fails with
 * EEXIST, and the name is checked again). Returns false when dir is missing
 * and no mode was given. Throws UnsafeDirectoryError or UnsafeFileError, or
 * the errno of a component that is not a directory (ENOTDIR).
 */
export function checkPath(dir: string, api: string, what: string, mode?: number): boolean {
  const todo = nodePath.resolve(dir).split('/').filter((c) => c !== '');
  let at = '/';
  let parent = directoryRules(at, fs.statSync(at), api, what);
  let hops = 0;
  while (todo.length > 0) {
    const name = todo.shift()!;
    if (name === '.') continue;
    if (name === '..') {
      at = nodePath.dirname(at); // at is a real path: its parent is the one the kernel takes
      parent = directoryRules(at, fs.statSync(at), api, what);
      continue;
    }
    const next = nodePath.join(at, name);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(next);
    } catch (err) {
      if (!isSystemError(err, 'ENOENT')) throw err;
      if (mode === undefined) return false;
      try {
        fs.mkdirSync(next, mode);
      } catch (e) {
        if (!isSystemError(e, 'EEXIST') || ++hops > MAX_HOPS) throw e;
      }
      todo.unshift(name); // look at what is there now
      continue;
    }
    if (st.isSymbolicLink()) {
      if (parent.shared && !trusted(st.uid, parent)) throw plantedLink(next, st.uid, parent, api);
      if (++hops > MAX_HOPS) {
        throw Object.assign(new Error(`${api}: ELOOP: more than ${MAX_HOPS} symbolic links on the way to ${dir}`), { code: 'ELOOP', path: dir });
      }
      const target = fs.readlinkSync(next);
      todo.unshift(...target.split('/').filter((c) => c !== ''));
      if (target.startsWith('/')) {
        at = '/';
        parent = directoryRules(at, fs.statSync(at), api, what);
      }
      continue;
    }
    if (!st.isDirectory()) fs.statSync(nodePath.join(next, '.')); // throws ENOTDIR
    parent = directoryRules(next, st, api, what);
    at = next;
  }
  return true;
}

function trusted(uid: number, dir: SharedDirectory): boolean {
  return uid === myUid() || uid === dir.owner;
}

/**
 * checkFinal applies the symlink rule to the last component of file in a
 * shared directory and returns whether it must be opened with O_NOFOLLOW
 * (there is no link we may follow).
 */
function checkFinal(file: string, dir: SharedDirectory, api: string): boolean {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(file);
  } catch (err) {
    if (isSystemError(err, 'ENOENT')) return true;
    throw err;
  }
  if (st.isSymbolicLink()) {
    if (!trusted(st.uid, dir)) throw plantedLink(file, st.uid, dir, api);
    return false; // ours, in a sticky directory: nobody else can swap it
  }
  if (!trusted(st.uid, dir)) throw foreignFile(file, st.uid, dir, api);
  return true;
}

function plantedLink(file: string, uid: number | null, dir: SharedDirectory, api: string): Error {
  return new UnsafeFileError(
    `${api}: ${file} is a symbolic link${uid === null ? '' : ` of uid ${uid}`} in ${dir.dir}, a directory other users can write to: ` +
      'following it would write wherever its owner points it; remove it, or use a directory only this user can write',
  );
}

function foreignFile(file: string, uid: number, dir: SharedDirectory, api: string): Error {
  return new UnsafeFileError(
    `${api}: ${file} belongs to uid ${uid} in ${dir.dir}, a directory other users can write to: ` +
      'its owner could read or rewrite it; remove it, or use a directory only this user can write',
  );
}

/** openFlags turns fs flags ('a', 'w+', ...) into the open(2) flags they stand for. */
export function openFlags(flags: string | number): number {
  if (typeof flags === 'number') return flags;
  const table: Record<string, number> = {
    r: O_RDONLY,
    'r+': O_RDWR,
    rs: O_RDONLY | O_SYNC,
    'rs+': O_RDWR | O_SYNC,
    w: O_TRUNC | O_CREAT | O_WRONLY,
    wx: O_TRUNC | O_CREAT | O_WRONLY | O_EXCL,
    'w+': O_TRUNC | O_CREAT | O_RDWR,
    'wx+': O_TRUNC | O_CREAT | O_RDWR | O_EXCL,
    a: O_APPEND | O_CREAT | O_WRONLY,
    ax: O_APPEND | O_CREAT | O_WRONLY | O_EXCL,
    as: O_APPEND | O_CREAT | O_WRONLY | O_SYNC,
    'a+': O_APPEND | O_CREAT | O_RDWR,
    'ax+': O_APPEND | O_CREAT | O_RDWR | O_EXCL,
    'as+': O_APPEND | O_CREAT | O_RDWR | O_SYNC,
  };
  const f = table[flags];
  if (f === undefined) throw new TypeError(`Usage: openFile(path, flags, mode): unknown flags ${JSON.stringify(flags)}`);
  return f;
}

/**
 * openFile opens file like fs.openSync (close-on-exec, as libuv always opens),
 * after checkDirectory, and in a shared directory under the symlink and
 * foreign-file rules. The caller owns the descriptor it returns; on failure
 * nothing stays open.
 */
export function openFile(file: string, flags: string | number, mode: number, api: string): number {
  const dir = checkDirectory(file, api);
  let f = openFlags(flags);
  if (dir?.shared && checkFinal(file, dir, api)) f |= O_NOFOLLOW;
  let fd: number;
  try {
    fd = fs.openSync(file, f, mode);
  } catch (err) {
    if (dir?.shared && isSystemError(err, 'ELOOP')) throw plantedLink(file, null, dir, api);
    throw err;
  }
  if (dir?.shared) {
    // The name could have been replaced between the check and the open.
    let uid: number;
    try {
      uid = fs.fstatSync(fd).uid;
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    if (!trusted(uid, dir)) {
      fs.closeSync(fd);
      throw foreignFile(file, uid, dir, api);
    }
  }
  return fd;
}

/**
 * writeFileAtomic replaces file with data: a temporary file with a random
 * name in the same directory, created O_EXCL|O_NOFOLLOW (nothing planted at
 * that name is followed or reused), written, given mode, then renamed over
 * file (rename replaces a link, never follows it). Readers see the old content
 * or the new one, never a part. On failure the temporary file is removed.
 */
export function writeFileAtomic(file: string, data: string, mode: number, api: string): void {
  const dir = checkDirectory(file, api);
  if (dir?.shared) checkFinal(file, dir, api);
  const tmp = nodePath.join(nodePath.dirname(file), `.${nodePath.basename(file)}.${builtin('crypto').randomBytes(8).toString('hex')}.tmp`);
  const fd = fs.openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode & 0o7777);
  try {
    try {
      fs.fchmodSync(fd, mode & 0o7777); // exactly mode, whatever the umask
      fs.writeFileSync(fd, data);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (err) {
    removeFile(tmp);
    throw err;
  }
}

/**
 * removeFile removes file; one already gone is fine. (Not `fs.rmSync(file,
 * { force: true })`, which loads Node's recursive remover at its first use.)
 */
export function removeFile(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch (err) {
    if (!isSystemError(err, 'ENOENT')) throw err;
  }
}

/**
 * Socket files: length checks, stale-file removal that never touches what is
 * not a socket, removal at close only of the file this process bound, and
 * removal of a private directory made for them.
 */
import fs from 'node:fs';
import nodePath from 'node:path';
import { addon } from './native.js';
import { rawUnlinkSync } from './raw-listen.js';
import { NotASocketError, SocketInUseError, isSystemError, errorCode } from './errors.js';
import { checkDirectory as checkSharedDirectory } from './safefile.js';

/** The longest path the kernel takes in sockaddr_un (108 bytes with the NUL). */
export const MAX_SOCKET_PATH_BYTES = 107;

/** checkSocketPathLength throws ENAMETOOLONG, with the limit in the message, for a path the kernel would truncate. */
export function checkSocketPathLength(path: string, api: string): void {
  const bytes = Buffer.byteLength(path);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    const err = new Error(
      `${api}: the socket path is ${bytes} bytes long and the kernel allows ${MAX_SOCKET_PATH_BYTES}: ` +
        `use a shorter path, e.g. one relative to the working directory (${path})`,
    ) as Error & { code: string; syscall: string; path: string; errno: number };
    err.code = 'ENAMETOOLONG';
    err.errno = -36;
    err.syscall = 'bind';
    err.path = path;
    throw err;
  }
}

/**
 * clearStaleSocket makes path free for bind: nothing there is fine; a socket
 * nobody answers on is removed; a live socket throws SocketInUseError naming
 * the pid that listens; anything that is not a socket (a file, a directory, a
 * symlink) throws NotASocketError and is left alone.
 */
export function clearStaleSocket(path: string, api: string): void {
  checkSocketPathLength(path, api);
  if (path.startsWith('@')) return; // abstract namespace: no file
  checkDirectory(path, api);
  let st: fs.Stats;
  try {
    st = fs.lstatSync(path);
  } catch (err) {
    if (isSystemError(err, 'ENOENT')) return;
    throw err;
  }
  if (!st.isSocket()) {
    const what = st.isSymbolicLink() ? 'a symbolic link' : st.isDirectory() ? 'a directory' : 'not a socket';
    throw new NotASocketError(
      `${api}: ${path} is ${what}; refusing to replace it: remove it yourself or choose another path`,
    );
  }
  let fd: number;
  try {
    fd = addon.connect(path);
  } catch (err) {
    if (errorCode(err) === 'ECONNREFUSED') {
      const uid = process.getuid?.();
      if (uid !== undefined && uid !== 0 && st.uid !== uid) {
        throw new NotASocketError(`${api}: ${path} is a stale socket of uid ${st.uid}, not ours (uid ${uid}): remove it yourself or choose another path`);
      }
      rawUnlinkSync(path);
      return;
    }
    throw err;
  }
  let owner = 'another process';
  if (fd >= 0) {
    try {
      owner = `pid ${addon.peercred(fd).pid}`;
    } finally {
      addon.close(fd);
    }
  }
  throw new SocketInUseError(
    `${api}: ${path} is in use by ${owner}: stop that process or choose another path`,
  );
}

/**
 * checkDirectory refuses a directory that belongs to another user (not root),
 * or that other users may write to without the sticky bit: any of them could
 * swap our socket file for theirs. (/tmp, mode 1777, is fine: the sticky bit
 * keeps others off our files.)
 */
function checkDirectory(path: string, api: string): void {
  checkSharedDirectory(path, api, 'the socket');
}

/**
 * privateDirectory makes the private directory next to path that bindSocket
 * binds in. A directory that is missing, not a directory or not writable is
 * an error with the errno's code that names it (not the temporary name) and
 * says what to do.
 */
function privateDirectory(path: string, api: string): string {
  const dir = nodePath.dirname(nodePath.resolve(path));
  try {
    return fs.mkdtempSync(nodePath.join(nodePath.dirname(path), '.g'));
  } catch (err) {
    const code = errorCode(err);
    const todo = code === 'ENOENT' && !fs.existsSync(dir) ? `the directory ${dir} does not exist: create it (mkdir -p), or choose a path in one that does`
      : code === 'ENOENT' ? `${dir} takes no new files (a special file system such as /proc): choose another directory`
      : code === 'ENOTDIR' ? `${dir} is not a directory (a part of it is a file): choose another path`
      : code === 'EACCES' || code === 'EPERM' ? `uid ${process.getuid?.()} may not create files in ${dir}: choose a directory this user may write`
      : code === 'EROFS' ? `${dir} is on a read-only file system: choose a directory on a writable one`
      : null;
    if (todo === null) throw err;
    throw Object.assign(new Error(`${api}: ${code}: cannot bind ${path}: ${todo}`, { cause: err }), {
      code, errno: (err as { errno?: number }).errno, syscall: 'mkdtemp', path: dir,
    });
  }
}

/**
 * bindSocket binds and listens on a UNIX stream socket at path with mode,
 * without a lookup of path after bind: the socket is bound (and its mode set)
 * inside a new private directory (mode 0700) next to path, then renamed onto
 * path, so nobody can swap a link in between and have a chmod land elsewhere.
 * Call clearStaleSocket first. The caller owns the descriptor it returns; on
 * failure nothing stays open or on disk.
 */
export function bindSocket(path: string, mode: number, backlog: number, api: string): number {
  if (path.startsWith('@')) return addon.listen(path, mode, backlog);
  checkSocketPathLength(path, api);
  const priv = privateDirectory(path, api);
  const tmp = nodePath.join(priv, 's');
  try {
    checkSocketPathLength(tmp, `${api} (bound first at ${tmp}, then renamed)`);
    const fd = addon.listen(tmp, mode, backlog);
    try {
      fs.renameSync(tmp, path);
    } catch (err) {
      addon.close(fd);
      throw err;
    }
    return fd;
  } finally {
    removeSocketDir(priv, ['s']); // after the rename, nothing there
  }
}

/** SocketFile remembers which file this process bound, so close removes only that one. */
export class SocketFile {
  private readonly ino: number | undefined;

  constructor(readonly path: string) {
    this.ino = path.startsWith('@') ? undefined : fs.lstatSync(path).ino;
  }

  /** remove unlinks the file if it is still the one bound here. */
  remove(): void {
    if (this.ino === undefined) return;
    try {
      if (fs.lstatSync(this.path).ino === this.ino) rawUnlinkSync(this.path);
    } catch {
      // already gone: nothing to remove
    }
  }
}

/**
 * removeSocketDir removes a private directory this process made for socket
 * files (mkdtemp): each file named (none there is fine), then the directory.
 * Anything else left in it is removed with it, as `fs.rmSync(dir, { recursive:
 * true, force: true })` would; that walk (and the module Node loads for it on
 * its first use) is paid only then. A directory already gone is fine.
 */
export function removeSocketDir(dir: string, names: readonly string[]): void {
  try {
    for (const name of names) {
      try {
        rawUnlinkSync(nodePath.join(dir, name));
      } catch (err) {
        if (errorCode(err) !== 'ENOENT') throw err;
      }
    }
    fs.rmdirSync(dir);
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return;
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

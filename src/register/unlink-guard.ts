/**
 * The guard of the program's socket files. A program that listens on a UNIX
 * path often removes the file first (`fs.unlinkSync(path)` before `listen`)
 * or at exit. Under the register that is wrong twice over: a new version
 * would remove the file of the listening socket it is about to inherit (the
 * serving version is then reachable by no path), and an old version exiting
 * after a hand-over would remove the new one's. So, for the paths of the UNIX
 * listeners the register keeps (and, in a new version, those its predecessor
 * kept, named in GRACEFUL_REGISTER_PATHS), the program's fs.unlink, rm and
 * their sync and promise forms leave the file in place, and one line says so.
 * At a real halt (not a hand-over) the paths are released; the library
 * removes its own files with rawUnlinkSync (raw-listen.ts) in any case.
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The variable that names, to a new version, the socket paths its predecessor kept (a JSON array). */
export const PATHS_ENV = 'GRACEFUL_REGISTER_PATHS';

type Callback = (err: NodeJS.ErrnoException | null) => void;

export class UnlinkGuard {
  private readonly paths = new Set<string>();
  private readonly said = new Set<string>();

  constructor(private readonly say: (line: string) => void, env: NodeJS.ProcessEnv = process.env) {
    try {
      const inherited = JSON.parse(env[PATHS_ENV] ?? '[]') as unknown;
      if (Array.isArray(inherited)) for (const p of inherited) if (typeof p === 'string') this.paths.add(p);
    } catch {
      // not ours, or damaged: no path is kept
    }
  }

  /** keep guards path (absolute) from here on, and names it to the next version. */
  keep(where: string): void {
    this.paths.add(where);
    process.env[PATHS_ENV] = JSON.stringify([...this.paths]);
  }

  /** release: a real halt; the program may remove what it likes. */
  release(): void {
    this.paths.clear();
    delete process.env[PATHS_ENV];
  }

  /** kept: target is a guarded path (then said once). */
  kept(target: unknown): boolean {
    if (this.paths.size === 0) return false;
    let where: string;
    if (typeof target === 'string') where = target;
    else if (target instanceof URL) where = fileURLToPath(target);
    else if (Buffer.isBuffer(target)) where = target.toString();
    else return false;
    const abs = path.resolve(where);
    if (!this.paths.has(abs)) return false;
    if (!this.said.has(abs)) {
      this.said.add(abs);
      this.say(`pid ${process.pid}: kept ${abs}: it is the socket file of a listener kept across redeploys, which the program asked to remove `
        + '(a new version inherits the listening socket; the file goes at a real halt)');
    }
    return true;
  }

  /** install replaces fs's unlink and rm (callback, sync and promise forms) with ones that leave a kept path alone. */
  install(): void {
    const { unlink, unlinkSync, rm, rmSync } = fs;
    const { unlink: unlinkP, rm: rmP } = fs.promises;
    const kept = (p: unknown) => this.kept(p);
    fs.unlinkSync = ((p: fs.PathLike) => (kept(p) ? undefined : unlinkSync(p))) as typeof fs.unlinkSync;
    fs.rmSync = ((p: fs.PathLike, o?: fs.RmOptions) => (kept(p) ? undefined : rmSync(p, o))) as typeof fs.rmSync;
    fs.unlink = ((p: fs.PathLike, cb: Callback) => {
      if (!kept(p)) return unlink(p, cb);
      process.nextTick(cb, null);
    }) as typeof fs.unlink;
    fs.rm = ((p: fs.PathLike, o: fs.RmOptions | Callback, cb?: Callback) => {
      if (!kept(p)) return typeof o === 'function' ? rm(p, o) : rm(p, o, cb!);
      process.nextTick(typeof o === 'function' ? o : cb!, null);
    }) as typeof fs.rm;
    fs.promises.unlink = (async (p: fs.PathLike) => (kept(p) ? undefined : unlinkP(p))) as typeof fs.promises.unlink;
    fs.promises.rm = (async (p: fs.PathLike, o?: fs.RmOptions) => (kept(p) ? undefined : rmP(p, o))) as typeof fs.promises.rm;
    syncBuiltinESMExports();
  }
}

/**
 * The private socket pairs between the primary and one worker: its link
 * (worker-link.ts) and, in a starting generation, its go signal (go.ts).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { addon } from '../native.js';
import { OwnedFd } from '../owned-fd.js';
import { removeSocketDir } from '../socketpath.js';

/** The listener's name in the private directory. */
const PAIR_SOCKET = 'go.sock';

/**
 * socketPair: a connected pair of UNIX stream sockets (close-on-exec), made
 * through a listener in a private directory that is gone when this returns;
 * name labels both descriptors. The caller owns both ends; on failure
 * nothing stays open.
 */
export function socketPair(name: string): { read: OwnedFd; write: OwnedFd } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graceful-pair-'));
  let lfd: number;
  try {
    lfd = addon.listen(path.join(dir, PAIR_SOCKET), 0o600, 1);
  } catch (err) {
    removeSocketDir(dir, [PAIR_SOCKET]);
    throw err;
  }
  let read: number | undefined;
  try {
    read = addon.connect(path.join(dir, PAIR_SOCKET));
    const write = addon.accept(lfd);
    if (read < 0 || write < 0) throw new Error(`could not connect a socket pair for ${name}`);
    return { read: new OwnedFd(read, { name }), write: new OwnedFd(write, { name }) };
  } catch (err) {
    if (read !== undefined && read >= 0) addon.close(read);
    throw err;
  } finally {
    addon.close(lfd);
    removeSocketDir(dir, [PAIR_SOCKET]);
  }
}

/**
 * The private socket pairs between the primary and one worker: its link
 * (worker-link.ts) and, in a starting generation, its go signal (go.ts).
 */
import { addon } from '../native.js';
import { OwnedFd } from '../owned-fd.js';

/**
 * socketPair: a connected pair of UNIX stream sockets (socketpair(2),
 * non-blocking and close-on-exec); name labels both descriptors. The caller
 * owns both ends. Throws the kernel's errno (EMFILE, ENFILE) with nothing
 * left open.
 */
export function socketPair(name: string): { read: OwnedFd; write: OwnedFd } {
  const [read, write] = addon.socketpair();
  return { read: new OwnedFd(read, { name }), write: new OwnedFd(write, { name }) };
}

/**
 * The go signal of a starting generation of workers: each worker gets one
 * end of a socket pair (GO_NAME) and starts accepting only once the primary
 * wrote on it, which it does once every worker of the generation is ready;
 * EOF calls the start off. So a generation serves whole or not at all.
 */
import fs from 'node:fs';
import { addon } from '../native.js';
import type { OwnedFd } from '../owned-fd.js';
import { socketPair } from './socket-pair.js';

/**
 * GO_NAME: the descriptor a worker of a starting generation gets besides the
 * listeners: one end of a socket pair on which the primary writes one byte
 * once every worker of the generation is ready (then each starts
 * accepting), or which it closes to call the start off (then none accepted
 * anything). A worker restarted in its slot gets none and starts at once.
 */
export const GO_NAME = 'graceful:go';

/**
 * waitForGo resolves true once the primary wrote the go byte on fd, false at
 * EOF (the start was called off); fd is closed either way.
 */
export function waitForGo(fd: number): Promise<boolean> {
  return new Promise((resolve) => {
    const poller = new addon.Poller(fd, () => {
      poller.close();
      let n = 0;
      try {
        n = fs.readSync(fd, Buffer.alloc(1), 0, 1, null);
      } catch {
        n = 0;
      }
      addon.close(fd);
      resolve(n === 1);
    });
    poller.start(1);
  });
}

/**
 * GoSignal: the primary's side of the go signal of workers that start
 * together: one socket pair per worker, whose write ends it keeps.
 */
export class GoSignal {
  private readonly ends: OwnedFd[] = [];

  /** pair makes one worker's pair and returns the worker's end: the caller sends it (as GO_NAME) and then closes it. */
  pair(): OwnedFd {
    const p = socketPair(GO_NAME);
    this.ends.push(p.write);
    return p.read;
  }

  /** go writes the go byte to every worker (each starts accepting); it throws if a write fails. */
  go(): void {
    for (const end of this.ends) fs.writeSync(end.fd, 'g');
  }

  /** close closes the primary's ends: before go() that calls the start off (each worker reads EOF); after it, it only frees them. */
  close(): void {
    for (const end of this.ends) end.close();
  }
}

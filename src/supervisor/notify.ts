/**
 * NotifySocket: the receiving end of sd_notify(3), so that a supervisor can
 * stand in for systemd. Each datagram is `KEY=VALUE` lines; the kernel vouches
 * for the sender's pid and uid (SO_PASSCRED). The socket lives in a directory
 * only this user can enter; datagrams from another uid (root aside), or whose
 * sender the kernel did not vouch for, are dropped.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { debuglog } from 'node:util';
import { addon, POLL_READABLE, type DatagramSender, type PeerCredentials, type Poller } from '../native.js';
import { removeSocketDir } from '../socketpath.js';

const debug = debuglog('graceful');

/** The largest datagram read, as systemd's own NOTIFY_BUFFER_MAX. */
const MAX_DATAGRAM = 4096;
/** The socket's name in its private directory. */
const SOCKET_NAME = 'notify.sock';

/** NotifyMessage: one datagram, as fields in the order sent, and who sent it. */
export interface NotifyMessage {
  fields: Map<string, string>;
  sender: PeerCredentials;
}

/** parseNotify splits a datagram into its KEY=VALUE lines; a line without '=' is ignored, as systemd does. */
export function parseNotify(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) fields.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return fields;
}

/**
 * trustedSender: the credentials of a datagram's sender when they may be
 * trusted: the kernel vouched for them (SO_PASSCRED) and the uid is ownUid
 * or root. A sender without credentials is unknown, and refused: never taken
 * for uid 0.
 */
export function trustedSender(got: DatagramSender, ownUid: number): PeerCredentials | null {
  if (got.pid === null || got.uid === null || got.gid === null) return null;
  if (got.uid !== ownUid && got.uid !== 0) return null;
  return { pid: got.pid, uid: got.uid, gid: got.gid };
}

export class NotifySocket {
  readonly path: string;
  private readonly dir: string;
  private fd: number;
  private readonly poller: Poller;
  private readonly buffer = new Uint8Array(MAX_DATAGRAM);
  private readonly uid = process.getuid!();

  constructor(private readonly onMessage: (message: NotifyMessage) => void) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graceful-notify-')); // mode 0700
    this.path = path.join(this.dir, SOCKET_NAME);
    try {
      this.fd = addon.bindDatagram(this.path, 0o600);
    } catch (err) {
      removeSocketDir(this.dir, [SOCKET_NAME]);
      throw err;
    }
    this.poller = new addon.Poller(this.fd, (status) => {
      if (status < 0) debug('notify socket: poll error %d', status);
      else this.drain();
    });
    this.poller.start(POLL_READABLE);
    this.poller.unref();
  }

  /**
   * drain reads every datagram waiting, now: a supervisor calls it before it
   * acts on a process's exit, so a MAINPID= sent before that exit is seen first.
   */
  drain(): void {
    if (this.fd < 0) return;
    for (;;) {
      let got: ReturnType<typeof addon.recvDatagram>;
      try {
        got = addon.recvDatagram(this.fd, this.buffer);
      } catch (err) {
        debug('notify socket: %s', (err as Error).message);
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EMSGSIZE' || code === 'ERR_GRACEFUL_FDS_TRUNCATED') continue; // that one is dropped; read on
        return;
      }
      if (!got) return;
      const sender = trustedSender(got, this.uid);
      if (!sender) {
        debug('notify socket: dropped a datagram from %s', got.uid === null ? 'an unknown sender (no credentials)' : `uid ${got.uid} (pid ${got.pid})`);
        continue;
      }
      this.onMessage({ fields: parseNotify(Buffer.from(this.buffer.buffer, 0, got.length).toString('utf8')), sender });
    }
  }

  close(): void {
    if (this.fd < 0) return;
    this.poller.close();
    addon.close(this.fd);
    this.fd = -1;
    removeSocketDir(this.dir, [SOCKET_NAME]);
  }
}

/**
 * When an unmodified program counts as ready (--ready, GRACEFUL_READY):
 * - listen (the default): its listens are all done, and none followed for
 *   the settle time;
 * - message: it said process.send('ready') (PM2's wait_ready), and its
 *   listens are done;
 * - http:/path: its listens are done, then a GET of path answers 2xx. The
 *   request reaches the program's first server over a private UNIX socket
 *   (the connection is given to the server as Node gives it one it accepted),
 *   since a new instance accepts nothing on its listeners before it is ready.
 * A primary (with workers) serves nothing itself: it is ready once its
 * listens settled, and its ready() waits for its workers.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { rawListen } from '../raw-listen.js';
import { removeSocketDir } from '../socketpath.js';
import type { ReadyWhen } from './settings.js';

/** The ms between two probes of --ready http. */
const PROBE_INTERVAL = 100;
/** The probe's socket in its private directory. */
const PROBE_SOCKET = 'probe.sock';

export class Readiness {
  private pending = 0;
  private listened = false;
  private messaged = false;
  private fired = false;
  private timer: NodeJS.Timeout | null = null;
  private first: net.Server | null = null;

  constructor(
    private readonly when: ReadyWhen,
    private readonly settle: number,
    private readonly primary: boolean,
    private readonly become: () => void,
  ) {}

  /** listenStarted: a listen is under way; ready waits for it. */
  listenStarted(): void {
    this.pending++;
    this.clear();
  }

  /** listenEnded: a listen is done (server: the program's server, when it succeeded). */
  listenEnded(server?: net.Server): void {
    this.pending--;
    if (server) {
      this.listened = true;
      this.first ??= server;
    }
    this.consider();
  }

  /** message: the program said process.send('ready'). */
  message(): void {
    this.messaged = true;
    this.consider();
  }

  private clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private consider(): void {
    if (this.fired || this.pending > 0) return;
    const kind = this.primary ? 'listen' : this.when.kind;
    if (kind === 'message') {
      if (this.messaged) this.fire();
      return;
    }
    if (!this.listened) return;
    this.clear();
    this.timer = setTimeout(() => {
      this.timer = null;
      if (kind === 'listen') this.fire();
      else void this.probe((this.when as { path: string }).path);
    }, this.settle);
  }

  private fire(): void {
    if (this.fired) return;
    this.fired = true;
    this.become();
  }

  /** probe asks path of the first server until it answers 2xx (the redeploy's timeout bounds it). */
  private async probe(where: string): Promise<void> {
    const server = this.first!;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graceful-probe-'));
    const socketPath = path.join(dir, PROBE_SOCKET);
    const relay = net.createServer((c) => server.emit('connection', c));
    try {
      await new Promise<void>((resolve, reject) => {
        relay.once('error', reject);
        rawListen.call(relay, socketPath, () => resolve());
      });
      while (!this.fired && this.pending === 0) {
        if (await probeOnce(socketPath, where, server instanceof tls.Server)) {
          this.fire();
          break;
        }
        await new Promise((r) => setTimeout(r, PROBE_INTERVAL));
      }
    } finally {
      relay.close();
      removeSocketDir(dir, [PROBE_SOCKET]);
    }
  }
}

/** probeOnce: one GET of where through socketPath; true on 2xx. */
function probeOnce(socketPath: string, where: string, secure: boolean): Promise<boolean> {
  return new Promise((resolve) => {
    const options = { socketPath, path: where, headers: { host: 'localhost', connection: 'close' }, agent: false as const, timeout: 2_000 };
    const req = secure ? https.get({ ...options, rejectUnauthorized: false }) : http.get(options);
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

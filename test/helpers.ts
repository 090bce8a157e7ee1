/** Test helpers: real processes, real sockets, descriptor counting. */
import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { addon } from '../src/native.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The compiled fixtures directory (dist/test/fixtures). */
export const fixtures = path.join(here, 'fixtures');
/** The repository root. */
export const root = path.resolve(here, '../..');

/** freePort asks the kernel for a TCP port on 127.0.0.1 that nothing listens on (now: someone may take it before the caller binds). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** openFds lists the descriptors open in a process (this one by default). */
export function openFds(pid: number | 'self' = 'self'): number[] {
  return fs.readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b);
}

/** fdCount counts this process's open descriptors. */
export function fdCount(): number {
  return openFds().length;
}

/** fdFlags reads the `flags:` line of /proc/self/fdinfo/<fd> (octal). */
export function fdFlags(fd: number): number {
  const info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  const m = /flags:\s+([0-7]+)/.exec(info);
  if (!m) throw new Error(`no flags for fd ${fd}`);
  return parseInt(m[1]!, 8);
}
export const O_CLOEXEC = 0o2000000;
export const O_NONBLOCK = 0o4000;

/** tmpDir makes a short private directory (socket paths must stay under 108 bytes) and removes it after the suite. */
export function tmpDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gr-'));
  dirs.push(dir);
  return dir;
}
const dirs: string[] = [];
process.on('exit', () => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** Child: a spawned process with its output as lines. */
export interface Child {
  proc: ChildProcess;
  pid: number;
  /** next resolves with the next stdout line matching re (all of them by default). */
  next(re?: RegExp, timeoutMs?: number): Promise<string>;
  stdout: string[];
  stderr: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** spawnChild starts a command and collects its output. */
export function spawnChild(command: string, args: string[], options: SpawnOptions = {}): Child {
  const proc = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  children.add(proc);
  const stdout: string[] = [];
  const stderr: string[] = [];
  let waiting: { re: RegExp; from: number; resolve(l: string): void } | null = null;
  let seen = 0;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    // 'close': the process exited and its stdio pipes are closed (they count as descriptors here).
    proc.on('close', (code, signal) => {
      children.delete(proc);
      resolve({ code, signal });
    });
  });
  // stdout may be shared with processes this one spawns: it ends when all of them closed it.
  const stdoutClosed = new Promise<void>((resolve) => proc.stdout!.once('close', resolve));
  readline.createInterface({ input: proc.stdout! }).on('line', (line) => {
    stdout.push(line);
    if (waiting && waiting.re.test(line)) {
      const w = waiting;
      waiting = null;
      seen = stdout.length;
      w.resolve(line);
    }
  });
  readline.createInterface({ input: proc.stderr! }).on('line', (line) => stderr.push(line));
  return {
    proc,
    pid: proc.pid!,
    stdout,
    stderr,
    exited,
    kill: (signal = 'SIGTERM') => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    },
    next(re = /.*/, timeoutMs = 20_000) {
      for (let i = seen; i < stdout.length; i++) {
        if (re.test(stdout[i]!)) {
          seen = i + 1;
          return Promise.resolve(stdout[i]!);
        }
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting = null;
          reject(new Error(`no line matching ${re} within ${timeoutMs} ms; stdout: ${stdout.join(' | ')}; stderr: ${stderr.join(' | ')}`));
        }, timeoutMs);
        void stdoutClosed.then(() => {
          if (waiting) {
            clearTimeout(timer);
            waiting = null;
            reject(new Error(`stdout closed before a line matching ${re}; stdout: ${stdout.join(' | ')}; stderr: ${stderr.join(' | ')}`));
          }
        });
        waiting = { re, from: seen, resolve: (l) => { clearTimeout(timer); resolve(l); } };
      });
    },
  };
}

/** spawnFixture runs dist/test/fixtures/<name>.js with Node. */
export function spawnFixture(name: string, args: string[] = [], options: SpawnOptions = {}): Child {
  return spawnChild(process.execPath, [path.join(fixtures, `${name}.js`), ...args], options);
}

/** cli runs the graceful-restart command line (bin/graceful-restart.js) and collects what it said. */
export function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(root, 'bin/graceful-restart.js'), ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** AppOptions: how spawnApp starts the app fixture. */
export interface AppOptions {
  /** Its control socket (APP_SOCKET). */
  sock: string;
  /** The file that, when it exists, says how a new instance fails (APP_FAIL_FILE). */
  failFile: string;
  /** More variables (APP_UPGRADE_TIMEOUT is 5000 unless given). */
  env?: Record<string, string>;
  /** Another command line than `node dist/test/fixtures/app.js`, and its working directory. */
  command?: string[];
  cwd?: string;
  detached?: boolean;
}

/**
 * spawnApp starts the app fixture (test/fixtures/app.ts) with a control
 * socket; appReady(child) resolves with the first instance's pid and port.
 * Two steps, so that the caller holds the child (to end it) before it waits.
 */
export function spawnApp(options: AppOptions): Child {
  const env = { ...process.env, APP_SOCKET: options.sock, APP_FAIL_FILE: options.failFile, APP_UPGRADE_TIMEOUT: '5000', ...options.env };
  const spawnOptions: SpawnOptions = { env, cwd: options.cwd, detached: options.detached };
  const [command, ...args] = options.command ?? [];
  return command ? spawnChild(command, args, spawnOptions) : spawnFixture('app', [], spawnOptions);
}

/** appReady: the pid and port of the app fixture's "ready <pid> <port> <generation>" line. */
export async function appReady(child: Child): Promise<{ pid: number; port: number }> {
  const [, pid, port] = (await child.next(/^ready /)).split(' ');
  return { pid: Number(pid), port: Number(port) };
}

/** Notification: one sd_notify datagram, with the pid the kernel says sent it (SO_PASSCRED). */
export interface Notification {
  pid: number | null;
  msg: string;
}

/** NotifyReader: a NOTIFY_SOCKET of the test's own, and what arrived on it. */
export interface NotifyReader {
  /** The socket's path, for NOTIFY_SOCKET. */
  path: string;
  /** The reader process (end it with the test's other children). */
  child: Child;
  /** notes: every notification so far, in order. */
  notes(): Notification[];
  /** next: the next notification not yet taken, its lines joined by ";". */
  next(): Promise<string>;
  /** saw resolves with 1 + the index of the first notification from index `from` on whose message matches re. */
  saw(re: RegExp, from: number): Promise<number>;
}

/**
 * notifyReader binds an AF_UNIX datagram socket in dir (a Python reader: the
 * kernel's SCM_CREDENTIALS say who sent each datagram) and resolves once it
 * is bound.
 */
export async function notifyReader(dir: string): Promise<NotifyReader> {
  const sock = path.join(dir, 'notify.sock');
  const child = spawnChild('python3', ['-u', '-c', [
    'import json, socket, struct',
    's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
    's.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)',
    `s.bind(${JSON.stringify(sock)})`,
    'print("bound", flush=True)',
    'while True:',
    '    msg, anc, _, _ = s.recvmsg(4096, 1024)',
    '    pid = [struct.unpack("iii", d[:12])[0] for l, k, d in anc if l == socket.SOL_SOCKET and k == socket.SCM_CREDENTIALS]',
    '    print(json.dumps({"pid": pid[0] if pid else None, "msg": msg.decode()}), flush=True)',
  ].join('\n')]);
  await child.next(/^bound$/);
  const notes = () => child.stdout.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Notification);
  return {
    path: sock,
    child,
    notes,
    next: async () => (JSON.parse(await child.next(/^\{/)) as Notification).msg.replace(/\n/g, ';'),
    saw: (re, from) => until(() => notes().findIndex((n, i) => i >= from && re.test(n.msg)) + 1, 15_000, `a notification ${re}`),
  };
}

/**
 * httpGet makes one request on a fresh connection (no agent, so nothing stays
 * open) and returns status and body; an error is a failure, never retried.
 */
export function httpGet(target: { port?: number; socketPath?: string; path?: string; headers?: http.OutgoingHttpHeaders }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', agent: false, path: '/', ...target }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
  });
}

/** until polls fn until it returns a truthy value, or throws after timeoutMs. */
export async function until<T>(fn: () => T | Promise<T>, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * endGenerations SIGKILLs every instance a spawned server announced on its
 * stdout (lines matching re, the pid in the first group) and waits for the
 * first one's pipes to close: the instances this test started, by pid.
 */
export async function endGenerations(child: Child | undefined, re = /^ready (\d+)/): Promise<void> {
  if (!child) return;
  for (const line of child.stdout) {
    const m = re.exec(line);
    if (!m) continue;
    try {
      process.kill(Number(m[1]), 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await child.exited;
}

/** gone: the process no longer runs (missing, or a zombie nobody reaped yet). */
export function gone(pid: number): boolean {
  try {
    return /^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return true;
  }
}

/** socketPair makes a connected pair of addon-owned sockets in dir: [client, server side]. */
export async function socketPair(dir: string): Promise<[number, number]> {
  const sock = path.join(dir, `p${Math.random().toString(36).slice(2, 8)}.sock`);
  const lfd = addon.listen(sock, 0o600, 4);
  try {
    const c = addon.connect(sock);
    const s = await until(() => {
      const fd = addon.accept(lfd);
      return fd >= 0 ? fd : 0;
    });
    return [c, s];
  } finally {
    addon.close(lfd);
    fs.rmSync(sock);
  }
}

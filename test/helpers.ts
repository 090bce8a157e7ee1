/** Test helpers: real processes, real sockets, descriptor counting. */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
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

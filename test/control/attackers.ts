/**
 * Attackers and probes for the control-plane tests: a Python client that can
 * run as another uid, the CLI, a raw connection as `nc -U` opens, a status
 * probe, and the RSS of a process.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ControlClient } from '../../src/control/client.js';
import { root, spawnChild } from '../helpers.js';

const cli = path.join(root, 'bin/graceful-restart.js');
export { OTHER_UID } from '../helpers/other-uid.js';

/**
 * ATTACKER: a Python client that runs as uid argv[4] (0: stays root) and
 * connects n times to argv[2]. rst: sends a line, waits until the answer is
 * there and closes without reading it (the kernel resets the connection);
 * cycle: sends a JSON line, reads to EOF, closes. Prints a JSON count of
 * the answers seen.
 */
export const ATTACKER = `
import json, os, select, socket, sys
mode, path, n, uid = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if uid:
    os.setgid(uid); os.setuid(uid)
seen = {}
for i in range(n):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    if mode == 'rst':
        s.sendall(b'status\\n')
        select.select([s], [], [], 2)
        s.close()
        continue
    s.sendall(b'{"cmd":"status"}\\n')
    data = b''
    s.settimeout(5)
    while True:
        c = s.recv(65536)
        if not c:
            break
        data += c
    s.close()
    k = data.decode(errors='replace').strip()
    seen[k] = seen.get(k, 0) + 1
print(json.dumps(seen), flush=True)
`;

/** attack runs ATTACKER and resolves with the answers it counted. */
export async function attack(mode: 'rst' | 'cycle', sock: string, n: number, uid: number): Promise<Record<string, number>> {
  const py = spawnChild('python3', ['-c', ATTACKER, mode, sock, String(n), String(uid)], { cwd: '/' }); // a cwd every uid can search
  const { code } = await py.exited;
  expect(code, py.stderr.join('\n')).to.equal(0);
  return JSON.parse(py.stdout[0] ?? '{}') as Record<string, number>;
}

/** rss reads the resident set size of pid, in bytes. */
export function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

/** graceful runs the CLI and resolves with its exit code and output. */
export function graceful(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** connectRaw opens a plain connection (as `nc -U` does) that collects lines and knows when it closed. */
export function connectRaw(p: string): Promise<{ socket: net.Socket; lines: string[]; closed: () => boolean }> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(p);
    const lines: string[] = [];
    let buf = '';
    let closed = false;
    socket.setEncoding('utf8');
    socket.on('data', (c: string) => {
      buf += c;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
    socket.on('close', () => (closed = true));
    socket.once('connect', () => {
      socket.on('error', () => undefined);
      resolve({ socket, lines, closed: () => closed });
    });
    socket.once('error', reject);
  });
}

/** probe asks status through ControlClient and returns the pid that answered. */
export async function probe(sock: string): Promise<number> {
  const c = await ControlClient.connect(sock, 5_000);
  try {
    return ((await c.request('status', [], undefined, 5_000)) as { pid: number }).pid;
  } finally {
    c.close();
  }
}


/**
 * wrk for a fixed time, read from its --latency output: requests per second,
 * requests, failed requests (socket errors of every kind and non-2xx/3xx
 * answers) and the 99th percentile latency in ms. keepAlive false sends
 * `Connection: close` (a new connection per request). wrk must be installed.
 */
import { execFile } from 'node:child_process';

export function wrk(port: number, seconds: number, connections: number, keepAlive: boolean): Promise<{ rps: number; errors: number; requests: number; p99ms: number }> {
  const args = ['-t2', `-c${connections}`, `-d${seconds}s`, '--latency', ...(keepAlive ? [] : ['-H', 'Connection: close']), `http://127.0.0.1:${port}/`];
  return new Promise((resolve, reject) => {
    execFile('wrk', args, (err, stdout) => {
      if (err) return reject(err);
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? 0);
      const m = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
      const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
      const requests = Number(/(\d+) requests in/.exec(stdout)?.[1] ?? 0);
      const p = /99%\s+([\d.]+)(us|ms|s)\b/.exec(stdout);
      const p99ms = p ? Number(p[1]) * (p[2] === 'us' ? 0.001 : p[2] === 's' ? 1000 : 1) : NaN;
      resolve({ rps, requests, p99ms: Math.round(p99ms * 100) / 100, errors: (m ? m.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + non2xx });
    });
  });
}


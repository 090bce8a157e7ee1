/**
 * The listener probes of `graceful-restart health --probe-listeners` (after
 * the Diarkis SDK's health check): the control socket answering is not
 * enough; each listener a client uses must accept a connection and, with
 * --http-path, answer that path with a 2xx. The listeners come from the
 * `stats` command.
 */
import net from 'node:net';
import { builtin } from './node-builtins.js';

/** HealthArgs: the words after `health`. */
export interface HealthArgs {
  socket: string;
  probeListeners: boolean;
  httpPath?: string;
}

/** A listener as the stats command reports it. */
export interface ProbedListener {
  name: string;
  protocol: string;
  open: boolean;
  family: string;
  host?: string | null;
  port?: number;
  path?: string;
}

export const HEALTH_USAGE = 'usage: graceful-restart health [--probe-listeners] [--http-path </path>] <socket>';

/** parseHealthArgs reads `health`'s words; a string is the usage error to print (exit 2). */
export function parseHealthArgs(words: readonly string[]): HealthArgs | string {
  let socket: string | undefined;
  let probeListeners = false;
  let httpPath: string | undefined;
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w === '--probe-listeners') probeListeners = true;
    else if (w === '--http-path' || w.startsWith('--http-path=')) {
      const v = w === '--http-path' ? words[++i] : w.slice('--http-path='.length);
      if (v === undefined || !/^\/[\x21-\x7e]{0,2047}$/.test(v)) {
        return `error: --http-path must be a path that starts with / (printable ASCII, no spaces, up to 2048 bytes), got ${JSON.stringify(v ?? '')}\n${HEALTH_USAGE}`;
      }
      httpPath = v;
      probeListeners = true; // asking a path means probing
    } else if (w.startsWith('-')) return `error: health: unknown option ${w}\n${HEALTH_USAGE}`;
    else if (socket === undefined) socket = w;
    else return `error: health takes one socket, got ${JSON.stringify(words.filter((x) => !x.startsWith('-')).join(' '))}\n${HEALTH_USAGE}`;
  }
  if (socket === undefined) return `error: "health" needs a control socket: graceful-restart health <socket>\n${HEALTH_USAGE}`;
  return { socket, probeListeners, httpPath };
}

/** target: where a client reaches the listener (a wildcard address is reached on loopback). */
function target(l: ProbedListener): { path: string } | { host: string; port: number } {
  if (l.family === 'unix') return { path: String(l.path) };
  let host = l.host ?? '127.0.0.1';
  if (host === '0.0.0.0' || host === '') host = '127.0.0.1';
  if (host === '::') host = '::1';
  return { host, port: Number(l.port) };
}

function where(l: ProbedListener): string {
  const t = target(l);
  return 'path' in t ? t.path : `${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}`;
}

/** connectOnce opens a connection and closes it. */
function connectOnce(l: ProbedListener, timeout: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(target(l) as net.NetConnectOpts);
    socket.setTimeout(timeout, () => socket.destroy(Object.assign(new Error(`no connection within ${timeout} ms`), { code: 'ETIMEDOUT' })));
    socket.once('connect', () => {
      socket.destroy();
      resolve();
    });
    socket.once('error', reject);
  });
}

/** httpStatus asks path of an HTTP/1 or HTTP/2 listener and resolves with the status code. */
function httpStatus(l: ProbedListener, path: string, timeout: number): Promise<number> {
  const t = target(l);
  if (l.protocol === 'h2c' || l.protocol === 'h2') {
    return new Promise((resolve, reject) => {
      const authority = `${l.protocol === 'h2' ? 'https' : 'http'}://${'path' in t ? 'localhost' : where(l)}`;
      const session = builtin('http2').connect(authority, {
        ...('path' in t ? { createConnection: () => net.connect(t.path) } : {}),
        rejectUnauthorized: false, // a probe asks whether it answers, not who it is
      });
      session.on('error', reject);
      session.setTimeout(timeout, () => session.destroy(Object.assign(new Error(`no answer within ${timeout} ms`), { code: 'ETIMEDOUT' })));
      const req = session.request({ ':path': path });
      req.on('response', (headers) => {
        resolve(Number(headers[':status']));
        session.close();
      });
      req.on('error', reject);
      req.resume();
      req.end();
    });
  }
  return new Promise((resolve, reject) => {
    const options = { ...('path' in t ? { socketPath: t.path } : { host: t.host, port: t.port }), path, timeout, agent: false,
      headers: { connection: 'close' }, rejectUnauthorized: false };
    const req = builtin(l.protocol === 'https' ? 'https' : 'http').get(options, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${timeout} ms`), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
  });
}

/**
 * probeListeners probes every open listener: a connection, and with
 * httpPath a GET of it on the HTTP ones (2xx). Resolves with one line per
 * listener, and whether all passed.
 */
export async function probeListeners(listeners: readonly ProbedListener[], options: { httpPath?: string; timeout: number }):
Promise<{ ok: boolean; lines: string[] }> {
  const timeout = Math.min(options.timeout, 10_000);
  const lines: string[] = [];
  let ok = true;
  for (const l of listeners) {
    const name = `listener ${l.name} (${l.protocol} ${where(l)})`;
    if (!l.open) {
      ok = false;
      lines.push(`unhealthy: ${name} is closed`);
      continue;
    }
    const isHttp = ['http', 'https', 'h2c', 'h2'].includes(l.protocol);
    try {
      if (options.httpPath !== undefined && isHttp) {
        const status = await httpStatus(l, options.httpPath, timeout);
        if (status < 200 || status > 299) {
          ok = false;
          lines.push(`unhealthy: ${name} answered ${status} to GET ${options.httpPath}`);
        } else lines.push(`healthy: ${name} answered ${status} to GET ${options.httpPath}`);
      } else {
        await connectOnce(l, timeout);
        lines.push(`healthy: ${name} accepts connections`);
      }
    } catch (err) {
      ok = false;
      const e = err as NodeJS.ErrnoException;
      lines.push(`unhealthy: ${name} does not answer: ${e.code ?? 'ERROR'}: ${e.message}`);
    }
  }
  if (listeners.length === 0) lines.push('healthy: no listener to probe');
  return { ok, lines };
}

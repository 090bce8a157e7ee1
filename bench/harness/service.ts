/**
 * The hello-world services the workers benchmarks compare, started as a
 * child of the caller: 'graceful' and 'reload' run bench/harness/hello-graceful.ts
 * (the package as users import it) under `graceful-restart run` (the
 * subreaper that reaps every generation, so each new primary stays below the
 * caller), 'cluster' runs hello-cluster.ts (node:cluster alone). redeploy()
 * asks what each offers: a control request `redeploy` (a new primary and its
 * workers) or `reload` (new workers, the primary stays), or SIGHUP for
 * node:cluster's rolling restart; each resolves once it is done. The trigger
 * comes from the caller's process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ControlClient } from '../../src/control/client.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../..');

export type Kind = 'graceful' | 'reload' | 'cluster';

export interface Service {
  child: ChildProcess;
  lines: string[];
  /** The port, once every worker serves. */
  ready: Promise<number>;
  redeploy(): Promise<void>;
  /** stop: SIGTERM to the service, resolved once it exited. */
  stop(): Promise<void>;
}

export function startService(kind: Kind, workers: number, sock: string): Service {
  const serve = [path.join(here, `hello-${kind === 'reload' ? 'graceful' : kind}.js`), String(workers)];
  const child = kind !== 'cluster'
    ? spawn(process.execPath, [path.join(root, 'bin/graceful-restart.js'), 'run', '--no-register', '--', process.execPath, ...serve], { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, BENCH_SOCKET: sock } })
    : spawn(process.execPath, serve, { stdio: ['ignore', 'pipe', 'ignore'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const lines: string[] = [];
  const waiting: { re: RegExp; count: number; resolve(): void }[] = [];
  readline.createInterface({ input: child.stdout! }).on('line', (l) => {
    lines.push(l);
    for (const w of waiting.splice(0)) {
      if (lines.filter((x) => w.re.test(x)).length >= w.count) w.resolve();
      else waiting.push(w);
    }
  });
  const seen = (re: RegExp, count: number) => new Promise<void>((resolve) => {
    if (lines.filter((x) => re.test(x)).length >= count) resolve();
    else waiting.push({ re, count, resolve });
  });
  const ready = Promise.race([
    seen(/^ready /, 1).then(() => Number(lines.find((l) => l.startsWith('ready '))!.split(' ')[1])),
    exited.then(() => Promise.reject(new Error(`the ${kind} service exited before it was ready`))),
  ]);
  return {
    child,
    lines,
    ready,
    redeploy: kind !== 'cluster'
      ? async () => {
        const c = await ControlClient.connect(sock, 5_000);
        try {
          await c.request(kind === 'reload' ? 'reload' : 'redeploy', [], undefined, 60_000);
        } finally {
          c.close();
        }
      }
      : async () => {
        const before = lines.filter((l) => l === 'restarted').length;
        process.kill(child.pid!, 'SIGHUP');
        await seen(/^restarted$/, before + 1);
      },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

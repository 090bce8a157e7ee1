/**
 * Shared pieces of the fd-passing benchmark: the meta every descriptor
 * carries (the C program gets the same bytes on its command line), the
 * connect-with-retry the connecting side uses, the percentile rule both
 * implementations apply, and the JSON line each peer prints.
 */
import fs from 'node:fs';
import { errorCode } from '../src/errors.js';
import { HandoffConnection } from '../src/handoff.js';

/** The meta of every descriptor: 32 bytes of JSON, as in a small hand-off. */
export const META = { name: 'http', addr: '[::]:80' };
export const META_JSON = JSON.stringify(META);

/** openNull opens /dev/null: the descriptor the benchmark passes around. */
export function openNull(): number {
  return fs.openSync('/dev/null', 'r');
}

/** connect connects to path, retrying for 10 s while nobody listens there yet. */
export function connect(path: string): Promise<HandoffConnection> {
  return whenListening(path, () => HandoffConnection.connect(path));
}

/**
 * whenListening calls attempt until it gives a connection, retrying every ms
 * for 10 s while nobody listens at path yet (ENOENT, ECONNREFUSED) or its
 * backlog is full (attempt gives null).
 */
export async function whenListening<T>(path: string, attempt: () => T | null | Promise<T | null>): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const got = await attempt();
      if (got !== null) return got;
      if (Date.now() > deadline) throw new Error(`cannot connect to ${path}: its backlog stayed full for 10 s`);
    } catch (err) {
      const code = errorCode(err);
      if ((code !== 'ENOENT' && code !== 'ECONNREFUSED') || Date.now() > deadline) throw err;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** percentile of ascending samples, as fdpass.c picks it: element n/2 for the median, ceil(q * n) - 1 otherwise. */
export function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = q === 0.5 ? Math.floor(sorted.length / 2) : Math.ceil(q * sorted.length) - 1;
  return sorted[Math.max(0, Math.min(sorted.length - 1, rank))]!;
}

/** cpuUs: the CPU time (user + system) this process spent since start, in microseconds, as fdpass.c reads getrusage(2). */
export function cpuUs(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return d.user + d.system;
}

/** report prints the result as the one JSON line bench/run.ts reads. */
export function report(result: object): void {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

/**
 * failure describes an error for the JSON result ({} when there is none), so
 * a peer that fails mid-run still reports how far it got.
 */
export function failure(err: unknown): { error?: string; message?: string } {
  if (err === null || err === undefined) return {};
  return { error: errorCode(err) ?? 'Error', message: (err as Error)?.message ?? String(err) };
}

/**
 * reportPings prints a pinging side's JSON line: how many round trips were
 * kept (samples, in ms, sorted here), their median and p99 in us, the CPU
 * time per round trip (cpuUsSpent over them all), and the error if any.
 */
export function reportPings(samples: Float64Array, cpuUsSpent: number, error: unknown): void {
  const sorted = samples.sort();
  report({
    roundTrips: sorted.length,
    medianUs: percentile(sorted, 0.5) * 1e3,
    p99Us: percentile(sorted, 0.99) * 1e3,
    cpuUsPerRoundTrip: sorted.length > 0 ? cpuUsSpent / sorted.length : 0,
    ...failure(error),
  });
}

/** pingPongMain runs a round-trip peer by its command line: `<script> ping PATH WARMUP_MS DURATION_MS` or `<script> pong PATH`. */
export async function pingPongMain(script: string, ping: (path: string, warmupMs: number, ms: number) => Promise<void>,
  pong: (path: string) => Promise<void>): Promise<void> {
  const usage = `${script} ping PATH WARMUP_MS DURATION_MS | pong PATH`;
  const [mode, path] = process.argv.slice(2);
  if (mode === 'ping' && path) {
    await ping(path, numberArg(4, usage), numberArg(5, usage));
  } else if (mode === 'pong' && path) {
    await pong(path);
  } else {
    process.stderr.write(`usage: ${usage}\n`);
    process.exit(2);
  }
}

/** number argument i of the command line, or a usage error. */
export function numberArg(i: number, usage: string): number {
  const v = Number(process.argv[i]);
  if (!Number.isFinite(v)) {
    process.stderr.write(`usage: ${usage}\n`);
    process.exit(2);
  }
  return v;
}

/**
 * Round-trip peer of the fd-passing benchmark, through the package's public
 * API; the Node counterpart of `fdpass ping` / `fdpass pong`.
 *
 *   node dist/bench/latency.js ping PATH WARMUP_MS DURATION_MS
 *     listenAndServe on PATH; the handler sends 1 fd + META, awaits the reply
 *     descriptor, closes it (closeFds), and times each round trip; those after WARMUP_MS
 *     are kept, for DURATION_MS.
 *   node dist/bench/latency.js pong PATH
 *     connects and answers every descriptor (closed on arrival, closeFds) with one of
 *     its own, until end of stream.
 */
import { closeSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { listenAndServe, type HandoffConnection } from '../src/index.js';
import { closeFds } from '../src/handoff.js';
import { META, connect, cpuUs, failure, openNull, pingPongMain, report, reportPings } from './common.js';

const MAX_SAMPLES = 1 << 21;

/** Round trips kept so far: pingFor fills it, ping reports it even after a failure. */
interface Samples {
  values: Float64Array;
  count: number;
  /** CPU time of this process over the kept round trips, in microseconds */
  cpuUs: number;
}

async function pingFor(conn: HandoffConnection, warmupMs: number, ms: number, out: Samples): Promise<void> {
  const items = [{ fd: openNull(), meta: META }];
  const measure = performance.now() + warmupMs;
  const end = measure + ms;
  let cpu0: NodeJS.CpuUsage | null = null;
  try {
    for (;;) {
      const t = performance.now();
      if (t >= end || out.count === MAX_SAMPLES) break;
      if (t >= measure && cpu0 === null) cpu0 = process.cpuUsage();
      await conn.send(items);
      const reply = await conn.receive();
      if (reply === null) throw new Error('ping: the peer closed');
      closeFds([reply]);
      const rtt = performance.now() - t;
      if (t >= measure) out.values[out.count++] = rtt;
    }
  } finally {
    if (cpu0) out.cpuUs = cpuUs(cpu0);
    closeSync(items[0]!.fd);
  }
}

async function ping(path: string, warmupMs: number, ms: number): Promise<void> {
  const samples: Samples = { values: new Float64Array(MAX_SAMPLES), count: 0, cpuUs: 0 };
  let error: unknown = null;
  let served!: () => void;
  const done = new Promise<void>((resolve) => (served = resolve));
  const server = listenAndServe(path, async (res) => {
    try {
      await pingFor(res.connection, warmupMs, ms, samples);
    } catch (err) {
      error = err;
    }
    served();
  });
  await done;
  await server.close();
  reportPings(samples.values.subarray(0, samples.count), samples.cpuUs, error);
}

async function pong(path: string): Promise<void> {
  const conn = await connect(path);
  const items = [{ fd: openNull(), meta: META }];
  let error: unknown = null;
  try {
    for (;;) {
      const item = await conn.receive();
      if (item === null) break;
      closeFds([item]);
      await conn.send(items);
    }
  } catch (err) {
    error = err;
  }
  conn.close();
  closeSync(items[0]!.fd);
  report(failure(error));
}

await pingPongMain('latency.js', ping, pong);

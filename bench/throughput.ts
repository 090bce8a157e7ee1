/**
 * Throughput peer of the fd-passing benchmark, through the package's public
 * API; the Node counterpart of `fdpass send` / `fdpass recv`.
 *
 *   node dist/bench/throughput.js send PATH FDS_PER_MSG WARMUP_MS DURATION_MS
 *     listenAndServe on PATH; the handler sends FDS_PER_MSG descriptors (with
 *     META each) per send() for WARMUP_MS + DURATION_MS, keeping WINDOW sends
 *     outstanding, then the connection closes.
 *   node dist/bench/throughput.js recv PATH WARMUP_MS
 *     connects, loops receiveBatch() and closes each batch's fds with closeFds(); counts the descriptors
 *     that arrive from WARMUP_MS after the first one until end of stream.
 * A peer that fails still prints its JSON line, with the error's code.
 */
import { closeSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { listenAndServe, type HandoffConnection, type OutgoingFd } from '../src/index.js';
import { closeFds } from '../src/handoff.js';
import { META, connect, cpuUs, failure, numberArg, openNull, report } from './common.js';

/** Sends awaited together: enough to keep the socket full, so the sender is never latency-bound. */
const WINDOW = 64;

/** sendFor sends until ms have passed; progress.messages counts what was sent, even if it fails. */
async function sendFor(conn: HandoffConnection, perMessage: number, ms: number, progress: { messages: number; cpuUs: number }): Promise<void> {
  const items: OutgoingFd[] = [];
  for (let i = 0; i < perMessage; i++) items.push({ fd: openNull(), meta: META });
  const end = performance.now() + ms;
  const batch: Promise<void>[] = new Array(WINDOW);
  const cpu0 = process.cpuUsage();
  try {
    do {
      for (let i = 0; i < WINDOW; i++) batch[i] = conn.send(items);
      await Promise.all(batch);
      progress.messages += WINDOW;
    } while (performance.now() < end);
  } finally {
    progress.cpuUs = cpuUs(cpu0);
    for (const { fd } of items) closeSync(fd);
  }
}

async function send(path: string, perMessage: number, ms: number): Promise<void> {
  const progress = { messages: 0, cpuUs: 0 };
  let error: unknown = null;
  let served!: () => void;
  const done = new Promise<void>((resolve) => (served = resolve));
  const server = listenAndServe(path, async (res) => {
    try {
      await sendFor(res.connection, perMessage, ms, progress);
    } catch (err) {
      error = err;
    }
    served();
  });
  await done;
  await server.close();
  const fds = progress.messages * perMessage;
  report({ messages: progress.messages, fds, cpuUsPerFd: fds > 0 ? progress.cpuUs / fds : 0, ...failure(error) });
}

async function recv(path: string, warmupMs: number): Promise<void> {
  const conn = await connect(path);
  let first = -1;
  let t0 = 0;
  let fds = 0;
  let total = 0;
  let cpu0: NodeJS.CpuUsage | null = null;
  let error: unknown = null;
  try {
    for (;;) {
      const batch = await conn.receiveBatch();
      if (batch === null) break;
      closeFds(batch);
      total += batch.length;
      if (first < 0) first = performance.now();
      if (t0 > 0) fds += batch.length;
      else if (performance.now() - first >= warmupMs) {
        t0 = performance.now();
        cpu0 = process.cpuUsage();
      }
    }
  } catch (err) {
    error = err;
  }
  const seconds = t0 > 0 ? (performance.now() - t0) / 1e3 : 0;
  const cpu = cpu0 ? cpuUs(cpu0) : 0;
  conn.close();
  report({ fds, seconds, fdsPerSecond: seconds > 0 ? fds / seconds : 0, total, cpuUsPerFd: fds > 0 ? cpu / fds : 0, ...failure(error) });
}

const usage = 'throughput.js send PATH FDS_PER_MSG WARMUP_MS DURATION_MS | recv PATH WARMUP_MS';
const [mode, path] = process.argv.slice(2);
if (mode === 'send' && path) {
  await send(path, numberArg(4, usage), numberArg(5, usage) + numberArg(6, usage));
} else if (mode === 'recv' && path) {
  await recv(path, numberArg(4, usage));
} else {
  process.stderr.write(`usage: ${usage}\n`);
  process.exit(2);
}

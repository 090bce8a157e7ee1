/**
 * The event loop's floor for the round trip of the fd-passing benchmark
 * (bench/run.ts prints it under C and ours): the same message as latency.ts
 * (1 descriptor, its 32 bytes of meta in the package's framing) each way,
 * each side woken by Node's event loop (the addon's libuv poll handle) and
 * calling the addon straight: recvmsg, closeFds, sendmsg. None of the
 * package's decoding, queues or promises: what any Node program that waits
 * in the event loop pays, against C's blocking recvmsg.
 *
 *   node dist/bench/floor.js ping PATH WARMUP_MS DURATION_MS
 *     listens on PATH, sends, times each reply; those after WARMUP_MS are
 *     kept, for DURATION_MS.
 *   node dist/bench/floor.js pong PATH
 *     connects and answers each descriptor (closed on arrival) with one of
 *     its own, until end of stream.
 */
import { closeSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { addon, POLL_READABLE } from '../src/native.js';
import { META_JSON, cpuUs, failure, openNull, pingPongMain, report, reportPings, whenListening } from './common.js';

const MAX_SAMPLES = 1 << 21;
const AGAIN = -1;

/** The message: a uint32 little-endian length, then the meta. */
const meta = Buffer.from(META_JSON);
const MESSAGE = Buffer.alloc(4 + meta.length);
MESSAGE.writeUInt32LE(meta.length, 0);
meta.copy(MESSAGE, 4);

const bytes = new Uint8Array(65536);
const fdsOut = new Int32Array(257);

/**
 * serve calls reply once per descriptor that arrives on fd (each closed on
 * arrival), woken by the event loop; reply returns false to stop. Resolves at
 * the end of the stream or once stopped.
 */
function serve(fd: number, reply: () => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const poller = new addon.Poller(fd, () => {
      try {
        for (;;) {
          const n = addon.recvmsg(fd, bytes, 0, bytes.length, fdsOut);
          if (n === AGAIN) return;
          const count = fdsOut[0]!;
          if (count > 0) addon.closeFds(fdsOut.subarray(1), count);
          if (n === 0 && count === 0) break;
          if (!reply()) break;
        }
      } catch (err) {
        poller.close();
        reject(err);
        return;
      }
      poller.close();
      resolve();
    });
    poller.start(POLL_READABLE);
  });
}

/** acceptOne waits in the event loop for one connection on the listening fd. */
function acceptOne(listener: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const poller = new addon.Poller(listener, () => {
      try {
        const fd = addon.accept(listener);
        if (fd === AGAIN) return;
        poller.close();
        resolve(fd);
      } catch (err) {
        poller.close();
        reject(err);
      }
    });
    poller.start(POLL_READABLE);
  });
}

async function ping(path: string, warmupMs: number, ms: number): Promise<void> {
  const listener = addon.listen(path, 0o600, 1);
  const fd = await acceptOne(listener);
  addon.close(listener);
  const nul = openNull();
  const fds = [nul];
  const values = new Float64Array(MAX_SAMPLES);
  let count = 0;
  let cpu0: NodeJS.CpuUsage | null = null;
  let spent = 0;
  let error: unknown = null;
  const measure = performance.now() + warmupMs;
  const end = measure + ms;
  let t = performance.now();
  try {
    addon.sendmsg(fd, MESSAGE, 0, MESSAGE.length, fds, 1);
    await serve(fd, () => {
      const now = performance.now();
      if (t >= measure) values[count++] = now - t;
      if (now >= end || count === MAX_SAMPLES) return false;
      if (now >= measure && cpu0 === null) cpu0 = process.cpuUsage();
      t = now;
      addon.sendmsg(fd, MESSAGE, 0, MESSAGE.length, fds, 1);
      return true;
    });
  } catch (err) {
    error = err;
  }
  if (cpu0) spent = cpuUs(cpu0);
  addon.close(fd);
  closeSync(nul);
  reportPings(values.subarray(0, count), spent, error);
}

async function pong(path: string): Promise<void> {
  const fd = await whenListening(path, () => {
    const got = addon.connect(path);
    return got >= 0 ? got : null; // -1: the backlog is full
  });
  const nul = openNull();
  const fds = [nul];
  let error: unknown = null;
  try {
    await serve(fd, () => {
      addon.sendmsg(fd, MESSAGE, 0, MESSAGE.length, fds, 1);
      return true;
    });
  } catch (err) {
    error = err;
  }
  addon.close(fd);
  closeSync(nul);
  report(failure(error));
}

await pingPongMain('floor.js', ping, pong);

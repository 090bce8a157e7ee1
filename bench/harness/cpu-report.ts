/**
 * Preloaded into every process of a service by bench/redeploy-cost.ts
 * (NODE_OPTIONS=--import): at its exit, a process appends one JSON line to
 * the file CPU_REPORT names, with its part in the service and the CPU it
 * spent from its start (user + system, ms, Node's own start-up included):
 * `supervisor` (graceful-restart run), `primary` (ours, or node:cluster's),
 * `worker` (ours, or a node:cluster worker), `process` (anything else, such
 * as `node -e 0`).
 */
import fs from 'node:fs';

const file = process.env.CPU_REPORT;
if (file) {
  process.on('exit', () => {
    const u = process.cpuUsage();
    const part = process.argv[1]?.endsWith('graceful-restart.js') ? 'supervisor'
      // node:cluster removes NODE_UNIQUE_ID before any preload runs: its worker module tells a worker.
      : process.env.GRACEFUL_WORKER_ID !== undefined || ((process as { moduleLoadList?: readonly string[] }).moduleLoadList ?? []).includes('NativeModule internal/cluster/child') ? 'worker'
        : process.argv[1]?.includes('hello-') ? 'primary' : 'process';
    fs.appendFileSync(file, `${JSON.stringify({ part, pid: process.pid, cpuMs: Math.round((u.user + u.system) / 100) / 10 })}\n`);
  });
}

/**
 * A logrotate in the middle of a redeploy (`mv app.log app.log.1`, then a
 * reopen) while the new instance holds the file's descriptor but is not
 * ready: the reopen reaches both instances (and every worker), and no line
 * reaches the rotated file once the reopen returned, whichever instance was
 * asked (the control command `reopen`, or SIGUSR1).
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { cli, endGenerations, spawnFixture, tmpDir, until, type Child } from '../helpers.js';

/** pids: the pids that wrote lines to file. */
function pids(file: string): Set<number> {
  return new Set(fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => Number(l.split(' ')[0])));
}

describe('reopen during a redeploy', function () {
  this.timeout(60_000);
  let child: Child | undefined;
  afterEach(async () => {
    await endGenerations(child, /^(?:ready|holding) (\d+)/);
    child = undefined;
  });

  for (const workers of [0, 2]) {
    for (const asked of ['old', 'new'] as const) {
      // The old instance is asked by the control command without workers, by SIGUSR1 (logrotate's kill -USR1) with them.
      const how = asked === 'new' ? 'the new instance, not ready yet (SIGUSR1)' : workers ? 'the old primary (SIGUSR1)' : 'the old instance (control command reopen)';
      it(`a rotation asked of ${how}${workers ? `, with ${workers} workers` : ''}: no line reaches the rotated file after the reopen returned`, async () => {
        const dir = tmpDir();
        const log = path.join(dir, 'app.log');
        const rotated = `${log}.1`;
        const sock = path.join(dir, 'control.sock');
        const go = path.join(dir, 'go');
        child = spawnFixture('reopen', [], { env: { ...process.env, APP_LOG: log, APP_SOCKET: sock, APP_GO: go, ...(workers ? { APP_WORKERS: String(workers) } : {}) } });
        const oldPid = Number((await child.next(/^ready /)).split(' ')[1]);
        const redeploy = cli(sock, 'redeploy');
        const newPid = Number((await child.next(/^holding /)).split(' ')[1]);
        await until(() => pids(log).has(newPid), 10_000, 'the new instance writes while it starts');
        fs.renameSync(log, rotated);
        if (asked === 'old' && !workers) {
          const r = await cli(sock, 'reopen');
          expect(r.stdout, r.stderr).to.match(/^reopened/);
        } else {
          // A signal's task returned once its log line is written.
          const pid = asked === 'old' ? oldPid : newPid;
          const seen = child.stderr.length;
          process.kill(pid, 'SIGUSR1');
          await until(() => child!.stderr.slice(seen).some((l) => l.includes(`graceful[${pid}]`) && /SIGUSR1: task reopen/.test(l)), 10_000, 'the reopen to return');
        }
        const returned = fs.statSync(rotated).size;
        // Both instances (and the old workers) write on: to app.log only.
        await until(() => pids(log).has(oldPid) && pids(log).has(newPid), 10_000, 'both instances write to the new file');
        fs.writeFileSync(go, '');
        const done = await redeploy;
        expect(done.code, done.stdout + done.stderr).to.equal(0);
        await child.next(new RegExp(`^ready ${newPid}$`));
        const size = fs.statSync(log).size;
        await until(() => fs.statSync(log).size > size + 1000, 10_000, 'the new generation writes on');
        expect(fs.statSync(rotated).size, 'bytes written to the rotated file after the reopen returned').to.equal(returned);
      });
    }
  }
});

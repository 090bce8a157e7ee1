/**
 * server/serving.ts: an instance that serves writes its pid file and says
 * READY=1 with its pid to a real sd_notify socket; for a supervisor, it names
 * its control socket too. A pid file it cannot write is logged, and the
 * notification still goes.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../../src/server/options.js';
import { readyNotice, serving } from '../../src/server/serving.js';
import { notifyReader, tmpDir, type Child } from '../helpers.js';

describe('server/serving', () => {
  const saved = { NOTIFY_SOCKET: process.env.NOTIFY_SOCKET, GRACEFUL_SUPERVISOR: process.env.GRACEFUL_SUPERVISOR };
  const children: Child[] = [];
  afterEach(async () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    for (const c of children.splice(0)) {
      c.kill('SIGKILL');
      await c.exited;
    }
  });

  it('readyNotice: the pid and READY=1; the control socket, absolute, only for a supervisor', () => {
    delete process.env.GRACEFUL_SUPERVISOR;
    const config = { controlSocket: 'rel/ctl.sock' } as Config;
    expect(readyNotice(config)).to.equal(`MAINPID=${process.pid}\nREADY=1`);
    process.env.GRACEFUL_SUPERVISOR = '1';
    expect(readyNotice(config)).to.equal(`MAINPID=${process.pid}\nREADY=1\nX_GRACEFUL_CONTROL=${path.resolve('rel/ctl.sock')}`);
    expect(readyNotice({} as Config)).to.equal(`MAINPID=${process.pid}\nREADY=1`);
  });

  it('serving writes the pid file and notifies; a pid file it cannot write is logged, and it still notifies', async () => {
    delete process.env.GRACEFUL_SUPERVISOR;
    const dir = tmpDir();
    const reader = await notifyReader(dir);
    children.push(reader.child);
    process.env.NOTIFY_SOCKET = reader.path;
    const logs: { msg: string; event?: unknown }[] = [];
    const log = (msg: string, fields?: Record<string, unknown>) => void logs.push({ msg, event: fields?.event });
    serving({ pidFile: path.join(dir, 'app.pid') } as Config, log);
    expect(await reader.next()).to.equal(`MAINPID=${process.pid};READY=1`);
    expect(fs.readFileSync(path.join(dir, 'app.pid'), 'utf8')).to.equal(`${process.pid}\n`);
    expect(logs).to.deep.equal([]);
    serving({ pidFile: path.join(dir, 'no-such-dir', 'app.pid') } as Config, log);
    expect(await reader.next()).to.equal(`MAINPID=${process.pid};READY=1`);
    expect(logs).to.have.length(1);
    expect(logs[0]!.event).to.equal('pidfile.failed');
    expect(logs[0]!.msg).to.match(/^could not write the pid file .*no-such-dir\/app\.pid: /);
  });
});

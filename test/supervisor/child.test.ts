/** Starting the command: a real child, its environment and its session. */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import { commandLine, spawnCommand, startFailure, takeActivated } from '../../src/supervisor/child.js';
import { tmpDir } from '../helpers.js';

describe('supervisor/child', function () {
  this.timeout(10_000);

  it('spawnCommand starts the command in a session of its own with NOTIFY_SOCKET and the supervisor pid in its environment', async () => {
    const out = path.join(tmpDir(), 'out');
    // $$ is the shell's pid; fields 5 and 6 of /proc/<pid>/stat are its process group and session.
    const script = `read -r line < /proc/$$/stat; set -- $line; echo "$$ $5 $6 $NOTIFY_SOCKET $GRACEFUL_SUPERVISOR $APP_VAR" > "${out}"`;
    const child = spawnCommand({ command: '/bin/sh', args: ['-c', script], env: { ...process.env, APP_VAR: 'kept' } }, '/run/test/notify.sock', []);
    const [code] = (await once(child, 'exit')) as [number];
    expect(code).to.equal(0);
    const [pid, group, session, ...rest] = fs.readFileSync(out, 'utf8').trim().split(' ');
    expect([group, session]).to.deep.equal([pid, pid]);
    expect(rest).to.deep.equal(['/run/test/notify.sock', String(process.pid), 'kept']);
  });

  it('a command that cannot start gets no pid and an error, which startFailure turns into a shell\'s code', async () => {
    const child = spawnCommand({ command: '/nonexistent/app' }, '/run/test/notify.sock', []);
    expect(child.pid).to.equal(undefined);
    const [err] = (await once(child, 'error')) as [NodeJS.ErrnoException];
    expect(startFailure(err, '/nonexistent/app')).to.deep.equal({
      code: 127, message: 'cannot start /nonexistent/app: spawn /nonexistent/app ENOENT: is it installed, and on PATH?',
    });
    const denied = Object.assign(new Error('spawn ./app EACCES'), { code: 'EACCES' });
    expect(startFailure(denied, './app')).to.deep.equal({ code: 126, message: 'cannot start ./app: spawn ./app EACCES: is it executable?' });
  });

  it('commandLine joins the command and its arguments; takeActivated takes nothing without socket activation', () => {
    expect(commandLine({ command: 'node', args: ['app.js', '--port', '0'] })).to.equal('node app.js --port 0');
    expect(commandLine({ command: 'node' })).to.equal('node');
    const logged: string[] = [];
    expect(takeActivated({ PATH: process.env.PATH }, (m) => logged.push(m))).to.deep.equal([]);
    expect(logged).to.deep.equal([]);
  });
});

/**
 * The systemd recipe (example/app.service): its ExecStart runs in the unit's
 * WorkingDirectory with its Environment=, a RuntimeDirectory= and a notify
 * socket of the test's (SO_PASSCRED tells who sent each datagram), over the
 * layout the unit names (see namespace.ts). Every notification comes from the
 * main pid (so NotifyAccess=main holds): READY=1, then RELOADING=1 and READY=1
 * around ExecReload, STOPPING=1 at SIGTERM (KillMode=mixed), exit 0.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, httpGet, notifyReader, spawnChild, tmpDir, type Child } from '../helpers.js';
import { imageCommand, nsSkipReason, testAppProject } from './namespace.js';
import { example, run } from './project.js';

/** parseUnit reads the [Service] section: key -> values (Environment= may repeat). */
function parseUnit(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = '';
  for (const line of text.split('\n')) {
    const s = /^\[(\w+)\]$/.exec(line);
    if (s) section = s[1]!;
    const kv = /^(\w+)=(.*)$/.exec(line);
    if (section === 'Service' && kv) out.set(kv[1]!, [...(out.get(kv[1]!) ?? []), kv[2]!]);
  }
  return out;
}

describe('recipes: systemd', function () {
  this.timeout(60_000);
  const started: Child[] = [];
  afterEach(async () => {
    for (const c of started.splice(0)) {
      c.kill('SIGKILL');
      await c.exited;
    }
  });

  it('the unit\'s command lines: absolute paths, READY=1, ExecReload redeploys, SIGTERM stops; every notification from the main pid', async function () {
    const unit = parseUnit(fs.readFileSync(example('app.service'), 'utf8'));
    const one = (key: string) => {
      const v = unit.get(key);
      expect(v, key).to.have.length(1);
      return v![0]!;
    };
    expect(one('Type')).to.equal('notify');
    expect(one('NotifyAccess')).to.equal('main');
    expect(one('KillMode')).to.equal('mixed');
    const execStart = one('ExecStart').split(' ');
    const execReload = one('ExecReload').split(' ');
    for (const argv of [execStart, execReload]) {
      expect(argv[0], 'an absolute path to the bin, not npx').to.match(/^\/.*\/node_modules\/\.bin\/graceful-restart$/);
    }
    expect(path.isAbsolute(one('WorkingDirectory'))).to.equal(true);

    const why = (await nsSkipReason(false)) ?? (fs.existsSync('/usr/bin/node') ? null : 'no /usr/bin/node, which ExecStart names');
    if (why) {
      console.log(`      skipped: ${why}`);
      this.skip();
    }
    const dir = tmpDir();
    const listener = await notifyReader(dir);
    started.push(listener.child);
    const notifySock = listener.path;
    const { notes, saw } = listener;

    const project = await testAppProject();
    const port = await freePort();
    const env: NodeJS.ProcessEnv = {
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin', // systemd's default for services
      NOTIFY_SOCKET: notifySock, APP_PORT: String(port), APP_SOCKET: '/run/app/app.sock',
    };
    for (const e of unit.get('Environment') ?? []) env[e.slice(0, e.indexOf('='))] = e.slice(e.indexOf('=') + 1);
    const [cmd, args] = imageCommand(project, one('WorkingDirectory'), execStart,
      { pid: false, mkdirs: [`/run/${one('RuntimeDirectory')}`] });
    const service = spawnChild(cmd, args, { env });
    started.push(service);
    const mainPid = service.pid; // unshare and sh exec: the unit's main pid is the one systemd forked

    const ready = await saw(/^READY=1$/m, 0);
    const first = (await service.next(/^ready /)).split(' ')[1]!;
    expect(await httpGet({ port })).to.deep.equal({ status: 200, body: first });

    // systemctl reload: ExecReload, in the service's mount namespace.
    const reload = await run('nsenter', ['-t', String(mainPid), '-m', '--', ...execReload]);
    expect(reload.code, reload.stdout + reload.stderr).to.equal(0);
    const reloading = await saw(/^RELOADING=1$/m, ready);
    await saw(/^READY=1$/m, reloading);
    const second = (await service.next(/^ready \d+ \d+ 2 /)).split(' ')[1]!;
    expect(await httpGet({ port })).to.deep.equal({ status: 200, body: second });

    // systemctl stop with KillMode=mixed: SIGTERM to the main pid only.
    process.kill(mainPid, 'SIGTERM');
    expect(await service.exited).to.deep.equal({ code: 0, signal: null });
    await saw(/^STOPPING=1$/m, 0);
    const all = notes();
    expect(all.filter((n) => n.pid !== mainPid), 'NotifyAccess=main: every notification from the main pid').to.deep.equal([]);
    expect(all.filter((n) => /^MAINPID=/m.test(n.msg)), 'the main pid never changes').to.deep.equal([]);
  });
});

/** The environment `graceful-restart run` gives its command: the register preloaded, flags as variables, usage errors for bad flags. */
import { expect } from 'chai';
import path from 'node:path';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { APP_SOCKET_SUFFIX, REGISTER_URL, registerEnv } from '../../src/cli/run-env.js';

describe('cli/run-env', () => {
  it('preloads the register (after what NODE_OPTIONS held) and names the application\'s socket after the supervisor\'s', () => {
    expect(fs.existsSync(fileURLToPath(REGISTER_URL)), REGISTER_URL).to.equal(true);
    const env = registerEnv({ register: true, socket: 'sup.sock', workers: '2', ready: 'message', settle: '100', log: 'out.log', pidFile: 'app.pid', config: 'c.json' }, { NODE_OPTIONS: '--max-old-space-size=512', KEEP: '1' });
    expect(env.NODE_OPTIONS).to.equal(`--max-old-space-size=512 --import ${REGISTER_URL}`);
    expect(env).to.include({ KEEP: '1', GRACEFUL_WORKERS: '2', GRACEFUL_READY: 'message', GRACEFUL_SETTLE: '100' });
    expect(env.GRACEFUL_CONTROL_SOCKET).to.equal(path.resolve('sup.sock') + APP_SOCKET_SUFFIX);
    expect(env.GRACEFUL_LOG_FILE).to.equal(path.resolve('out.log'));
    expect(env.GRACEFUL_PID_FILE).to.equal(path.resolve('app.pid'));
    expect(env.GRACEFUL_CONFIG).to.equal(path.resolve('c.json'));
    expect(registerEnv({ register: true, socket: 's' }, { GRACEFUL_CONTROL_SOCKET: '/x.sock' }).GRACEFUL_CONTROL_SOCKET).to.equal('/x.sock');
  });

  it('--no-register leaves the environment alone, and refuses a register flag with it', () => {
    const env = { A: '1' };
    expect(registerEnv({ register: false }, env)).to.equal(env);
    expect(() => registerEnv({ register: false, pidFile: 'p' }, env)).to.throw(/--pid-file is for a program run under graceful-restart\/register/).with.property('code', 2);
  });

  it('bad flags: exit 2 with what is accepted', () => {
    expect(() => registerEnv({ register: true, workers: 'many' })).to.throw(/--workers must be a whole number of workers from 0 to 256, or 'auto'/).with.property('code', 2);
    expect(() => registerEnv({ register: true, workers: '999' })).to.throw(/--workers/).with.property('code', 2);
    expect(() => registerEnv({ register: true, ready: 'later' })).to.throw(/--ready: must be listen, message or http:\/path/).with.property('code', 2);
    expect(() => registerEnv({ register: true, settle: '-3' })).to.throw(/--settle must be a whole number/).with.property('code', 2);
    expect(registerEnv({ register: true, workers: 'auto' }, {}).GRACEFUL_WORKERS).to.equal('auto');
  });
});

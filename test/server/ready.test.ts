/** ready() and the refusals around it, on a GracefulServer in this process (no predecessor, real sockets). */
import { expect } from 'chai';
import http from 'node:http';
import { GracefulServer } from '../../src/index.js';
import { httpGet } from '../helpers.js';

describe('ready()', () => {
  const quiet = { signals: false, exitProcess: false, log: () => undefined };

  it('a failed ready hook rejects with ERR_GRACEFUL_HOOK_FAILED; without a predecessor ready() may be called again', async () => {
    const app = new GracefulServer(quiet);
    let fail = true;
    app.onReady(() => {
      if (fail) throw new Error('the database is not there yet');
    });
    const server = http.createServer((_req, res) => res.end('ok'));
    await app.listen('http', server, { host: '127.0.0.1' });
    const err = (await app.ready().catch((e: unknown) => e)) as Error & { code?: string };
    expect(err.code).to.equal('ERR_GRACEFUL_HOOK_FAILED');
    expect(err.message).to.equal('a ready hook failed, so this instance does not start: the database is not there yet');
    expect(app.state).to.equal('starting');
    fail = false;
    await app.ready();
    expect(app.state).to.equal('ready');
    expect(await httpGet({ port: app.listenerInfo()[0]!.address.port as number })).to.deep.equal({ status: 200, body: 'ok' });
    await app.telinit(0);
    await app.halted;
    expect(app.state).to.equal('halted');
  });

  it('refuses what the state does not allow, each with its code', async () => {
    const app = new GracefulServer(quiet);
    await app.listen('http', http.createServer(), { host: '127.0.0.1' });
    const code = (p: Promise<unknown>) => p.then(() => 'resolved', (e: { code?: string }) => e.code);
    expect(await code(app.telinit(1))).to.equal('ERR_GRACEFUL_NOT_READY');
    expect(await code(app.redeploy())).to.equal('ERR_GRACEFUL_NOT_READY');
    expect(await code(app.telinit(2))).to.equal('ERR_GRACEFUL_INVALID_RUNLEVEL');
    await app.ready();
    expect(await code(app.ready())).to.equal('ERR_GRACEFUL_ALREADY_READY');
    await app.telinit(1);
    expect(app.runlevel).to.equal(1);
    expect(app.listenerInfo()[0]!.open).to.equal(false);
    await app.telinit(3);
    expect(app.listenerInfo()[0]!.open).to.equal(true);
    await app.telinit(0);
    expect(await code(app.telinit(0))).to.equal('ERR_GRACEFUL_TERMINATING');
    expect(await code(app.telinit(3))).to.equal('ERR_GRACEFUL_TERMINATING');
    expect(await code(app.redeploy())).to.equal('ERR_GRACEFUL_TERMINATING');
    expect(await code(app.listen('other', http.createServer()))).to.equal('ERR_GRACEFUL_TERMINATING');
  });

  it('a name registered twice is ERR_GRACEFUL_DUPLICATE_NAME, whatever the kind', async () => {
    const app = new GracefulServer(quiet);
    await app.listen('x', http.createServer(), { host: '127.0.0.1' });
    const err = (await app.descriptor('x', () => 1).catch((e: unknown) => e)) as { code?: string; message: string };
    expect(err.code).to.equal('ERR_GRACEFUL_DUPLICATE_NAME');
    expect(err.message).to.equal('"x" is already registered: give each listener, socket and file its own name');
    await app.ready();
    await app.telinit(0);
  });
});

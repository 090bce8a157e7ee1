/**
 * Readiness with real servers: --ready listen fires once the listens are done
 * and settled, message waits for the message, http:/path asks a server that
 * listens nowhere (the request reaches it over a private socket) until 2xx;
 * a primary is ready once its listens settled, whatever the mode.
 */
import { expect } from 'chai';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import { Readiness } from '../../src/register/readiness.js';
import { until } from '../helpers.js';

function counter(): { fired: number; become: () => void } {
  const c = { fired: 0, become: () => { c.fired++; } };
  return c;
}

/**
 * settled resolves once a witness Readiness of the same settle time, given one
 * listen now, becomes ready: a readiness whose settle time started earlier
 * would have fired by then (the absence of a call is what is tested).
 */
async function settled(settleMs: number, server: http.Server): Promise<void> {
  const w = counter();
  const witness = new Readiness({ kind: 'listen' }, settleMs, false, w.become);
  witness.listenStarted();
  witness.listenEnded(server);
  await until(() => w.fired === 1, 2_000, 'the witness to be ready');
}

describe('register/readiness', () => {
  it('listen: not before every listen is done; once, after the settle time; a listen meanwhile restarts the wait', async () => {
    const c = counter();
    const r = new Readiness({ kind: 'listen' }, 50, false, c.become);
    const server = http.createServer();
    r.listenStarted();
    r.listenStarted();
    r.listenEnded(server);
    await settled(50, server);
    expect(c.fired, 'one listen still under way').to.equal(0);
    r.listenEnded(server);
    r.listenStarted();
    r.listenEnded(server);
    await until(() => c.fired === 1, 2_000, 'ready');
    r.listenStarted();
    r.listenEnded(server);
    await settled(50, server);
    expect(c.fired).to.equal(1);
  });

  it('listen: a failed listen alone never makes it ready', async () => {
    const c = counter();
    const r = new Readiness({ kind: 'listen' }, 10, false, c.become);
    r.listenStarted();
    r.listenEnded();
    await settled(10, http.createServer());
    expect(c.fired).to.equal(0);
  });

  it('message: the message and no listen under way; a primary ignores it and settles', async () => {
    const c = counter();
    const r = new Readiness({ kind: 'message' }, 10, false, c.become);
    r.listenStarted();
    r.message();
    expect(c.fired).to.equal(0);
    r.listenEnded(http.createServer());
    expect(c.fired).to.equal(1);
    const p = counter();
    const primary = new Readiness({ kind: 'message' }, 10, true, p.become);
    primary.listenStarted();
    primary.listenEnded(http.createServer());
    await until(() => p.fired === 1, 2_000, 'primary ready');
  });

  it('http:/path: asks the first server, which listens nowhere, until it answers 2xx; the private socket is gone afterwards', async () => {
    const c = counter();
    const paths: string[] = [];
    let asked = 0;
    const server = http.createServer((req, res) => {
      paths.push(req.url!);
      res.statusCode = ++asked < 3 ? 503 : 204;
      res.end();
    });
    const before = fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('graceful-probe-')).length;
    const r = new Readiness({ kind: 'http', path: '/health?deep=1' }, 0, false, c.become);
    r.listenStarted();
    r.listenEnded(server);
    await until(() => c.fired === 1, 10_000, 'ready');
    expect(asked).to.equal(3);
    expect(paths).to.deep.equal(['/health?deep=1', '/health?deep=1', '/health?deep=1']);
    expect(server.listening).to.equal(false);
    await until(() => fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('graceful-probe-')).length === before, 5_000, 'probe socket removed');
  });
});

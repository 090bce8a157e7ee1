/** wrk (keep-alive, and a new connection per request) through redeploys of a real process: no socket error, no non-2xx. */
import { expect } from 'chai';
import { spawnChild } from '../helpers.js';
import { ProtocolsApp } from './protocol-redeploy.js';

describe('drain: wrk through redeploys', function () {
  this.timeout(60_000);
  let app: ProtocolsApp | undefined;
  afterEach(async () => {
    await app?.stop();
    app = undefined;
  });

  for (const [name, args] of [['keep-alive', []], ['a new connection per request', ['-H', 'Connection: close']]] as const) {
    it(`${name}: 50 connections for 4 s, 3 redeploys: every response a 2xx, no socket error`, async () => {
      app = await ProtocolsApp.start();
      const wrk = spawnChild('wrk', ['-t', '1', '-c', '50', '-d', '4s', ...args, `http://127.0.0.1:${app.ports.http}/sync`]);
      for (let i = 0; i < 3; i++) {
        await new Promise((r) => setTimeout(r, 700)); // load between redeploys: the pause is part of the traffic shape
        await app.redeploy();
      }
      const exit = await wrk.exited;
      const out = wrk.stdout.join('\n');
      expect(exit.code, out).to.equal(0);
      const m = /(\d+) requests in/.exec(out);
      expect(m, out).to.not.equal(null);
      expect(Number(m![1])).to.be.greaterThan(1_000);
      // wrk prints these lines only when there is something to count.
      expect(out).to.not.match(/Socket errors|Non-2xx/);
      for (const g of app.generations.slice(0, -1)) expect(await app.halted(g.pid), `forced in ${g.pid}`).to.equal(0);
    });
  }
});

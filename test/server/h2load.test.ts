/**
 * h2load (nghttp2-client) over h2c and TLS through redeploys of a real
 * process: every request the client sent was answered. nghttp2 refuses, on the
 * client side, to start a stream once any GOAWAY arrived (the first, graceful
 * one included), and h2load counts each such refusal as a failed request
 * ("Process Request Failure"): those never reached the server. They are
 * bounded here, and nothing else may fail.
 */
import { expect } from 'chai';
import { spawnChild } from '../helpers.js';
import { ProtocolsApp } from './protocol-redeploy.js';

describe('drain: h2load through redeploys', function () {
  this.timeout(60_000);
  let app: ProtocolsApp | undefined;
  afterEach(async () => {
    await app?.stop();
    app = undefined;
  });

  for (const [name, scheme, port] of [['h2c', 'http', 'h2c'], ['TLS', 'https', 'h2']] as const) {
    it(`${name}: 10 clients x 10 streams for 4 s, 3 redeploys: every request sent was answered`, async () => {
      app = await ProtocolsApp.start();
      const h2load = spawnChild('h2load', ['-D', '4', '-c', '10', '-m', '10', `${scheme}://127.0.0.1:${app.ports[port]}/`]);
      for (let i = 0; i < 3; i++) {
        await new Promise((r) => setTimeout(r, 600)); // load between redeploys: the pause is part of the traffic shape
        await app.redeploy();
      }
      const exit = await h2load.exited;
      const out = h2load.stdout.join('\n');
      expect(exit.code, out).to.equal(0);
      const m = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
      expect(m, out).to.not.equal(null);
      const [, total, , , succeeded, failed, errored, timeout] = m!.map(Number);
      // Each request refused by the client itself comes with a "Process Request Failure" line.
      const refusedByClient = (out.match(/^Process Request Failure:/gm) ?? []).length;
      expect({ errored, timeout }, out).to.deep.equal({ errored: failed, timeout: 0 });
      expect(failed, out).to.be.at.most(refusedByClient);
      expect(failed, out).to.be.at.most(Math.ceil(total! / 300));
      expect(succeeded).to.equal(total! - failed!);
      expect(out).to.match(/status codes: \d+ 2xx, 0 3xx, 0 4xx, 0 5xx/);
      expect(succeeded).to.be.greaterThan(1_000);
      for (const g of app.generations.slice(0, -1)) expect(await app.halted(g.pid), `forced in ${g.pid}`).to.equal(0);
    });
  }
});

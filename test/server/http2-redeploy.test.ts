/**
 * HTTP/2 across redeploys of a real process, with node:http2 clients that
 * never retry. Over h2c no stream is refused. Over TLS a few still are (a
 * stream that crosses the final GOAWAY while the server's write of it is
 * pending), measured at 2 to 57 in 10,000.
 */
import { expect } from 'chai';
import { h2Load, ProtocolsApp } from './protocol-redeploy.js';

describe('drain: HTTP/2 across redeploys', function () {
  this.timeout(90_000);
  let app: ProtocolsApp | undefined;
  afterEach(async () => {
    await app?.stop();
    app = undefined;
  });

  for (const [name, scheme, port] of [['h2c', 'http', 'h2c'], ['TLS', 'https', 'h2']] as const) {
    it(`${name}: 10 sessions x 10 streams through 5 redeploys: every stream answered${name === 'h2c' ? ', none refused' : ', at most 1% refused'}`, async () => {
      app = await ProtocolsApp.start();
      const load = h2Load(`${scheme}://127.0.0.1:${app.ports[port]}`, 10, 10);
      for (let i = 0; i < 5; i++) {
        await new Promise((r) => setTimeout(r, 300)); // load between redeploys: the pause is part of the traffic shape
        await app.redeploy();
      }
      await new Promise((r) => setTimeout(r, 300));
      const result = await load.stop();
      const total = result.ok + result.failures.length;
      console.log(`      ${name}: ${result.ok} of ${total} streams answered, ${result.refused} refused`);
      const other = result.failures.filter((f) => !f.endsWith(', rst 7, ERR_HTTP2_STREAM_ERROR'));
      expect(other.slice(0, 10), `${other.length} failed otherwise than refused`).to.deep.equal([]);
      expect(result.refused, `${result.refused} refused of ${total}`).to.be.at.most(name === 'h2c' ? 0 : Math.ceil(total / 100));
      expect(result.ok).to.be.greaterThan(500);
      // Sessions moved from generation to generation (each GOAWAY made the client open a new one).
      expect(result.sessions).to.be.greaterThan(10 * 5);
      expect(result.pids.size).to.be.at.least(5);
      const old = app.generations.slice(0, -1);
      for (const g of old) expect(await app.halted(g.pid), `forced in ${g.pid}`).to.equal(0);
    });
  }
});

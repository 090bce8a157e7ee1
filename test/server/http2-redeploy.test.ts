/**
 * HTTP/2 across redeploys of a real process, with node:http2 clients that
 * never retry. With the final GOAWAY sent at once (the drain before the
 * graceful GOAWAY) 0.5% (h2c) to 1.1% (TLS) of the streams were refused
 * here. Now: over h2c 0 to 8 in 20,000; over TLS 2 to 13 per redeploy (10
 * sessions); those are streams Node's client had queued when a GOAWAY
 * arrived. Why they cannot be brought to 0 by the server:
 * h2-client-goaway.test.ts. The TLS bound counts per redeploy and session,
 * what a GOAWAY can catch, not per stream of the run: how many streams a run
 * has depends on how fast its redeploys follow each other (back-to-back
 * redeploys no longer wait out the predecessor's take-back window, so a run
 * now has about 8,000 streams where it had about 50,000).
 */
const SESSIONS = 10;
const REDEPLOYS = 5;
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
    it(`${name}: 10 sessions x 10 streams through 5 redeploys: at most ${name === 'h2c' ? '1 in 1,000' : '2 per session and redeploy'} refused`, async () => {
      app = await ProtocolsApp.start();
      const load = h2Load(`${scheme}://127.0.0.1:${app.ports[port]}`, SESSIONS, 10);
      let pid = app.first.pid;
      for (let i = 0; i < REDEPLOYS; i++) {
        await load.servedBy(pid); // load between redeploys: every session loop had a stream answered by the instance now serving
        pid = (await app.redeploy()).pid;
      }
      await load.servedBy(pid);
      const result = await load.stop();
      const total = result.ok + result.failures.length;
      console.log(`      ${name}: ${result.ok} of ${total} streams answered, ${result.refused} refused`);
      const other = result.failures.filter((f) => !f.endsWith(', rst 7, ERR_HTTP2_STREAM_ERROR'));
      expect(other.slice(0, 10), `${other.length} failed otherwise than refused`).to.deep.equal([]);
      expect(result.refused, `${result.refused} refused of ${total}`).to.be.at.most(name === 'h2c' ? Math.floor(total / 1_000) : 2 * SESSIONS * REDEPLOYS);
      expect(result.ok).to.be.greaterThan(500);
      // Sessions moved from generation to generation (each GOAWAY made the client open a new one).
      expect(result.sessions).to.be.greaterThan(10 * 5);
      expect(result.pids.size).to.be.at.least(5);
      const old = app.generations.slice(0, -1);
      for (const g of old) expect(await app.halted(g.pid), `forced in ${g.pid}`).to.equal(0);
    });
  }
});

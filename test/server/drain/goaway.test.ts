/**
 * Http2Sessions alone, on a real h2c server and Node's client: the graceful
 * GOAWAY lets the streams in flight finish, then closes the session.
 */
import { expect } from 'chai';
import http2 from 'node:http2';
import type net from 'node:net';
import { once } from 'node:events';
import { Http2Sessions } from '../../../src/server/drain/goaway.js';
import { until } from '../../helpers.js';

describe('drain/goaway: Http2Sessions', function () {
  this.timeout(10_000);
  let server: http2.Http2Server | null = null;
  afterEach(() => server?.close());

  it('counts open streams; goawayAll announces the shutdown with the largest stream id, lets a stream in flight finish, then closes', async () => {
    const sessions = new Http2Sessions();
    const answers: (() => void)[] = [];
    server = http2.createServer();
    server.on('session', (s) => sessions.add(s));
    server.on('stream', (stream) => answers.push(() => {
      stream.respond({ ':status': 200 });
      stream.end('done');
    }));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const client = http2.connect(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`);
    const goaways: number[] = [];
    client.on('goaway', (_code: number, lastStreamId: number) => goaways.push(lastStreamId));
    const req = client.request({ ':path': '/' });
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    await until(() => answers.length === 1);
    expect(sessions.openStreams()).to.equal(1);
    sessions.goawayAll(50);
    await until(() => goaways.length >= 1);
    expect(goaways[0]).to.equal(2 ** 31 - 1);
    answers[0]!();
    await once(req, 'close');
    expect(body).to.equal('done');
    await until(() => client.closed || client.destroyed);
    expect(sessions.openStreams()).to.equal(0);
    client.destroy();
  });
});

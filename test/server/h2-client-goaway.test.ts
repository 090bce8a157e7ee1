/**
 * Why a few HTTP/2 streams are still refused at a redeploy: the client's own
 * rule, shown with Node's client (nghttp2) and a GOAWAY that refuses nothing
 * (last stream id 2^31-1). RFC 9113 section 6.8: a client that received a
 * GOAWAY must not open streams on that connection. nghttp2 applies it when it
 * serializes a request: a stream the application opened (session.request())
 * but nghttp2 had not sent yet when it parsed the GOAWAY is closed with
 * REFUSED_STREAM on the client side and never sent. The server never sees it,
 * so no last stream id and no timing of the server's can take it back. Node's
 * client does not retry it.
 */
import { expect } from 'chai';
import http2 from 'node:http2';
import net from 'node:net';
import { once } from 'node:events';

const MAX_STREAM_ID = 2 ** 31 - 1;

/**
 * react opens a stream, and a second one as soon as the first one's response
 * is read (as a load loop does), against a server that sends the GOAWAY
 * after or before that response, in one write. It resolves with what became
 * of the second stream and how many streams the server saw.
 */
async function react(goaway: 'after' | 'before'): Promise<{ opened: boolean; rstCode?: number; seen: number }> {
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session) => sessions.add(session));
  let seen = 0;
  server.on('stream', (stream, headers) => {
    seen++;
    if (headers[':path'] !== '/first') return stream.respond({ ':status': 200 }, { endStream: true });
    if (goaway === 'before') stream.session!.goaway(http2.constants.NGHTTP2_NO_ERROR, MAX_STREAM_ID);
    stream.respond({ ':status': 200 }, { endStream: true });
    if (goaway === 'after') stream.session!.goaway(http2.constants.NGHTTP2_NO_ERROR, MAX_STREAM_ID);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = http2.connect(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`);
  try {
    const first = client.request({ ':path': '/first' });
    first.end();
    const second = await new Promise<http2.ClientHttp2Stream | null>((resolve) => {
      first.once('response', () => {
        // The load loop's reaction: a next stream, unless the session is known to be going away.
        if (client.closed) return resolve(null);
        const s = client.request({ ':path': '/second' });
        s.on('error', () => undefined);
        s.end();
        resolve(s);
      });
    });
    first.resume();
    if (!second) return { opened: false, seen };
    await new Promise((resolve) => second.once('close', resolve)); // its 'error' is the refusal itself
    return { opened: true, rstCode: second.rstCode, seen };
  } finally {
    client.destroy();
    for (const session of sessions) session.destroy();
    await new Promise((r) => server.close(r));
  }
}

describe('HTTP/2: what a client does with a GOAWAY that refuses nothing', () => {
  it('a stream the client opens in reaction to a response read just before the GOAWAY is refused by the client itself, never sent', async () => {
    for (let i = 0; i < 5; i++) {
      expect(await react('after')).to.deep.equal({ opened: true, rstCode: http2.constants.NGHTTP2_REFUSED_STREAM, seen: 1 });
    }
  });

  it('read before the response, the GOAWAY tells the client in time: it opens nothing, nothing is refused', async () => {
    for (let i = 0; i < 5; i++) expect(await react('before')).to.deep.equal({ opened: false, seen: 1 });
  });
});

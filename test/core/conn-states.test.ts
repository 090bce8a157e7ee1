/** conn-states.ts: connections by drain state, and the words status uses for them. */
import { expect } from 'chai';
import { describeStates, emptyStates } from '../../src/conn-states.js';

describe('conn-states', () => {
  it('emptyStates has every key at zero, a new object each call', () => {
    const a = emptyStates();
    expect(a).to.deep.equal({ idle: 0, headers: 0, request: 0, pipelined: 0, upgraded: 0, http2: 0, http2Streams: 0, tlsHandshake: 0, tlsBeforeRequest: 0, other: 0, handingOver: 0 });
    a.idle = 5;
    expect(emptyStates().idle).to.equal(0);
  });

  it('describeStates names the states that are not zero, in a fixed order', () => {
    expect(describeStates(emptyStates())).to.equal('');
    expect(describeStates({ ...emptyStates(), idle: 2, request: 1, http2: 1, http2Streams: 3 })).to.equal(
      '2 idle, 1 in a request, 1 HTTP/2 session(s) with 3 stream(s)',
    );
    expect(describeStates({ idle: 1, headers: 1, request: 1, pipelined: 1, upgraded: 1, http2: 2, http2Streams: 0, tlsHandshake: 1, tlsBeforeRequest: 1, other: 1, handingOver: 1 })).to.equal(
      '1 idle, 1 receiving request headers, 1 in a request, 1 with pipelined requests, 1 upgraded, 2 HTTP/2 session(s) with 0 stream(s), ' +
        '1 in a TLS handshake, 1 TLS with no request yet, 1 of another protocol, 1 being handed over',
    );
    expect(describeStates({ ...emptyStates(), http2Streams: 4 })).to.equal(''); // streams are told with their sessions
  });
});

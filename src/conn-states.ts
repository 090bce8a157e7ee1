/**
 * ConnectionStates: how many connections of a listener are in each drain
 * state, and the words status uses for them.
 */

/**
 * ConnectionStates: the open connections of one listener by state, for
 * status (every key is always there).
 */
export interface ConnectionStates {
  /** HTTP/1: no request under way and nothing of a next one read (also a new connection with no request yet). */
  idle: number;
  /** HTTP/1: bytes of a request read, its headers not complete yet. */
  headers: number;
  /** HTTP/1: one request under way (a pending `100-continue` too). */
  request: number;
  /** HTTP/1: more than one request read and not yet answered. */
  pipelined: number;
  /** Upgraded (WebSocket, CONNECT): the application's. */
  upgraded: number;
  /** HTTP/2 sessions. */
  http2: number;
  /** Streams open on those sessions. */
  http2Streams: number;
  /** TLS handshake under way. */
  tlsHandshake: number;
  /** TLS handshake done, no request yet. */
  tlsBeforeRequest: number;
  /** Another protocol (a plain net.Server or tls.Server). */
  other: number;
  /** Being passed to the new instance (handOver). */
  handingOver: number;
}

/** emptyStates: a ConnectionStates of zeros. */
export function emptyStates(): ConnectionStates {
  return { idle: 0, headers: 0, request: 0, pipelined: 0, upgraded: 0, http2: 0, http2Streams: 0, tlsHandshake: 0, tlsBeforeRequest: 0, other: 0, handingOver: 0 };
}

const WORDS: [keyof ConnectionStates, string][] = [
  ['idle', 'idle'],
  ['headers', 'receiving request headers'],
  ['request', 'in a request'],
  ['pipelined', 'with pipelined requests'],
  ['upgraded', 'upgraded'],
  ['http2', 'HTTP/2 session(s)'],
  ['tlsHandshake', 'in a TLS handshake'],
  ['tlsBeforeRequest', 'TLS with no request yet'],
  ['other', 'of another protocol'],
  ['handingOver', 'being handed over'],
];

/** describeStates: the states that are not zero, for people ("2 idle, 1 in a request, 1 HTTP/2 session(s) with 3 stream(s)"). */
export function describeStates(states: ConnectionStates): string {
  const parts: string[] = [];
  for (const [key, words] of WORDS) {
    if (states[key] === 0) continue;
    parts.push(key === 'http2' ? `${states.http2} ${words} with ${states.http2Streams} stream(s)` : `${states[key]} ${words}`);
  }
  return parts.join(', ');
}

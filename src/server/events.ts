/**
 * The events a GracefulServer emits, in one list: the engine's emit() takes
 * only these names, and docs/api.md has a heading for each
 * (test/examples/api-doc.test.ts checks it).
 */
export const SERVER_EVENTS = [
  'ready', // ready() finished: this instance serves
  'runlevel', // (level) a runlevel was entered, 0 at a halt
  'redeploy', // (RedeployEvent) a step of a redeploy, in this (the old) instance
  'draining', // (open connections) the drain of a redeploy began
  'halt', // ({ forced, handedOverTo }) this instance halted
  'takeback', // ({ pid, lost }) the new instance died in the take-back window: this one serves again
  'adopt', // (net.Socket) a connection the predecessor handed over (handOver: true)
  'adopt-socket', // (AdoptedSocket) a socket the predecessor's application handed over with its state
  'ticketkeys', // ({ listener, rotations }) a TLS listener's session-ticket keys rotated
  'worker', // (WorkerInfo) a worker of this primary changed state
] as const;

export type ServerEvent = typeof SERVER_EVENTS[number];

/**
 * askWorkers over real links (socket pairs, both ends here): ready workers
 * are asked and answer by slot, a worker that fails the operation gives its
 * coded error, an unresponsive one is not asked, a starting one is left out;
 * a stats answer updates the link's connection count.
 */
import { expect } from 'chai';
import { askWorkers } from '../../src/workers/fan-out.js';
import { makeSlots } from '../../src/workers/slots.js';
import { PrimaryLink, serveLink } from '../../src/workers/worker-link.js';
import { socketPair } from '../../src/workers/socket-pair.js';

function linked(stats: () => unknown): { primary: PrimaryLink; close(): void } {
  const pair = socketPair('graceful:link');
  const primary = new PrimaryLink(pair.write.take(), 'worker', () => undefined, () => undefined);
  const worker = serveLink(pair.read.take(), { stats: stats as never, task: async () => null, run: async () => null }, () => undefined);
  return { primary, close: () => { primary.close(); worker.close(); } };
}

describe('workers/fan-out: askWorkers', () => {
  it('asks the ready workers by slot; errors are coded; unresponsive and starting ones are not asked', async () => {
    const slots = makeSlots(4);
    const links = [linked(() => ({ connections: 3 })), linked(() => { throw Object.assign(new Error('broken'), { code: 'ERR_X' }); }), linked(() => ({})), linked(() => ({}))];
    slots.forEach((s, i) => { s.link = links[i]!.primary; });
    slots[0]!.move('starting'); slots[0]!.move('ready');
    slots[1]!.move('starting'); slots[1]!.move('ready');
    slots[2]!.move('starting'); slots[2]!.move('ready'); slots[2]!.move('unresponsive');
    slots[2]!.silentSince = Date.parse('2026-01-01T00:00:00Z');
    slots[3]!.move('starting');
    try {
      const answers = await askWorkers(slots, 'stats', {});
      expect(answers.map((a) => a.id)).to.deep.equal([0, 1, 2]);
      expect(answers[0]).to.deep.include({ id: 0, result: { connections: 3 } });
      expect(links[0]!.primary.connections).to.equal(3);
      expect(answers[1]!.error).to.include({ code: 'ERR_X' });
      expect(answers[1]!.error!.message).to.match(/broken/);
      expect(answers[2]!.error).to.deep.equal({ code: 'ERR_GRACEFUL_WORKER_FAILED', message: 'worker 2 (pid null) does not respond (silent since 2026-01-01T00:00:00.000Z)' });
    } finally {
      for (const l of links) l.close();
    }
  });
});

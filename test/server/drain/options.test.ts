/** checkDrainOptions: the drain options of listen() are checked, each with its own message. */
import { expect } from 'chai';
import { addMoved, checkDrainOptions, type DrainOptions } from '../../../src/server/drain/options.js';

describe('drain/options: checkDrainOptions', () => {
  it('accepts no options, and each option of the right type', () => {
    for (const ok of [{}, { upgradedTimeout: 0 }, { upgradedTimeout: 2_500 }, { handOver: true, handOverSockets: false }, { onDrain: () => undefined }]) {
      expect(() => checkDrainOptions(ok)).not.to.throw();
    }
  });

  const bad: [string, unknown, string][] = [
    ['upgradedTimeout', -1, 'listen: upgradedTimeout must be a number of ms >= 0, got -1'],
    ['upgradedTimeout', Infinity, 'listen: upgradedTimeout must be a number of ms >= 0, got Infinity'],
    ['upgradedTimeout', '5', 'listen: upgradedTimeout must be a number of ms >= 0, got 5'],
    ['handOver', 'yes', 'listen: handOver must be true or false, got yes'],
    ['handOverSockets', 1, 'listen: handOverSockets must be true or false, got 1'],
    ['onDrain', 'close', 'listen: onDrain must be a function (it receives the upgraded connections when a drain starts)'],
  ];
  for (const [key, value, message] of bad) {
    it(`refuses ${key}: ${String(value)} with ERR_GRACEFUL_INVALID_ARGUMENT`, () => {
      expect(() => checkDrainOptions({ [key]: value } as DrainOptions)).to.throw(message).with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    });
  }
});

describe('drain/options: addMoved', () => {
  it('adds each count of the second to the first, and returns the first', () => {
    const a = { handedOver: 1, drained: 2, forced: 3 };
    const b = { handedOver: 10, drained: 20, forced: 30 };
    expect(addMoved(a, b)).to.equal(a);
    expect(a).to.deep.equal({ handedOver: 11, drained: 22, forced: 33 });
    expect(b).to.deep.equal({ handedOver: 10, drained: 20, forced: 30 });
  });
});

/** Unit tests of the meta value model: what a Meta may hold. */
import { expect } from 'chai';
import { isMeta, isMetaValue } from '../../src/meta-value.js';

describe('meta values', () => {
  it('isMetaValue: strings, finite numbers, booleans and null', () => {
    for (const v of ['', 'x', 0, -1.5, true, false, null]) expect(isMetaValue(v), String(v)).to.equal(true);
    for (const v of [NaN, Infinity, undefined, {}, [], () => 1, 1n]) expect(isMetaValue(v), String(v)).to.equal(false);
  });

  it('isMeta: a plain or null-prototype object only', () => {
    expect(isMeta({})).to.equal(true);
    expect(isMeta(Object.create(null))).to.equal(true);
    for (const v of [null, [], 'a', 1, new Date(), new Map()]) expect(isMeta(v), String(v)).to.equal(false);
  });

  it('isMeta looks at own enumerable properties only', () => {
    const withHidden = Object.defineProperty({ a: 1 }, 'b', { value: { nested: true }, enumerable: false });
    expect(isMeta(withHidden)).to.equal(true);
    const noProto = Object.assign(Object.create(null) as object, { a: 'x', b: null });
    expect(isMeta(noProto)).to.equal(true);
    expect(isMeta({ a: 1, b: undefined })).to.equal(false);
    expect(isMeta({ a: 1, b: () => 1 })).to.equal(false);
    expect(isMeta({ [Symbol('s')]: {}, a: true })).to.equal(true);
  });
});

/**
 * Property-based tests of the two parsers that read what other processes send:
 * the hand-off frame decoder and the control-line parser. Thousands of cases;
 * only coded errors may come out, and every descriptor pushed into the
 * decoder comes out exactly once (in a record, or from takeFds for closing).
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { FrameDecoder, encodeMessages, GracefulError, type FrameRecord } from '../../src/handoff.js';
import { parseRequest, tokenize } from '../../src/control/parse.js';
import { quote } from '../../src/control/parse.js';

const CODED = new Set(['ERR_GRACEFUL_BAD_FRAME', 'ERR_GRACEFUL_FD_COUNT_MISMATCH', 'ERR_GRACEFUL_TRUNCATED_MESSAGE']);

/** A read: some bytes and some (fake, unique) descriptor numbers. */
const readArb = fc.record({
  bytes: fc.uint8Array({ maxLength: 300 }),
  nfds: fc.nat({ max: 4 }),
  filled: fc.boolean(),
});

describe('fuzz: frame decoder', () => {
  it('pushGiven (the reads end to end in one buffer, no copy) agrees with pushTo, record for record and error for error', () => {
    fc.assert(fc.property(fc.array(readArb, { maxLength: 12 }), (reads) => {
      /** run decodes the reads one way; the records' fd and bytes, then the error's code or 'ok'. */
      const run = (given: boolean): string[] => {
        const d = new FrameDecoder(1024);
        const all = Buffer.concat(reads.map((r) => r.bytes));
        const out: FrameRecord[] = [];
        let next = 1000;
        let at = 0;
        try {
          for (const r of reads) {
            const fds = Array.from({ length: r.nfds }, () => next++);
            if (given) d.pushGiven(all, at, r.bytes.length, fds, r.filled, out);
            else d.pushTo(r.bytes, fds, r.filled, out);
            at += r.bytes.length;
          }
          return [...out.map((x) => `${x.fd}:${x.raw.toString('hex')}`), 'ok'];
        } catch (err) {
          return [...out.map((x) => `${x.fd}:${x.raw.toString('hex')}`), (err as GracefulError).code, ...d.takeFds().map(String)];
        }
      };
      expect(run(true)).to.deep.equal(run(false));
    }), { numRuns: 2000 });
  });

  it('random reads: only coded errors, and every descriptor accounted for exactly once', () => {
    fc.assert(fc.property(fc.array(readArb, { maxLength: 12 }), fc.boolean(), (reads, end) => {
      const d = new FrameDecoder(1024);
      let next = 1000;
      const pushed: number[] = [];
      const out: number[] = [];
      let failed = false;
      for (const r of reads) {
        const fds = Array.from({ length: r.nfds }, () => next++);
        pushed.push(...fds);
        try {
          for (const rec of d.push(r.bytes, fds, r.filled)) out.push(rec.fd);
        } catch (err) {
          expect(err).to.be.instanceOf(GracefulError);
          expect(CODED.has((err as GracefulError).code), (err as Error).message).to.equal(true);
          failed = true;
          break;
        }
      }
      if (!failed && end) {
        try {
          d.end();
        } catch (err) {
          expect(CODED.has((err as GracefulError).code)).to.equal(true);
        }
      }
      out.push(...d.takeFds());
      // Handed out in a record or handed back for closing: each one exactly once.
      expect([...out].sort((a, b) => a - b)).to.deep.equal(pushed);
    }), { numRuns: 3000 });
  });

  it('valid batches cut into any reads decode to the same records, in order', () => {
    const metaArb = fc.oneof(fc.constant(''), fc.json({ maxDepth: 0 }), fc.string({ maxLength: 200 }));
    fc.assert(fc.property(fc.array(metaArb, { minLength: 1, maxLength: 40 }), fc.array(fc.nat({ max: 5000 }), { maxLength: 8 }),
      (metas, cuts) => {
        const messages = encodeMessages(metas.map((m, i) => ({ fd: i, meta: Buffer.from(m) })), 512, 7);
        const d = new FrameDecoder();
        const got: [number, string][] = [];
        for (const m of messages) {
          // cut each message's bytes at the given points; the descriptors ride on the first piece
          const points = [...new Set(cuts.map((c) => c % (m.data.length + 1)))].sort((a, b) => a - b);
          let prev = 0;
          let first = true;
          for (const p of [...points, m.data.length]) {
            if (p <= prev && !(first && p === m.data.length)) continue;
            const piece = m.data.subarray(prev, p);
            const last = p === m.data.length;
            for (const r of d.push(piece, first ? m.fds : [], !last)) got.push([r.fd, r.raw.toString()]);
            first = false;
            prev = p;
          }
        }
        d.end();
        expect(got).to.deep.equal(metas.map((m, i) => [i, m]));
      }), { numRuns: 2000 });
  });
});

describe('fuzz: control-line parser', () => {
  it('any line: a request, null, or a coded parse error; never anything else', () => {
    fc.assert(fc.property(fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 200 }), fc.json()), (line) => {
      try {
        const req = parseRequest(line);
        if (req) {
          expect(req.cmd).to.be.a('string').and.not.equal('');
          expect(req.args.every((a) => typeof a === 'string')).to.equal(true);
        }
      } catch (err) {
        expect((err as GracefulError).code, (err as Error).message).to.equal('ERR_GRACEFUL_CONTROL_PARSE');
      }
    }), { numRuns: 5000 });
  });

  it('quote and tokenize are inverses for any words', () => {
    fc.assert(fc.property(fc.array(fc.string({ maxLength: 20 }).filter((w) => !/[\n\r]/.test(w)), { maxLength: 8 }), (words) => {
      expect(tokenize(quote(words))).to.deep.equal(words);
    }), { numRuns: 3000 });
  });
});

/**
 * server/runlevels.ts: telinit over a real lifecycle and listener set. 1
 * drains (the forced count logged), 3 listens again, each with its hooks and
 * its event; 0 is the instance's stop; a bad level, a refusal of the role and
 * a level before ready reject with their codes.
 */
import { expect } from 'chai';
import { Lifecycle } from '../../src/server/lifecycle.js';
import { Listeners } from '../../src/server/listener-set.js';
import type { Runlevel } from '../../src/server/options.js';
import type { Role } from '../../src/server/role.js';
import { Runlevels } from '../../src/server/runlevels.js';
import { InvalidRunlevelError, NotPrimaryError } from '../../src/errors.js';

function setup(refusal: Error | null = null, forced = 0) {
  const lifecycle = new Lifecycle();
  const said: string[] = [];
  const entered: Runlevel[] = [];
  const drains: boolean[] = [];
  let stops = 0;
  const runlevels = new Runlevels({
    lifecycle,
    role: { refuse: () => refusal } as unknown as Role,
    listeners: new Listeners(),
    log: (m) => said.push(m),
    entered: (l) => entered.push(l),
    drain: async (release) => (drains.push(release), forced),
    stop: async () => void stops++,
  });
  return { lifecycle, runlevels, said, entered, drains, stops: () => stops };
}

const codeOf = (p: Promise<unknown>) => p.then(() => null, (e: { code?: string }) => e.code);

describe('server/runlevels', () => {
  it('1 drains and releases, 3 listens again: each runs its hooks in order, then says so', async () => {
    const s = setup(null, 2);
    s.lifecycle.to('ready');
    const ran: string[] = [];
    s.runlevels.onRunlevel(1, () => void ran.push('1a'));
    s.runlevels.onRunlevel(1, async () => void ran.push('1b'));
    s.runlevels.onRunlevel(3, (l) => void ran.push(`3:${l}`));
    await s.runlevels.telinit('1');
    expect(s.lifecycle.level).to.equal(1);
    expect(s.drains).to.deep.equal([true]);
    expect(s.said).to.deep.equal(['runlevel 1: closed 2 connection(s) still open at their deadline (the shutdown timeout, or upgradedTimeout for upgraded connections)', 'runlevel 1']);
    await s.runlevels.telinit(1); // already there: nothing runs
    await s.runlevels.telinit(3);
    expect(s.lifecycle.level).to.equal(3);
    expect(ran).to.deep.equal(['1a', '1b', '3:3']);
    expect(s.entered).to.deep.equal([1, 3]);
    expect(s.stops()).to.equal(0);
  });

  it('0 is the stop; a level that is none, a refusal of the role and a level before ready reject with their codes', async () => {
    const s = setup();
    expect(await codeOf(s.runlevels.telinit(1))).to.equal('ERR_GRACEFUL_NOT_READY');
    s.lifecycle.to('ready');
    expect(await codeOf(s.runlevels.telinit(2))).to.equal(new InvalidRunlevelError('x').code);
    expect(() => s.runlevels.onRunlevel(7 as Runlevel, () => undefined)).to.throw().with.property('code', 'ERR_GRACEFUL_INVALID_RUNLEVEL');
    await s.runlevels.telinit(0);
    expect(s.stops()).to.equal(1);
    const refused = setup(new NotPrimaryError('telinit: not here'));
    refused.lifecycle.to('ready');
    expect(await codeOf(refused.runlevels.telinit(1))).to.equal('ERR_GRACEFUL_NOT_PRIMARY');
    expect(refused.drains).to.deep.equal([]);
  });

  it('a hook that throws rejects the telinit, after the level changed', async () => {
    const s = setup();
    s.lifecycle.to('ready');
    s.runlevels.onRunlevel(1, () => {
      throw new Error('hook failed');
    });
    expect(await s.runlevels.telinit(1).then(() => null, (e: Error) => e.message)).to.equal('hook failed');
    expect(s.lifecycle.level).to.equal(1);
  });
});

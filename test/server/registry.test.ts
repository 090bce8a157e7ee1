/** server/registry.ts: the named descriptors of an instance (inherited, activated, registered). */
import { expect } from 'chai';
import fs from 'node:fs';
import { Registry, type Claimed } from '../../src/server/registry.js';
import { fdCount } from '../helpers.js';

const devNull = (): number => fs.openSync('/dev/null', 'r');
const isOpen = (fd: number): boolean => fs.existsSync(`/proc/self/fd/${fd}`);

describe('server/registry', () => {
  let before: number;
  beforeEach(() => {
    before = fdCount();
  });

  it('inherit keeps descriptors by name until claimed; a name twice: the first wins, the second is closed', () => {
    const r = new Registry();
    const a = devNull();
    const dup = devNull();
    const b = devNull();
    r.inherit([
      { fd: a, meta: { name: 'http', kind: 'listener' } },
      { fd: dup, meta: { name: 'http', kind: 'listener' } },
      { fd: b, meta: { name: 'log', kind: 'file' } },
    ]);
    expect(isOpen(dup)).to.equal(false);
    expect(r.inheritedCount).to.equal(2);
    const logs: string[] = [];
    const c = r.claim('http', 'listener', (m) => logs.push(m))!;
    expect(c.source).to.equal('predecessor');
    expect(c.fd.fd).to.equal(a);
    expect(r.inheritedCount).to.equal(1);
    expect(r.claim('http', 'listener', (m) => logs.push(m))).to.equal(undefined); // claimed once only
    expect(logs).to.deep.equal([]);
    c.fd.close();
    expect(r.closeUnclaimed()).to.deep.equal({ count: 1, names: ['log'] });
    expect(isOpen(b)).to.equal(false);
    expect(fdCount()).to.equal(before);
  });

  it('claim closes a descriptor of another kind, or one accept refuses, and says why', () => {
    const r = new Registry();
    const a = devNull();
    const b = devNull();
    r.inherit([{ fd: a, meta: { name: 'x', kind: 'file' } }, { fd: b, meta: { name: 'y', kind: 'listener' } }]);
    const logs: string[] = [];
    expect(r.claim('x', 'listener', (m) => logs.push(m))).to.equal(undefined);
    expect(isOpen(a)).to.equal(false);
    let offered: Claimed | undefined;
    expect(r.claim('y', 'listener', (m) => logs.push(m), (c) => {
      offered = c;
      return false;
    })).to.equal(undefined);
    expect(offered!.fd.open).to.equal(false);
    expect(isOpen(b)).to.equal(false);
    expect(logs).to.deep.equal([
      'inherited "x" is a file, not a listener: closed it, opening afresh',
      'inherited listener "y" is bound elsewhere than asked: closed it, opening afresh',
    ]);
    expect(r.inheritedCount).to.equal(0);
    expect(fdCount()).to.equal(before);
  });

  it('activated sockets serve a listener claim when nothing was inherited; an inherited systemd one keeps its source', () => {
    const r = new Registry();
    const s1 = devNull();
    const s1dup = devNull();
    const s2 = devNull();
    const s3 = devNull();
    r.activate([{ fd: s1, name: 'web' }, { fd: s1dup, name: 'web' }, { fd: s2, name: 'other' }]);
    expect(isOpen(s1dup)).to.equal(false);
    r.inherit([{ fd: s3, meta: { name: 'sd', kind: 'listener', systemd: true } }]);
    const log = (): void => undefined;
    expect(r.claim('web', 'file', log)).to.equal(undefined); // activated sockets are listeners only
    const web = r.claim('web', 'listener', log)!;
    expect(web.source).to.equal('systemd');
    expect(web.fd.fd).to.equal(s1);
    expect(web.fd.meta).to.deep.equal({ name: 'web', kind: 'listener', systemd: true });
    expect(r.claim('sd', 'listener', log)!.source).to.equal('systemd');
    const other = r.takeActivated('other')!;
    expect(other.fd).to.equal(s2);
    expect(r.takeActivated('other')).to.equal(undefined);
    web.fd.close();
    other.close();
    fs.closeSync(s3);
    expect(r.closeUnclaimed()).to.deep.equal({ count: 0, names: [] });
    expect(fdCount()).to.equal(before);
  });

  it('control connections are kept apart and handed out once; closeUnclaimed closes the ones left', () => {
    const r = new Registry();
    const c1 = devNull();
    const c2 = devNull();
    r.inherit([{ fd: c1, meta: { kind: 'control-conn', name: 'c' } }, { fd: c2, meta: { kind: 'control-conn', name: 'c' } }]);
    expect(r.inheritedCount).to.equal(0);
    const conns = r.takeConnections();
    expect(conns.map((c) => c.fd)).to.deep.equal([c1, c2]);
    expect(r.takeConnections()).to.deep.equal([]);
    for (const c of conns) c.close();

    const c3 = devNull();
    const act = devNull();
    r.inherit([{ fd: c3, meta: { kind: 'control-conn' } }]);
    r.activate([{ fd: act, name: 'web' }]);
    expect(r.closeUnclaimed()).to.deep.equal({ count: 2, names: ['web'] });
    expect(fdCount()).to.equal(before);
  });

  it('register lists what each registered thing hands over now; names are unique and non-empty', () => {
    const r = new Registry();
    let open = true;
    r.register('http', 'listener', () => (open ? { fd: 10, meta: { name: 'http' } } : null));
    r.register('log', 'file', () => ({ fd: 11 }));
    expect(r.handoffList()).to.deep.equal([{ fd: 10, meta: { name: 'http' } }, { fd: 11 }]);
    open = false;
    expect(r.handoffList()).to.deep.equal([{ fd: 11 }]);
    expect(() => r.register('http', 'dgram', () => null)).to.throw('"http" is already registered: give each listener, socket and file its own name')
      .with.property('code', 'ERR_GRACEFUL_DUPLICATE_NAME');
    expect(() => r.register('', 'fd', () => null)).to.throw('GracefulServer: a name must be a non-empty string')
      .with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    expect(() => r.register(3 as never, 'fd', () => null)).to.throw('GracefulServer: a name must be a non-empty string');
  });
});

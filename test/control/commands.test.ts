/** control/commands.ts: the command registry (names, aliases, the fallback, usage list). */
import { expect } from 'chai';
import { CommandRegistry, type Command } from '../../src/control/commands.js';

const cmd = (usage: string, extra: Partial<Command> = {}): Command => ({ usage, run: () => usage, ...extra });

describe('control/commands', () => {
  it('add registers commands; get finds them by name or alias; has and names see both', () => {
    const r = new CommandRegistry();
    const status = cmd('status   show the state');
    r.add('status', status);
    r.add('x.y-z_1', cmd('x.y-z_1'));
    r.alias('st', 'status');
    expect(r.get('status')).to.deep.equal({ name: 'status', command: status });
    expect(r.get('st')).to.deep.equal({ name: 'status', command: status });
    expect(r.has('status')).to.equal(true);
    expect(r.has('st')).to.equal(true);
    expect(r.has('nope')).to.equal(false);
    expect(r.names()).to.deep.equal(['st', 'status', 'x.y-z_1']);
  });

  it('get refuses an unknown command with ERR_GRACEFUL_UNKNOWN_COMMAND (the name cut at 64 characters)', () => {
    const r = new CommandRegistry();
    expect(() => r.get('frob')).to.throw('unknown command "frob": type help for the list')
      .with.property('code', 'ERR_GRACEFUL_UNKNOWN_COMMAND');
    const long = 'a'.repeat(100);
    expect(() => r.get(long)).to.throw(`unknown command "${'a'.repeat(64)}": type help for the list`);
    r.alias('dangling', 'missing');
    expect(() => r.get('dangling')).to.throw('unknown command "dangling": type help for the list');
  });

  it('an unavailable command is refused with what it needs (ERR_GRACEFUL_NOT_CONFIGURED), until one of that name is added', () => {
    const r = new CommandRegistry();
    r.unavailable('scale', 'scale: this service runs without workers');
    expect(() => r.get('scale')).to.throw('scale: this service runs without workers').with.property('code', 'ERR_GRACEFUL_NOT_CONFIGURED');
    expect(r.has('scale')).to.equal(false);
    r.add('scale', { usage: 'scale', run: () => 'mine' });
    expect(r.get('scale').name).to.equal('scale');
  });

  it('a typo gets the nearest command suggested; a dangling alias is not its own suggestion', () => {
    const r = new CommandRegistry();
    for (const n of ['status', 'stats', 'help']) r.add(n, { usage: n, run: () => undefined });
    expect(() => r.get('stauts')).to.throw('unknown command "stauts": did you mean status? type help for the list');
    expect(() => r.get('hlep')).to.throw('unknown command "hlep": did you mean help? type help for the list');
  });

  it('the fallback runs every command that is not registered, under its own name', () => {
    const r = new CommandRegistry();
    const fb = cmd('forwarded');
    r.fallback = fb;
    r.add('local', cmd('local'));
    expect(r.get('anything')).to.deep.equal({ name: 'anything', command: fb });
    expect(r.get('local').command.usage).to.equal('local');
    expect(r.has('anything')).to.equal(false);
  });

  it('add refuses bad names, commands without usage or run, and a non-boolean persistent', () => {
    const r = new CommandRegistry();
    for (const name of ['', '1abc', '-x', 'a b', 'a/b', 'é']) {
      expect(() => r.add(name, cmd('u'))).to.throw(`command: a command name must match /^[A-Za-z][\\w.-]*$/, got ${JSON.stringify(name)}`)
        .with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    }
    expect(() => r.add(5 as never, cmd('u'))).to.throw(/a command name must match .*, got 5$/);
    expect(() => r.add('a', { usage: 'a' } as never)).to.throw('command: "a" needs a usage line and a run(ctx) function')
      .with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    expect(() => r.add('a', { run: () => 1 } as never)).to.throw('command: "a" needs a usage line and a run(ctx) function');
    expect(() => r.add('a', null as never)).to.throw('command: "a" needs a usage line and a run(ctx) function');
    expect(() => r.add('a', cmd('a', { persistent: 'yes' as never }))).to.throw('command: "a": persistent must be true or false, got "yes"');
    expect(r.names()).to.deep.equal([]);
  });

  it('add refuses a name taken by a command or an alias with ERR_GRACEFUL_DUPLICATE_NAME', () => {
    const r = new CommandRegistry();
    r.add('status', cmd('status'));
    r.alias('st', 'status');
    expect(() => r.add('status', cmd('other'))).to.throw('the command "status" exists already: choose another name')
      .with.property('code', 'ERR_GRACEFUL_DUPLICATE_NAME');
    expect(() => r.add('st', cmd('other'))).to.throw('the command "st" exists already: choose another name');
    expect(r.get('status').command.usage).to.equal('status');
  });

  it('list gives every usage line sorted by name, with its aliases', () => {
    const r = new CommandRegistry();
    r.add('zeta', cmd('zeta     last'));
    r.add('alpha', cmd('alpha    first'));
    r.add('mid', cmd('mid      middle'));
    r.alias('z', 'zeta');
    r.alias('omega', 'zeta');
    expect(r.list()).to.deep.equal(['alpha    first', 'mid      middle', 'zeta     last  (also: z, omega)']);
  });
});

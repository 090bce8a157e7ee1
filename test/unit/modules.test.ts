/** Unit tests of small modules: configuration files, hooks, /proc reading. */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../src/index.js';
import { root } from '../helpers.js';
import { Hooks } from '../../src/server/hooks.js';
import { childrenOf, isDescendant, stat } from '../../src/supervisor/procfs.js';
import { tmpDir, until } from '../helpers.js';

describe('loadConfig', () => {
  let dir: string;
  beforeEach(() => {
    dir = tmpDir();
  });
  const write = (name: string, text: string) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    return file;
  };

  it('replaces placeholders: a whole value becomes a number or boolean, inside a string stays text', () => {
    const file = write('a.json', JSON.stringify({ port: '{$PORT}', debug: '{$DEBUG}', url: 'http://{$HOST}:{$PORT}/', list: ['{$HOST}'], nested: { name: '{$HOST}' }, n: 3 }));
    expect(loadConfig(file, { PORT: '8080', DEBUG: 'true', HOST: 'example' })).to.deep.equal({
      port: 8080, debug: true, url: 'http://example:8080/', list: ['example'], nested: { name: 'example' }, n: 3,
    });
  });

  it('ERR_GRACEFUL_CONFIG naming the file and the place: a missing variable, bad JSON, not an object, no file', () => {
    const missing = write('m.json', JSON.stringify({ a: { b: ['x', '{$NOPE}'] } }));
    expect(() => loadConfig(missing, {})).to.throw(ConfigError, `${missing}: a.b[1] uses {$NOPE}, but NOPE is not set in the environment: set it, or change the file`)
      .with.property('code', 'ERR_GRACEFUL_CONFIG');
    const bad = write('b.json', '{ nope');
    expect(() => loadConfig(bad, {})).to.throw(ConfigError, `${bad}: not valid JSON: `);
    const list = write('l.json', '[1]');
    expect(() => loadConfig(list, {})).to.throw(ConfigError, `${list}: the configuration must be a JSON object`);
    const none = path.join(dir, 'none.json');
    expect(() => loadConfig(none, {})).to.throw(ConfigError, `${none}: cannot read the configuration file (ENOENT)`);
  });
});

describe('Hooks', () => {
  it('runs the hooks of a kind in registration order; the first error stops the run', async () => {
    const hooks = new Hooks();
    const seen: string[] = [];
    hooks.add('start', () => void seen.push('a'));
    hooks.add('start', async () => {
      await new Promise((r) => setImmediate(r));
      seen.push('b');
    });
    hooks.add('ready', () => {
      throw new Error('no');
    });
    hooks.add('ready', () => void seen.push('never'));
    await hooks.run('start');
    expect(seen).to.deep.equal(['a', 'b']);
    expect(await hooks.run('ready').then(() => null, (e: Error) => e.message)).to.equal('no');
    expect(seen).to.deep.equal(['a', 'b']);
    await hooks.run('terminate'); // none: nothing to do
  });

  it('runStop: done, the first error, or overran at the deadline with the signal aborted', async () => {
    const done = new Hooks();
    done.add('stop', () => undefined);
    expect(await done.runStop(Date.now() + 1000)).to.equal('done');
    const failing = new Hooks();
    failing.add('stop', () => {
      throw new Error('stop failed');
    });
    expect(((await failing.runStop(Date.now() + 1000)) as Error).message).to.equal('stop failed');
    const slow = new Hooks();
    let aborted: unknown = null;
    slow.add('stop', (signal) => new Promise<void>((resolve) => signal.addEventListener('abort', () => {
      aborted = signal.reason;
      resolve();
    })));
    expect(await slow.runStop(Date.now() + 50)).to.equal('overran');
    expect((aborted as Error).message).to.equal('the shutdown timeout passed');
  });
});

describe('procfs', () => {
  it('stat, isDescendant and childrenOf follow a real child until it is reaped', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    const pid = child.pid!;
    try {
      expect(stat(pid)).to.deep.include({ pid, ppid: process.pid });
      expect(isDescendant(pid, process.pid)).to.equal(true);
      expect(isDescendant(process.pid, pid)).to.equal(false);
      expect(childrenOf(process.pid).map((c) => c.pid)).to.include(pid);
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
    await until(() => stat(pid) === null, 5000, 'the child to be reaped');
    expect(isDescendant(pid, process.pid)).to.equal(false);
    expect(stat(2 ** 22 + 1)).to.equal(null);
  });

  it('stat reads a command name holding spaces and parentheses', async () => {
    const dir = tmpDir();
    const odd = path.join(dir, 'a) b (c');
    fs.symlinkSync('/bin/sleep', odd);
    const child = spawn(odd, ['30'], { stdio: 'ignore' });
    try {
      expect(stat(child.pid!)).to.deep.include({ pid: child.pid, ppid: process.pid });
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
  });
});

describe('entry points', () => {
  /** load imports an entry by the package's name, as a user does (a self-reference through package.json's exports). */
  const load = (entry: string) => import(entry) as Promise<Record<string, unknown>>;
  /** removedNames: the names docs/api.md's "removed from the package's exports" list gives, in backquotes. */
  function removedNames(): { moved: string[]; gone: string[] } {
    const readme = fs.readFileSync(path.join(root, 'docs/api.md'), 'utf8');
    const start = readme.indexOf("### Entry points, and what was removed from the package's exports");
    expect(start, 'docs/api.md lists what was removed').to.be.above(0);
    const list = readme.slice(start, readme.indexOf('\n#', start + 4)).split('\n- ').slice(1);
    const names = (item: string) => [...item.split(':')[0]!.matchAll(/`([A-Za-z_]+)`/g)].map((m) => m[1]!);
    return {
      moved: list.filter((i) => i.includes('in `graceful-restart/handoff`')).flatMap(names),
      gone: list.filter((i) => !i.includes('in `graceful-restart/handoff`')).flatMap(names),
    };
  }

  it('"." exports at most 60 runtime names besides error classes, and none the README says were removed', async () => {
    const main = await load('graceful-restart');
    const names = Object.keys(main);
    expect(names.filter((k) => !/Error$/.test(k)).length).to.be.at.most(60);
    const { moved, gone } = removedNames();
    expect(moved.length + gone.length).to.be.above(20);
    for (const name of [...moved, ...gone].filter((n) => !['HandoffResponse', 'ControlRequest', 'ControlRedeployEvent'].includes(n))) {
      expect(names, name).to.not.include(name);
    }
    expect(names).to.not.include('HandoffResponse');
  });

  it('"./handoff" (a self-reference through package.json\'s exports) has what moved, the same objects as "."', async () => {
    const main = await load('graceful-restart');
    const handoff = await load('graceful-restart/handoff');
    for (const name of removedNames().moved.filter((n) => n !== 'ControlRequest')) expect(handoff, name).to.have.property(name);
    for (const name of ['listenAndServe', 'receive', 'sendTo', 'receiveFrom', 'HandoffConnection', 'HandoffServer', 'listenerHandler',
      'sequenceHandler', 'fdOf', 'listenOnFd', 'serverFromFd', 'writeStreamFromFd', 'decodeGobMeta', 'encodeGobMeta', 'sendDatagram',
      'GracefulError', 'BadFrameError', 'BadMetaError']) {
      expect(handoff[name], name).to.be.a('function');
      expect(handoff[name], name).to.equal(main[name]);
    }
    for (const name of ['GracefulServer', 'Supervisor', 'ControlClient', 'ControlServer', 'takeListenFds']) expect(handoff, name).to.not.have.property(name);
  });

  it('"./handoff" loads nothing of server/, workers/, control/, supervisor/, cli/ (its compiled import closure)', () => {
    const dist = path.join(root, 'dist/src');
    const seen = new Set<string>();
    const todo = [path.join(dist, 'handoff.js')];
    while (todo.length > 0) {
      const file = todo.pop()!;
      if (seen.has(file)) continue;
      seen.add(file);
      const text = fs.readFileSync(file, 'utf8');
      for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s*['"](\.[^'"]+)['"]/g)) todo.push(path.resolve(path.dirname(file), m[1]!));
      for (const m of text.matchAll(/import\(\s*['"](\.[^'"]+)['"]\s*\)/g)) todo.push(path.resolve(path.dirname(file), m[1]!));
    }
    const loaded = [...seen].map((f) => path.relative(dist, f)).sort();
    expect(loaded).to.include.members(['handoff.js', 'handoff/server.js', 'handoff/client.js', 'wire.js', 'gob.js', 'meta.js', 'native.js']);
    expect(loaded.filter((f) => /^(server|workers|control|supervisor|cli)\/|^(graceful-server|index|cli)\.js$/.test(f))).to.deep.equal([]);
  });

  /** bundleClosure: the files of dist/bundle/ that entry imports statically, itself included. */
  function bundleClosure(entry: string): Set<string> {
    const seen = new Set<string>();
    const todo = [path.join(root, 'dist/bundle', entry)];
    while (todo.length > 0) {
      const file = todo.pop()!;
      if (seen.has(file)) continue;
      seen.add(file);
      for (const m of fs.readFileSync(file, 'utf8').matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s*['"](\.[^'"]+)['"]|(?:^|\n)\s*import\s*['"](\.[^'"]+)['"]/g)) {
        todo.push(path.resolve(path.dirname(file), (m[1] ?? m[2])!));
      }
    }
    return seen;
  }

  /** bundleDeclares: whether the static import closure of a file of dist/bundle/ declares each name (a class, var, let or const). */
  function bundleDeclares(entry: string, names: string[]): Record<string, boolean> {
    const text = [...bundleClosure(entry)].map((f) => fs.readFileSync(f, 'utf8')).join('\n');
    return Object.fromEntries(names.map((name) => [name, new RegExp(`\\b(?:class|var|let|const) ${name}\\b`).test(text)]));
  }

  it('the bundle (what the entries resolve to) exports exactly what dist/src/ does, under their own names; its hand-off entry loads no server code', async () => {
    for (const [entry, from] of [['index', 'index'], ['index-eager', 'index'], ['handoff', 'handoff']]) {
      const bundled = await import(path.join(root, `dist/bundle/${entry}.js`)) as Record<string, unknown>;
      const compiled = await import(path.join(root, `dist/src/${from}.js`)) as Record<string, unknown>;
      expect(Object.keys(bundled).sort(), entry).to.deep.equal(Object.keys(compiled).sort());
      for (const [k, v] of Object.entries(compiled)) expect(typeof bundled[k], `${entry}: ${k}`).to.equal(typeof v);
      // Classes and functions keep their names (stack traces, constructor.name): not `_GracefulServer`.
      const renamed = Object.entries(bundled).filter(([k, v]) => typeof v === 'function' && v.name !== k).map(([k, v]) => `${k} is ${(v as () => void).name}`);
      expect(renamed, entry).to.deep.equal([]);
    }
    const eager = await import(path.join(root, 'dist/bundle/index-eager.js')) as Record<string, unknown>;
    const main = await import(path.join(root, 'dist/bundle/index.js')) as Record<string, unknown>;
    for (const [k, v] of Object.entries(main)) expect(eager[k], k).to.equal(v);
    expect(bundleDeclares('handoff.js', ['HandoffServer', 'GracefulServer', 'Supervisor', 'ControlServer', 'PrimaryRole'])).to.deep.equal({
      HandoffServer: true, GracefulServer: false, Supervisor: false, ControlServer: false, PrimaryRole: false,
    });
  });

  it('the main entry loads the engine, the roles and the control socket of a service at the first GracefulServer, not at import', () => {
    expect(bundleDeclares('index.js', ['GracefulServer', 'Engine', 'Lifecycle', 'PrimaryRole', 'WorkerRole', 'SingleRole', 'ServiceControl', 'WorkerPool'])).to.deep.equal({
      GracefulServer: true, Engine: false, Lifecycle: false, PrimaryRole: false, WorkerRole: false, SingleRole: false, ServiceControl: false, WorkerPool: false,
    });
    expect(bundleDeclares('index-eager.js', ['Engine', 'PrimaryRole', 'ServiceControl'])).to.deep.equal({ Engine: true, PrimaryRole: true, ServiceControl: true });
    // A single instance loads no worker pool: the roles with workers are a module of their own.
    expect(bundleDeclares('control/service-parts.js', ['Engine', 'SingleRole', 'PrimaryRole', 'WorkerRole', 'WorkerPool'])).to.deep.equal({
      Engine: true, SingleRole: true, PrimaryRole: false, WorkerRole: false, WorkerPool: false,
    });
  });

  it('the main entry\'s import loads at most 5 files of the bundle, the hand-off entry\'s at most 4 (each file costs the loader)', () => {
    const closure = (entry: string) => bundleClosure(entry).size;
    expect(closure('index.js')).to.be.at.most(5);
    expect(closure('handoff.js')).to.be.at.most(4);
  });

  it('every module loaded where first used (src/lazy.ts) is a file of the bundle at its path, and the eager entry imports it', () => {
    const lazy: string[] = [];
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const file = path.join(dir, e.name);
        if (e.isDirectory()) walk(file);
        else if (e.name.endsWith('.ts')) for (const m of fs.readFileSync(file, 'utf8').matchAll(/^provide\('([^']+)'/gm)) lazy.push(m[1]!);
      }
    };
    walk(path.join(root, 'src'));
    expect(lazy.sort()).to.deep.equal(['control/service-parts.js', 'workers/role-parts.js']);
    const eager = fs.readFileSync(path.join(root, 'dist/bundle/index-eager.js'), 'utf8');
    for (const file of lazy) {
      expect(fs.existsSync(path.join(root, 'dist/bundle', file)), file).to.equal(true);
      expect(fs.existsSync(path.join(root, 'dist/src', file)), file).to.equal(true);
      expect(eager, file).to.include(`import './${file}';`);
    }
  });

  for (const [how, flags, entry] of [['with require() of ES modules', [], 'index.js'], ['without (the Node before 20.19 and 22.12)', ['--no-experimental-require-module'], 'index-eager.js']] as const) {
    it(`a GracefulServer made from the package's main entry works, its errors the classes the entry exports: ${how}`, async () => {
      // A self-reference through package.json's exports, so that Node picks the entry by its conditions.
      const program = [
        "import fs from 'node:fs';",
        "import { GracefulServer, NotReadyError, InvalidRunlevelError } from 'graceful-restart';",
        "const url = import.meta.resolve('graceful-restart');",
        'const app = new GracefulServer({ exitProcess: false, signals: false });',
        'const early = await app.redeploy().then(() => null, (e) => e);',
        "const level = await app.telinit('9').then(() => null, (e) => e);",
        "const server = await app.listen('web', (await import('node:net')).createServer((s) => s.end('hi')), { port: 0, host: '127.0.0.1' });",
        'await app.ready();',
        "console.log(JSON.stringify({ entry: url.slice(url.lastIndexOf('/') + 1), notReady: early instanceof NotReadyError, runlevel: level instanceof InvalidRunlevelError, state: app.state, listening: server.listening }));",
        'await app.telinit(0);',
      ].join('\n');
      const out = await new Promise<string>((resolve, reject) => {
        const child = spawn(process.execPath, [...flags, '--input-type=module', '-e', program], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
        let text = '';
        child.stdout.setEncoding('utf8').on('data', (s: string) => { text += s; });
        child.on('error', reject);
        child.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`exited ${code}: ${text}`))));
      });
      expect(JSON.parse(out)).to.deep.equal({ entry, notReady: true, runlevel: true, state: 'ready', listening: true });
    });
  }

  it('package.json exports the three entries with their types, and packs dist/src', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { exports: Record<string, Record<string, string>>; files: string[] };
    expect(pkg.exports).to.deep.equal({
      '.': { types: './dist/src/index.d.ts', 'module-sync': './dist/bundle/index.js', default: './dist/bundle/index-eager.js' },
      './handoff': { types: './dist/src/handoff.d.ts', default: './dist/bundle/handoff.js' },
      './register': { types: './dist/src/register.d.ts', default: './dist/bundle/register.js' },
    });
    expect(pkg.files).to.include('dist/src').and.include('dist/bundle');
    for (const entry of Object.values(pkg.exports)) for (const f of Object.values(entry)) expect(fs.existsSync(path.join(root, f)), f).to.equal(true);
  });
});

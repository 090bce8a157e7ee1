/**
 * The package as a user gets it: packed from a copy of the checkout (what git has, with this
 * checkout's node_modules), then installed into fresh projects made by `npm init -y`, from the
 * tarball with no compiler and no node-gyp, and from a path. In each, a child process imports the
 * installed package by name and hands a listening socket to another process.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { once } from 'node:events';
import { listenAndServe, listenerHandler } from '../../src/index.js';
import { root, spawnChild, tmpDir } from '../helpers.js';

const probe = path.join(root, 'test/fixtures/installed-probe.mjs');
const prebuildName = 'graceful-restart.glibc.node';
/** ELF e_machine values. */
const EM_X86_64 = 62;
const EM_AARCH64 = 183;

/** The environment of a user's shell: nothing of the `npm test` running this, nor the addon override. */
function userEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('npm_')));
  delete env.GRACEFUL_ADDON_PATH;
  delete env.INIT_CWD;
  return { ...env, ...extra };
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** run runs a command to its end (killed after timeoutMs) and never rejects: the caller checks code. */
function run(cmd: string, args: string[], cwd: string, env = userEnv(), timeoutMs = 120_000): Promise<Run> {
  return new Promise((resolve) => {
    const started = Date.now();
    execFile(cmd, args, { cwd, env, timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      // A command killed (by the timeout or otherwise) has no exit code: say so, and how long it ran.
      const killed = err && typeof err.code !== 'number' ? `[${cmd} ${args.join(' ')}: ended by ${err.signal ?? err.code} after ${Date.now() - started} ms]\n` : '';
      resolve({ code, stdout, stderr: killed + stderr + (killed ? `\n[stdout]\n${stdout.slice(-2000)}` : '') });
    });
  });
}

function ok(r: Run, what: string): Run {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}\n${r.stderr.slice(-4000)}`);
  return r;
}

/** checkoutCopy copies the files git has in this checkout (tracked, or new and not ignored) to dir. */
async function checkoutCopy(dir: string): Promise<void> {
  const ls = ok(await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], root), 'git ls-files');
  for (const f of ls.stdout.split('\0').filter(Boolean)) {
    const from = path.join(root, f);
    if (!fs.existsSync(from)) continue;
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.copyFileSync(from, path.join(dir, f));
  }
}

/** newProject makes a project as `npm init -y` does, with the probe in it. */
async function newProject(dir: string): Promise<string> {
  fs.mkdirSync(dir, { recursive: true });
  ok(await run('npm', ['init', '-y'], dir), 'npm init -y');
  fs.copyFileSync(probe, path.join(dir, 'probe.mjs'));
  return dir;
}

/**
 * install runs `npm install spec` in project. npm logs each registry request (`--loglevel http`), so a
 * failure shows the last one; a request that stalls is retried after 30 s rather than npm's default
 * 5 minutes, so a slow moment of the registry costs a retry, not the test.
 */
function install(project: string, spec: string, env = userEnv()): Promise<Run> {
  const args = ['install', spec, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel', 'http', '--fetch-timeout', '30000', '--fetch-retries', '4'];
  return run('npm', args, project, env, 240_000);
}

/** handOff runs the probe in project: a listening socket goes from one process to another. */
async function handOff(project: string): Promise<{ reply: string; taker: number; addon: string }> {
  const sock = path.join(project, 'h.sock');
  const r = ok(await run(process.execPath, ['probe.mjs', 'serve', sock], project, userEnv(), 30_000), 'the probe');
  const result = JSON.parse(r.stdout.trim()) as { reply: string; taker: number; addon: string };
  expect(result.reply).to.equal(`served by ${result.taker}`);
  return result;
}

function elfMachine(file: string): number {
  const header = Buffer.alloc(20);
  const fd = fs.openSync(file, 'r');
  fs.readSync(fd, header, 0, 20, 0);
  fs.closeSync(fd);
  expect(header.readUInt32BE(0)).to.equal(0x7f454c46, `${file} is an ELF file`);
  return header.readUInt16LE(18);
}

function onPath(name: string): string | undefined {
  return (process.env.PATH ?? '').split(path.delimiter).map((d) => path.join(d, name)).find((f) => fs.existsSync(f));
}

function crossCompilerInstalled(): boolean {
  return onPath('aarch64-linux-gnu-g++') !== undefined;
}

/**
 * debianArm64Node unpacks Debian's arm64 nodejs and the libraries it needs into dir/root, through
 * an apt of its own (own lists, cache and an empty dpkg status): the system's apt is not touched.
 * It returns the root, for `qemu-aarch64-static -L <root> <root>/usr/bin/node`.
 */
async function debianArm64Node(dir: string): Promise<string> {
  for (const d of ['state/lists/partial', 'cache/archives/partial', 'root']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  fs.writeFileSync(path.join(dir, 'status'), '');
  const conf = path.join(dir, 'apt.conf');
  fs.writeFileSync(conf, [
    'APT::Architecture "arm64";', 'APT::Architectures { "arm64"; };', 'APT::Sandbox::User "root";',
    `Dir::State "${dir}/state";`, `Dir::State::status "${dir}/status";`, `Dir::Cache "${dir}/cache";`, '',
  ].join('\n'));
  const env = userEnv({ APT_CONFIG: conf, DEBIAN_FRONTEND: 'noninteractive' });
  ok(await run('apt-get', ['update', '-qq'], dir, env, 240_000), 'apt-get update (arm64)');
  ok(await run('apt-get', ['install', '-d', '-y', '-qq', '--no-install-recommends', 'nodejs'], dir, env, 240_000), 'apt-get install -d nodejs:arm64');
  const debs = path.join(dir, 'cache/archives');
  for (const deb of fs.readdirSync(debs).filter((f) => f.endsWith('.deb'))) {
    ok(await run('dpkg-deb', ['-x', path.join(debs, deb), path.join(dir, 'root')], dir), `dpkg-deb -x ${deb}`);
  }
  return path.join(dir, 'root');
}

describe('package: the packed tarball and a path install', function () {
  this.timeout(300_000);
  let base: string;
  let checkout: string;
  let tarball: string;
  let files: string[];
  /** A node-gyp that records that it ran, first on PATH for every project under noGypRoot. */
  let noGypRoot: string;
  let noGypRan: string;

  before(async function () {
    this.timeout(300_000);
    if (os.platform() !== 'linux' || os.arch() !== 'x64') throw new Error('these tests make and use the linux-x64 prebuild');
    base = tmpDir();
    checkout = path.join(base, 'checkout');
    await checkoutCopy(checkout);
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(checkout, 'node_modules'));
    const pack = ok(await run('npm', ['pack', '--pack-destination', base], checkout), 'npm pack');
    tarball = path.join(base, pack.stdout.trim().split('\n').at(-1)!);
    files = ok(await run('tar', ['tzf', tarball], base), 'tar tzf').stdout.split('\n').filter(Boolean);

    // npm puts the node_modules/.bin of every directory above a package on its scripts' PATH before
    // its own node-gyp, so this one is what `node-gyp` runs for packages installed below noGypRoot.
    noGypRoot = path.join(base, 'nogyp');
    noGypRan = path.join(noGypRoot, 'node-gyp-ran');
    const bin = path.join(noGypRoot, 'node_modules/.bin');
    fs.mkdirSync(bin, { recursive: true });
    fs.writeFileSync(path.join(bin, 'node-gyp'), `#!/bin/sh\necho "$@" >> '${noGypRan}'\necho 'node-gyp must not run' >&2\nexit 1\n`, { mode: 0o755 });
  });

  it('packs the compiled library, its sources, the native sources and stripped prebuilds, and no tests', async () => {
    for (const f of ['dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/handoff.js', 'dist/src/handoff.d.ts', 'dist/src/native.js.map', 'src/native.ts',
      'dist/bundle/index.js', 'dist/bundle/index-eager.js', 'dist/bundle/handoff.js', 'dist/bundle/register.js', 'dist/bundle/index.js.map',
      'dist/bundle/control/service-parts.js', 'dist/bundle/workers/role-parts.js',
      'bin/graceful-restart.js', 'native/binding.cc', 'binding.gyp', 'CMakeLists.txt', 'README.md',
      `prebuilds/linux-x64/${prebuildName}`]) {
      expect(files).to.include(`package/${f}`);
    }
    expect(files.filter((f) => /^package\/(test|dist\/test|bench|example|scripts|build)\//.test(f))).to.deep.equal([]);
    // Nothing stays behind in the checkout: `npm ci` there must compile from source again.
    expect(fs.existsSync(path.join(checkout, 'prebuilds'))).to.equal(false);

    const unpacked = path.join(base, 'unpacked');
    fs.mkdirSync(unpacked);
    ok(await run('tar', ['xzf', tarball, '-C', unpacked], base), 'tar xzf');
    const pkg = path.join(unpacked, 'package');
    expect(elfMachine(path.join(pkg, 'prebuilds/linux-x64', prebuildName))).to.equal(EM_X86_64);
    const arm64 = path.join(pkg, 'prebuilds/linux-arm64', prebuildName);
    if (crossCompilerInstalled()) expect(elfMachine(arm64)).to.equal(EM_AARCH64);
    else expect(fs.existsSync(arm64)).to.equal(false);
    const symbols = ok(await run('nm', ['--defined-only', path.join(pkg, 'prebuilds/linux-x64', prebuildName)], base), 'nm');
    expect(symbols.stderr).to.match(/no symbols/);

    // Every source map points at a file the package has.
    const maps = files.filter((f) => f.endsWith('.js.map')).map((f) => path.join(unpacked, f));
    expect(maps.length).to.be.greaterThan(10);
    for (const map of maps) {
      const { sources, sourceRoot = '' } = JSON.parse(fs.readFileSync(map, 'utf8')) as { sources: string[]; sourceRoot?: string };
      for (const s of sources) expect(fs.existsSync(path.resolve(path.dirname(map), sourceRoot, s)), `${map} -> ${s}`).to.equal(true);
    }
  });

  it('installs from the tarball with no compiler and no node-gyp, and hands a listener to another process', async () => {
    const project = await newProject(path.join(noGypRoot, 'app'));
    ok(await install(project, tarball, userEnv({ CC: '/bin/false', CXX: '/bin/false' })), 'npm install <tarball>');
    expect(fs.existsSync(noGypRan)).to.equal(false);
    const installed = path.join(project, 'node_modules/graceful-restart');
    expect(fs.existsSync(path.join(installed, 'build'))).to.equal(false);
    const { addon } = await handOff(project);
    expect(addon).to.equal(path.join(fs.realpathSync(installed), 'prebuilds/linux-x64', prebuildName));

    // The hand-off core alone, by its subpath: the same objects as the main entry's.
    const subpath = ok(await run(process.execPath, ['--input-type=module', '-e',
      "const h = await import('graceful-restart/handoff'); const m = await import('graceful-restart'); " +
      "console.log(JSON.stringify({ same: h.listenAndServe === m.listenAndServe && h.receive === m.receive, " +
      "wire: typeof h.FrameDecoder, server: typeof h.GracefulServer }))"], project), "import('graceful-restart/handoff')");
    expect(JSON.parse(subpath.stdout)).to.deep.equal({ same: true, wire: 'function', server: 'undefined' });

    // graceful-restart/register by its subpath, from ESM (--import) and CommonJS (-r): a listen
    // on port 0 is the one it leaves to Node, and says so.
    for (const flag of ['--import', '-r']) {
      const reg = ok(await run(process.execPath, [flag, 'graceful-restart/register', '-e',
        "const s = require('node:http').createServer().listen(0, '127.0.0.1', () => { console.log('listening'); s.close(); })"], project), `${flag} graceful-restart/register`);
      expect(reg.stdout.trim()).to.equal('listening');
      expect(reg.stderr).to.match(/^graceful-restart: pid \d+ listens on port 0/);
    }

    const help = ok(await run(path.join(project, 'node_modules/.bin/graceful-restart'), ['--help'], project), 'graceful-restart --help');
    expect(help.stdout).to.match(/^Usage: graceful-restart /);

    // Without a prebuild that fits, the bin says what to run in one line, and the install script
    // goes to node-gyp: the node-gyp that this project sees is the one that refuses.
    fs.rmSync(path.join(installed, 'prebuilds'), { recursive: true });
    const missing = await run(path.join(project, 'node_modules/.bin/graceful-restart'), ['--help'], project);
    expect(missing.code).to.equal(1);
    expect(missing.stdout).to.equal('');
    expect(missing.stderr).to.equal(
      `error: the native addon is not built, and no prebuilt one fits linux-x64: nothing in ${path.join(installed, 'build/Release')} ` +
        `or ${path.join(installed, 'prebuilds')}; run \`npm rebuild graceful-restart\` in your project ` +
        '(compiling needs a C++ compiler, make and Python 3) (ERR_GRACEFUL_ADDON_NOT_FOUND)\n',
    );
    const rebuild = await run('npm', ['rebuild', 'graceful-restart'], project, userEnv({ CC: '/bin/false', CXX: '/bin/false' }));
    expect(rebuild.code).to.not.equal(0);
    expect(fs.readFileSync(noGypRan, 'utf8')).to.equal('rebuild\n');
  });

  it('the container recipe: the tarball in the project, then its COPY and `npm ci --omit=dev` from an empty cache', async () => {
    // The project as the README says: the tarball beside package.json, installed by its relative path.
    const project = await newProject(path.join(noGypRoot, 'docker-app'));
    fs.copyFileSync(tarball, path.join(project, path.basename(tarball)));
    ok(await install(project, `./${path.basename(tarball)}`), 'npm install ./<tarball>');
    const deps = (JSON.parse(fs.readFileSync(path.join(project, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies;
    expect(deps['graceful-restart']).to.equal(`file:${path.basename(tarball)}`);
    // The image: what the Dockerfile's first COPY takes, then its RUN npm ci, with a cache of its own.
    const dockerfile = fs.readFileSync(path.join(root, 'example/Dockerfile'), 'utf8');
    const copy = /^COPY (.+) \.\/$/m.exec(dockerfile)![1]!.split(' ');
    expect(/^RUN (.+)$/m.exec(dockerfile)![1]).to.equal('npm ci --omit=dev');
    const image = path.join(noGypRoot, 'image');
    fs.mkdirSync(image);
    for (const pattern of copy) {
      const re = new RegExp(`^${pattern.replace(/[.]/g, '\\.').replace(/\*/g, '.*')}$`);
      const found = fs.readdirSync(project).filter((f) => re.test(f));
      expect(found, `COPY ${pattern}`).to.have.length(1);
      fs.copyFileSync(path.join(project, found[0]!), path.join(image, found[0]!));
    }
    const cache = path.join(noGypRoot, 'empty-cache');
    ok(await run('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund', '--cache', cache], image, userEnv({ CC: '/bin/false', CXX: '/bin/false' })), 'npm ci --omit=dev');
    const help = ok(await run(path.join(image, 'node_modules/.bin/graceful-restart'), ['--help'], image), 'graceful-restart --help');
    expect(help.stdout).to.match(/^Usage: graceful-restart /);
  });

  it('builds from source with `npm rebuild graceful-restart` where no prebuild fits', async () => {
    const project = await newProject(path.join(base, 'rebuild'));
    ok(await install(project, tarball), 'npm install <tarball>');
    const installed = fs.realpathSync(path.join(project, 'node_modules/graceful-restart'));
    fs.rmSync(path.join(installed, 'prebuilds'), { recursive: true });
    ok(await run('npm', ['rebuild', 'graceful-restart'], project), 'npm rebuild graceful-restart');
    const { addon } = await handOff(project);
    expect(addon).to.equal(path.join(installed, 'build/Release/graceful_fdpass.node'));
  });

  it('installs from the path of a checkout that has its dependencies', async () => {
    const project = await newProject(path.join(base, 'path'));
    ok(await install(project, checkout), 'npm install <checkout>');
    expect(fs.realpathSync(path.join(project, 'node_modules/graceful-restart'))).to.equal(fs.realpathSync(checkout));
    const { addon } = await handOff(project);
    expect(addon).to.equal(path.join(fs.realpathSync(checkout), 'build/Release/graceful_fdpass.node'));
  });

  it('refuses the path of a checkout without its dependencies, saying what to do', async () => {
    const bare = path.join(base, 'bare');
    await checkoutCopy(bare);
    const project = await newProject(path.join(base, 'bare-app'));
    const r = await install(project, bare);
    expect(r.code).to.not.equal(0);
    expect(r.stderr).to.include(
      `graceful-restart: ${bare} is a checkout without its dev dependencies, so its TypeScript cannot be compiled: ` +
        `run \`npm ci\` in ${bare} first, or install the package from its tarball (\`npm pack\` there)`,
    );
  });

  it('the linux-arm64 prebuild takes a listener from this x64 process, under qemu-user with Debian\'s arm64 Node', async function () {
    const qemu = onPath('qemu-aarch64-static');
    if (!qemu || !crossCompilerInstalled()) {
      // .ci/run installs both; elsewhere this needs `apt-get install qemu-user-static g++-aarch64-linux-gnu`.
      this.skip();
    }
    this.timeout(600_000);
    const sysroot = await debianArm64Node(path.join(base, 'arm64'));
    const project = await newProject(path.join(base, 'arm64-app'));
    ok(await install(project, tarball, userEnv({ CC: '/bin/false', CXX: '/bin/false' })), 'npm install <tarball>');

    const server = net.createServer((c) => c.end(`served by ${process.pid}\n`)).listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as net.AddressInfo;
    const sock = path.join(project, 'h.sock');
    const hs = listenAndServe(sock, listenerHandler(server, { name: 'tcp' }));
    const taker = spawnChild(qemu!, ['-L', sysroot, path.join(sysroot, 'usr/bin/node'), 'probe.mjs', 'take', sock], { cwd: project, env: userEnv() });
    try {
      await taker.next(/^ready$/, 120_000);
      const maps = fs.readFileSync(`/proc/${taker.pid}/maps`, 'utf8');
      expect(maps).to.include(path.join(fs.realpathSync(project), 'node_modules/graceful-restart/prebuilds/linux-arm64', prebuildName));
      await new Promise((resolve) => server.close(resolve));
      await hs.close();
      const client = net.connect(port, '127.0.0.1');
      let text = '';
      client.setEncoding('utf8').on('data', (d: string) => (text += d));
      await once(client, 'close');
      expect(text).to.equal(`served by ${taker.pid}\n`);
    } finally {
      taker.kill();
      if (server.listening) server.close();
      // Its pipes are this process's descriptors until it is gone: the next test counts them.
      await taker.exited;
    }
  });
});

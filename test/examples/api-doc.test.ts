/**
 * docs/api.md has a heading, so an anchor, for every option, public method,
 * property and event of GracefulServer and Supervisor, and every public
 * method of ControlClient, in the scheme the page states at its top:
 * `#option-<name>`, `#<method>`, `#event-<name>`; for another class its name
 * first (`#supervisor-option-<name>`, `#supervisor-<method>`,
 * `#supervisor-event-<name>`, `#controlclient-<method>`). What exists is read
 * from the code: the options interfaces in src/, the compiled classes'
 * prototypes (less what their .d.ts declares private), the server's event
 * list (server/events.ts), and the supervisor's `this.emit('<name>'` calls.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { root } from '../helpers.js';
import { headingAnchors as anchors, slug } from '../helpers/markdown.js';

/** interfaceKeys: the property names of `export interface name {` in a source file (two-space indented, as written there). */
function interfaceKeys(file: string, name: string): string[] {
  const text = fs.readFileSync(path.join(root, file), 'utf8');
  const start = text.indexOf(`export interface ${name} {`);
  expect(start, `${file} declares ${name}`).to.be.above(-1);
  const body = text.slice(start, text.indexOf('\n}', start));
  return [...body.matchAll(/^ {2}(\w+)\??:/gm)].map((m) => m[1]!);
}

/** publicMembers: the own names of a compiled class's prototype and of the class (statics), less what its .d.ts declares private. */
async function publicMembers(module: string, className: string): Promise<{ members: string[]; statics: string[] }> {
  const mod = await import(pathToFileURL(path.join(root, 'dist/src', `${module}.js`)).href) as Record<string, { prototype: object }>;
  const cls = mod[className]!;
  const dts = fs.readFileSync(path.join(root, 'dist/src', `${module}.d.ts`), 'utf8');
  const hidden = new Set([...dts.matchAll(/^\s+private (?:static )?(?:readonly )?(\w+)/gm)].map((m) => m[1]!));
  const members = Object.getOwnPropertyNames(cls.prototype).filter((n) => n !== 'constructor' && !hidden.has(n) && !n.startsWith('_'));
  const statics = Object.getOwnPropertyNames(cls).filter((n) => !['length', 'name', 'prototype'].includes(n) && !hidden.has(n));
  return { members, statics };
}

describe('docs/api.md: a heading for each option, method, property and event', () => {
  const have = anchors('docs/api.md');
  const missing = (want: string[]) => want.filter((a) => !have.has(a));

  it('no two headings have the same anchor (GitHub would number the second)', () => {
    const all: string[] = [];
    let fence = false;
    for (const l of fs.readFileSync(path.join(root, 'docs/api.md'), 'utf8').split('\n')) {
      if (l.startsWith('```')) fence = !fence;
      else if (!fence && /^#{1,6} /.test(l)) all.push(slug(l.replace(/^#+ /, '')));
    }
    expect(all.filter((a, i) => all.indexOf(a) !== i)).to.deep.equal([]);
  });

  it('states its anchor scheme at the top', () => {
    const top = fs.readFileSync(path.join(root, 'docs/api.md'), 'utf8').split('\n## ')[0]!;
    for (const a of ['#option-', '#event-', '#supervisor-option-', '#controlclient-']) expect(top, a).to.include(a);
  });

  it('GracefulServer: every option of GracefulServerOptions (src/server/options.ts)', () => {
    const options = interfaceKeys('src/server/options.ts', 'GracefulServerOptions');
    expect(options).to.include.members(['controlSocket', 'workers', 'sigusr2', 'log']);
    expect(missing(options.map((o) => `option-${o.toLowerCase()}`))).to.deep.equal([]);
  });

  it('GracefulServer: every public method and property of the compiled class, and fromConfig', async () => {
    const { members, statics } = await publicMembers('graceful-server', 'GracefulServer');
    expect(members).to.include.members(['listen', 'redeploy', 'statusOfService', 'workerInfo', 'runTask', 'taskNames', 'generation']);
    expect(members).to.not.include('engine');
    expect(statics).to.deep.equal(['fromConfig']);
    expect(missing([...members, ...statics].map((m) => m.toLowerCase()))).to.deep.equal([]);
  });

  it('GracefulServer: every event the server emits (SERVER_EVENTS, the only names its engine emits)', async () => {
    const { SERVER_EVENTS } = await import(pathToFileURL(path.join(root, 'dist/src/server/events.js')).href) as { SERVER_EVENTS: readonly string[] };
    expect(SERVER_EVENTS).to.include.members(['ready', 'redeploy', 'adopt-socket', 'worker']);
    expect(missing(SERVER_EVENTS.map((e) => `event-${e}`))).to.deep.equal([]);
  });

  it('Supervisor: every option of SupervisorOptions, public method and property, and event it emits', async () => {
    const options = interfaceKeys('src/supervisor/options.ts', 'SupervisorOptions');
    expect(options).to.include.members(['command', 'socket', 'restart', 'log']);
    const { members } = await publicMembers('supervisor/supervisor', 'Supervisor');
    expect(members).to.include.members(['start', 'currentPid']);
    expect(members).to.not.include('spawn');
    const source = fs.readFileSync(path.join(root, 'src/supervisor/supervisor.ts'), 'utf8');
    const events = [...new Set([...source.matchAll(/this\.emit\('([\w-]+)'/g)].map((m) => m[1]!))];
    expect(events).to.include.members(['current', 'ready', 'gone', 'exit']);
    expect(missing([
      ...options.map((o) => `supervisor-option-${o.toLowerCase()}`),
      ...[...members, 'exited', 'restarts'].map((m) => `supervisor-${m.toLowerCase()}`),
      ...events.map((e) => `supervisor-event-${e}`),
    ])).to.deep.equal([]);
  });

  it('ControlClient: every public method and property, and connect', async () => {
    const { members, statics } = await publicMembers('control/client', 'ControlClient');
    expect(members).to.include.members(['request', 'close']);
    expect(statics).to.deep.equal(['connect']);
    expect(missing([...members, ...statics].map((m) => `controlclient-${m.toLowerCase()}`))).to.deep.equal([]);
  });

  it('serverFromFd: a heading that says it returns a Promise', () => {
    const text = fs.readFileSync(path.join(root, 'docs/api.md'), 'utf8');
    expect(have.has('serverfromfd')).to.equal(true);
    const section = text.slice(text.indexOf('#### `serverFromFd()`'));
    expect(section.split('\n#')[0]).to.match(/returns a Promise/);
  });
});

/**
 * The shape of src/, as docs/architecture.md states it: files of one role
 * (none over 450 lines but the gob codec, the facade at most 350), imports
 * only from the same or a lower layer, and no import cycle. Read from the
 * TypeScript sources themselves.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { root } from '../helpers.js';

const SRC = path.join(root, 'src');
const MAX_LINES = 450;
const FACADE_MAX = 350;
const EXEMPT = new Set(['gob.ts']); // one role: the gob codec
/** Lowest first; a layer may import its own and those before it. */
const LAYERS = ['core', 'handoff', 'server', 'workers', 'control', 'supervisor', 'register', 'cli'];
/** The register runs a program under a GracefulServer: the one layer that may use the facade. */
const ABOVE_FACADE = new Set(['register']);
/** The entry points and the composition root may import every layer. */
const ENTRIES = new Set(['index.ts', 'handoff.ts', 'register.ts', 'graceful-server.ts', 'cli.ts']);

function sources(dir = SRC): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [path.relative(SRC, p)] : [];
  });
}

function layerOf(file: string): string {
  if (ENTRIES.has(file)) return 'entry';
  const parts = file.split(path.sep);
  return parts.length > 1 ? parts[0]! : 'core';
}

function importsOf(file: string): string[] {
  const text = fs.readFileSync(path.join(SRC, file), 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:import|export)[^'"]*?from\s*['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g)) {
    const rel = (m[1] ?? m[2])!.replace(/\.js$/, '.ts');
    const target = path.normalize(path.join(path.dirname(file), rel));
    if (fs.existsSync(path.join(SRC, target))) out.push(target);
  }
  return out;
}

describe('the shape of src/', () => {
  const files = sources();
  const graph = new Map(files.map((f) => [f, importsOf(f)]));

  it('has files of one role: none over 450 lines but the gob codec, the facade at most 350', () => {
    const lines = (f: string) => fs.readFileSync(path.join(SRC, f), 'utf8').split('\n').length - 1;
    const over = files.filter((f) => !EXEMPT.has(f) && lines(f) > MAX_LINES).map((f) => `${f} ${lines(f)}`);
    expect(over).to.deep.equal([]);
    expect(lines('graceful-server.ts')).to.be.at.most(FACADE_MAX);
  });

  it('imports only from the same or a lower layer', () => {
    const against: string[] = [];
    for (const [from, targets] of graph) {
      const a = layerOf(from);
      if (a === 'entry') continue;
      for (const to of targets) {
        const b = layerOf(to);
        const facade = to === 'graceful-server.ts' && ABOVE_FACADE.has(a);
        if ((b === 'entry' && !facade) || LAYERS.indexOf(b) > LAYERS.indexOf(a)) against.push(`${from} -> ${to}`);
      }
    }
    expect(against).to.deep.equal([]);
  });

  it('has no import cycle', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (f: string): void => {
      state.set(f, 'open');
      stack.push(f);
      for (const t of graph.get(f) ?? []) {
        if (state.get(t) === 'open') cycles.push([...stack.slice(stack.indexOf(t)), t].join(' -> '));
        else if (!state.has(t)) visit(t);
      }
      stack.pop();
      state.set(f, 'done');
    };
    for (const f of files) if (!state.has(f)) visit(f);
    expect(cycles).to.deep.equal([]);
  });

  it('reads every layer it names (a folder outside the table would escape the check)', () => {
    const folders = new Set(files.map(layerOf));
    for (const l of folders) expect(['entry', ...LAYERS], l).to.include(l);
  });
});

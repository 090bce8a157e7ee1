/**
 * Every fenced block of README.md and docs/ is either output (```text) or code that
 * runs: a program, configuration or recipe block is exactly the file under
 * example/ that the line before it links (and that the tests of this
 * directory run); a ```sh block's commands name scripts and files that exist,
 * and never `npx graceful-restart` (slow, and in this checkout a rebuild).
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { root } from '../helpers.js';
import { headingAnchors } from '../helpers/markdown.js';

interface Block {
  /** Where it is: the file (README.md, docs/<page>.md) and line. */
  at: string;
  line: number;
  lang: string;
  body: string;
  before: string;
}

/** blocks: the fenced blocks of a markdown text, with the last non-empty line before each. */
function blocks(text: string, file: string): Block[] {
  const lines = text.split('\n');
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)$/.exec(lines[i]!);
    if (!open) continue;
    let j = i + 1;
    while (j < lines.length && lines[j] !== '```') j++;
    let k = i - 1;
    while (k >= 0 && lines[k]!.trim() === '') k--;
    out.push({ at: `${file}:${i + 1}`, line: i + 1, lang: open[1]!, body: lines.slice(i + 1, j).map((l) => `${l}\n`).join(''), before: k >= 0 ? lines[k]! : '' });
    i = j;
  }
  return out;
}

const FILE_LANGS = new Set(['js', 'mjs', 'cjs', 'ts', 'dockerfile', 'ini', 'yaml', 'json']);

/** The documentation: README.md and every page under docs/. */
const DOCS = ['README.md', ...fs.readdirSync(path.join(root, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];

describe('README and docs/: every code block runs, every link leads somewhere', () => {
  const all = DOCS.flatMap((f) => blocks(fs.readFileSync(path.join(root, f), 'utf8'), f));
  const scripts = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;

  it('finds the blocks, each with a language', () => {
    expect(all.length).to.be.above(10);
    for (const b of all) expect(b.lang, `${b.at}: a block without a language (text for output)`).to.not.equal('');
  });

  it('a program or configuration block is exactly the example/ file linked on the line before it', () => {
    const shown = new Set<string>();
    for (const b of all.filter((x) => FILE_LANGS.has(x.lang))) {
      const m = /\]\((?:\.\.\/)?(example\/[^)\s]+)\)/.exec(b.before);
      expect(m, `${b.at}: a ${b.lang} block must follow a link to its file under example/ (line before: ${b.before})`).to.not.equal(null);
      const file = path.join(root, m![1]!);
      expect(b.body, `${b.at} differs from ${m![1]}`).to.equal(fs.readFileSync(file, 'utf8'));
      shown.add(m![1]!);
    }
    expect([...shown].sort()).to.deep.equal([
      'example/Dockerfile', 'example/app.service', 'example/complete-server.mjs', 'example/ecosystem.config.cjs',
      'example/handoff-owner.mjs', 'example/handoff-taker.mjs', 'example/kubernetes.yaml', 'example/unmodified-server.mjs',
    ]);
  });

  it('a sh block names scripts and files that exist, and no npx graceful-restart', () => {
    for (const b of all.filter((x) => x.lang === 'sh')) {
      for (const raw of b.body.split('\n')) {
        const cmd = raw.replace(/\s+#.*$/, '').trim();
        if (cmd === '') continue;
        const where = `${b.at}: ${cmd}`;
        expect(cmd, where).to.not.match(/\bnpx graceful-restart\b/);
        const npm = /^npm (?:run(?: -s)? (\S+)|(start|test))\b/.exec(cmd);
        if (npm) expect(scripts, where).to.have.property(npm[1] ?? npm[2]!);
        const file = /^(?:node|bash) (\S+)/.exec(cmd);
        if (file && !file[1]!.startsWith('-')) expect(fs.existsSync(path.join(root, file[1]!)), where).to.equal(true);
      }
    }
  });

  it('every relative link leads to a file that exists, and every #anchor to a heading of that page', () => {
    const anchors = headingAnchors;
    const broken: string[] = [];
    for (const f of DOCS) {
      let fence = false;
      fs.readFileSync(path.join(root, f), 'utf8').split('\n').forEach((l, i) => {
        if (l.startsWith('```')) fence = !fence;
        if (fence) return;
        for (const m of l.matchAll(/\]\(([^)\s]+)\)/g)) {
          const target = m[1]!;
          if (/^[a-z]+:/.test(target)) continue;
          const [file, anchor] = target.split('#') as [string, string | undefined];
          const resolved = file === '' ? f : path.normalize(path.join(path.dirname(f), file));
          if (!fs.existsSync(path.join(root, resolved))) broken.push(`${f}:${i + 1}: ${target} (no ${resolved})`);
          else if (anchor !== undefined && resolved.endsWith('.md') && !anchors(resolved).has(anchor)) broken.push(`${f}:${i + 1}: ${target} (no heading #${anchor})`);
        }
      });
    }
    expect(broken).to.deep.equal([]);
  });

  it('the only other blocks are output or usage (text)', () => {
    const other = all.filter((b) => !FILE_LANGS.has(b.lang) && b.lang !== 'sh' && b.lang !== 'text');
    expect(other.map((b) => `${b.at} ${b.lang}`)).to.deep.equal([]);
  });
});

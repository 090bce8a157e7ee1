/** The anchors of a markdown page's headings, as GitHub makes them (for the tests that check the docs' links and headings). */
import fs from 'node:fs';
import path from 'node:path';
import { root } from '../helpers.js';

/** slug: a heading's anchor, as GitHub makes it. */
export const slug = (t: string): string => t.trim().toLowerCase().replace(/[^\w\- ]/g, '').replace(/ /g, '-');

/** headingAnchors: the anchors of the headings of file (relative to the checkout), outside fenced blocks. */
export function headingAnchors(file: string): Set<string> {
  const out = new Set<string>();
  let fence = false;
  for (const l of fs.readFileSync(path.join(root, file), 'utf8').split('\n')) {
    if (l.startsWith('```')) fence = !fence;
    else if (!fence && /^#{1,6} /.test(l)) out.add(slug(l.replace(/^#+ /, '')));
  }
  return out;
}

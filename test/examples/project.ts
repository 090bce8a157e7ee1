/**
 * A user's project for the examples: `npm init -y` (so "type" is whatever npm
 * makes it, "commonjs" today), this checkout as node_modules/graceful-restart
 * (what `npm install` links, bin included), and the example files copied in
 * under the names the README gives them.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { root, tmpDir } from '../helpers.js';

/** example: the path of a file under example/. */
export const example = (name: string): string => path.join(root, 'example', name);

/** bin: the project's node_modules/.bin/graceful-restart. */
export const bin = (project: string): string => path.join(project, 'node_modules/.bin/graceful-restart');

/** makeProject makes a project and copies files ({ 'app.mjs': 'complete-server.mjs' }: name in the project -> file under example/). */
export async function makeProject(files: Record<string, string>): Promise<string> {
  const dir = tmpDir();
  await new Promise<void>((resolve, reject) => {
    execFile('npm', ['init', '-y'], { cwd: dir, timeout: 30_000 }, (err) => (err ? reject(err) : resolve()));
  });
  fs.mkdirSync(path.join(dir, 'node_modules/.bin'), { recursive: true });
  fs.symlinkSync(root, path.join(dir, 'node_modules/graceful-restart'));
  fs.symlinkSync('../graceful-restart/bin/graceful-restart.js', bin(dir));
  for (const [name, from] of Object.entries(files)) fs.copyFileSync(example(from), path.join(dir, name));
  return dir;
}


/** run runs a command to its end: exit code and output. */
export function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 60_000, ...options }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

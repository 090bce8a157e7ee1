/**
 * The Go peer (test/fixtures/gob/peer): a Go program using gobwas/graceful's framing and gob meta,
 * built once per process for the interop tests, in a temporary GOPATH and GOCACHE of its own.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { root, tmpDir } from '../helpers.js';

let built: string | undefined;

/**
 * goPeer returns the path of the built Go peer. Without `go` it skips ctx's suite, printing why
 * and what still checks the same bytes (without); a failed build fails with the compiler's output.
 */
export function goPeer(ctx: Mocha.Context, without: string): string {
  const go = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (go.error || go.status !== 0) {
    console.log(`      skipped: the Go peer needs \`go\` to be built (${go.error?.message ?? go.stderr.trim()}); ${without}`);
    ctx.skip();
  }
  if (built !== undefined) return built;
  const build = tmpDir();
  const env = {
    ...process.env, GO111MODULE: 'off', GOFLAGS: '', GOCACHE: path.join(build, 'cache'), GOPATH: path.join(build, 'gopath'),
    GOTMPDIR: build, CGO_ENABLED: '0',
  };
  const out = spawnSync('go', ['build', '-o', path.join(build, 'peer'), './test/fixtures/gob/peer'], { cwd: root, env, encoding: 'utf8' });
  expect(out.status, `go build failed: ${out.stderr}`).to.equal(0);
  built = path.join(build, 'peer');
  return built;
}

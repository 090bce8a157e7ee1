// app.mjs: a complete server. Its .mjs name makes it an ES module in any
// project (one made by `npm init -y` is "type": "commonjs"); as app.js it
// needs "type": "module" in package.json.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { GracefulServer } from 'graceful-restart';

// Paths a user may write to. In production, point STATE_DIR at /run/app
// (systemd's RuntimeDirectory=app, or a directory the image creates).
const dir = path.resolve(process.env.STATE_DIR ?? 'state');
const port = Number(process.env.PORT ?? 8080);

const app = new GracefulServer({ pidFile: path.join(dir, 'app.pid'), controlSocket: path.join(dir, 'app.sock') });
const server = http.createServer((req, res) => res.end(`hello from ${process.pid}\n`));
try {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const log = await app.file('log', path.join(dir, 'app.log'));  // one open file across redeploys
  await app.listen('http', server, { port });                     // inherited, or bound fresh
  await app.ready();                                               // the old instance now drains
  log.write(`pid ${process.pid} ready\n`);
} catch (err) {
  // One line with the code and what to do; the library's own codes say it in their message.
  const todo = {
    EADDRINUSE: 'or set PORT',
    EACCES: 'permission denied: use a port above 1023 and a STATE_DIR you may write',
    ENOTDIR: 'STATE_DIR must be a directory',
    EEXIST: 'STATE_DIR names a file: it must be a directory',
    ERR_GRACEFUL_SOCKET_IN_USE: 'or set STATE_DIR to another directory',
  }[err.code];
  const text = err.message.includes(err.code) ? err.message : `${err.code}: ${err.message}`;
  console.error(`app: cannot start: ${text}${todo ? ` (${todo})` : ''}`);
  await app.telinit(0).catch(() => {});  // closes what was opened, the control socket included
  process.exit(1);
}
// The line that says it serves, and how to redeploy it.
console.log(`app: pid ${process.pid} serving on http://localhost:${port}/; redeploy with: node_modules/.bin/graceful-restart ${path.relative(process.cwd(), dir) || '.'}/app.sock`);

// taker.mjs: takes the owner's listening socket and log file, and serves on.
import fs from 'node:fs';
import http from 'node:http';
import { receive, listenOnFd, writeStreamFromFd } from 'graceful-restart';

const server = http.createServer((req, res) => res.end(`taker ${process.pid}\n`));
let log = null;
await receive('handoff.sock', async (fd, meta) => {
  if (meta?.name === 'http') await listenOnFd(server, fd);       // the server owns fd now
  else if (meta?.name === 'log') log = writeStreamFromFd(fd);    // the stream owns fd now
  else fs.closeSync(fd);                                         // not ours: never leak it
}, { timeout: 5000 });
log?.write(`taker ${process.pid} serving\n`);
console.log(`taker ${process.pid} serving on port ${server.address().port}`);

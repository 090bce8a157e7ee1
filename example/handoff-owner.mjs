// owner.mjs: serves HTTP, hands its listening socket and its log file to
// whoever connects to handoff.sock, and stops once a taker confirmed it took
// them (receive() confirms): a client that does not (a program pointed at the
// socket by mistake) got copies, and the owner serves on.
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import { listenAndServe, sequenceHandler, listenerHandler, fileHandler } from 'graceful-restart';

const server = http.createServer((req, res) => res.end(`owner ${process.pid}\n`));
server.listen(Number(process.env.PORT ?? 8080), '127.0.0.1');
await once(server, 'listening');
const log = fs.createWriteStream('handoff.log', { flags: 'a' });
log.write(`owner ${process.pid} serving\n`);

const hs = listenAndServe('handoff.sock', sequenceHandler(
  listenerHandler(server, { name: 'http' }),
  fileHandler(log, { name: 'log' }),
), { confirm: 10_000 });  // wait up to 10 s for each client's confirmation
hs.on('unconfirmed', (peer) => console.log(`owner ${process.pid}: pid ${peer.pid} did not confirm: serving on`));
console.log(`owner ${process.pid} serving on port ${server.address().port}`);

const [peer] = await once(hs, 'confirmed');  // the taker took both descriptors
await hs.close();                          // one taker only; removes handoff.sock
server.close();  // stop accepting: the taker holds the same socket, so nothing queued is lost
log.end(`owner ${process.pid} handed over to pid ${peer.pid}\n`);

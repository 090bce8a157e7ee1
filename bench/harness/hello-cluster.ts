/**
 * The same hello-world service with node:cluster alone (nothing of this
 * package is loaded): N workers (argv[2]) sharing one port; SIGHUP is the
 * rolling restart node:cluster users write (a new worker listening, then the
 * old one disconnected), which prints "restarted"; prints "ready <port>".
 */
import cluster from 'node:cluster';
import http from 'node:http';

if (cluster.isPrimary) {
  const n = Number(process.argv[2] ?? 1);
  let up = 0;
  for (let i = 0; i < n; i++) cluster.fork();
  cluster.on('listening', (_w, address) => {
    if (++up === n) console.log(`ready ${address.port}`);
  });
  process.on('SIGTERM', () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.kill();
    process.exit(0);
  });
  process.on('SIGHUP', () => {
    void (async () => {
      for (const old of Object.values(cluster.workers ?? {})) {
        const fresh = cluster.fork();
        await new Promise((r) => fresh.once('listening', r));
        const gone = new Promise((r) => old!.once('exit', r));
        old!.disconnect();
        await gone;
      }
      console.log('restarted');
    })();
  });
} else {
  http.createServer((_req, res) => res.end('hello\n')).listen(Number(process.env.PORT ?? 0), '127.0.0.1');
}

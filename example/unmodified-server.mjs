// server.mjs: a plain node:http server that knows nothing of graceful-restart.
// Run it with: graceful-restart run -s app.sock -- node server.mjs
import http from 'node:http';

const port = Number(process.env.PORT ?? 8080);
const server = http.createServer((req, res) => res.end(`hello from ${process.pid}\n`));
server.listen(port, () => console.log(`server: pid ${process.pid} listening on ${port}`));

// ecosystem.config.cjs, beside app.mjs: pm2 start ecosystem.config.cjs
// Redeploy: pm2 trigger app redeploy (pm2 reload stops the app and starts it again: requests fail)
module.exports = { apps: [{
  name: 'app',
  cwd: __dirname,
  script: 'node_modules/.bin/graceful-restart',
  args: 'run -s sup.sock -- node app.mjs',  // sup.sock in cwd: a directory that exists
  interpreter: 'none',
  treekill: false,      // signal the supervisor only: it forwards once to the serving generation
  kill_timeout: 30000,  // above the shutdown timeout (10 s)
}] };

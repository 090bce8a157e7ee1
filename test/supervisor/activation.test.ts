/**
 * Socket activation through `graceful-restart run`: systemd-socket-activate
 * passes its sockets to the supervisor, which passes them on to each
 * generation at the same numbers, with LISTEN_PID set to the generation's own
 * pid; a GracefulServer serves on them and keeps the port across a redeploy,
 * and any sd_listen_fds(3) program gets them as from systemd.
 */
import { expect } from 'chai';
import net from 'node:net';
import path from 'node:path';
import { fixtures, httpGet, root, spawnChild, until, type Child, freePort } from '../helpers.js';
import { LoadLoop, post } from '../load.js';

const cli = path.join(root, 'bin/graceful-restart.js');
const node = process.execPath;


/**
 * Prints what sd_listen_fds(3) would see, and the sockets it has open beyond
 * stdio, as one JSON line; then waits for SIGTERM (with PROBE_EXIT set: exits 3).
 */
const PROBE = [
  'import json, os, signal, socket',
  'fds = []',
  'for f in os.listdir("/proc/self/fd"):',
  '    try:',
  '        if int(f) > 2 and os.readlink("/proc/self/fd/" + f).startswith("socket:"): fds.append(int(f))',
  '    except OSError: pass',
  'fds.sort()',
  'socks = {}',
  'for fd in range(3, 3 + int(os.environ.get("LISTEN_FDS", "0"))):',
  '    s = socket.socket(fileno=fd)',
  '    socks[fd] = [s.getsockname()[1], s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)]',
  '    s.detach()',
  'env = {k: v for k, v in os.environ.items() if k.startswith("LISTEN_")}',
  'print(json.dumps({"pid": os.getpid(), "env": env, "fds": fds, "socks": socks}), flush=True)',
  'if os.environ.get("PROBE_EXIT"): os._exit(3)',
  'signal.sigwait([signal.SIGTERM])',
].join('\n');

describe('supervisor: socket activation (graceful-restart run under systemd-socket-activate)', function () {
  this.timeout(60_000);
  const started: Child[] = [];

  afterEach(async () => {
    for (const c of started.splice(0)) {
      // The generations it announced, then the supervisor (systemd-socket-activate exec'd it: same pid).
      for (const line of c.stdout) {
        const m = /^ready (\d+)/.exec(line) ?? /"pid": (\d+)/.exec(line);
        if (m) {
          try {
            process.kill(Number(m[1]), 'SIGKILL');
          } catch {
            // gone
          }
        }
      }
      c.kill('SIGKILL');
      await c.exited;
    }
  });

  /** activate runs `graceful-restart run -- <command>` under systemd-socket-activate with the given listeners. */
  async function activate(listen: { port: number; name: string }[], command: string[], env: string[] = [], runArgs: string[] = []): Promise<Child> {
    const args = listen.flatMap((l) => ['-l', `127.0.0.1:${l.port}`]);
    args.push(`--fdname=${listen.map((l) => l.name).join(':')}`, ...env.flatMap((e) => ['-E', e]), node, cli, 'run', ...runArgs, '--', ...command);
    const child = spawnChild('systemd-socket-activate', args);
    started.push(child);
    await until(() => child.stderr.filter((l) => l.includes('Listening on')).length === listen.length, 10_000, 'systemd-socket-activate to listen');
    return child;
  }

  it('passes the sockets on at fds 3.., with LISTEN_PID the program\'s own pid, LISTEN_FDS and LISTEN_FDNAMES', async () => {
    const ports = [await freePort(), await freePort()];
    const sup = await activate([{ port: ports[0]!, name: 'http' }, { port: ports[1]!, name: 'admin' }], ['python3', '-u', '-c', PROBE]);
    // systemd-socket-activate starts the supervisor on the first connection.
    const poke = net.connect(ports[0]!, '127.0.0.1');
    poke.on('error', () => undefined);
    const probe = JSON.parse(await sup.next(/^\{/)) as { pid: number; env: Record<string, string>; fds: number[]; socks: Record<string, number[]> };
    poke.destroy();
    expect(probe.env).to.deep.equal({ LISTEN_PID: String(probe.pid), LISTEN_FDS: '2', LISTEN_FDNAMES: 'http:admin' });
    expect(probe.socks).to.deep.equal({ 3: [ports[0], 1], 4: [ports[1], 1] });
    // The two sockets, and no other socket of the supervisor's (its notify and control sockets).
    expect(probe.fds).to.deep.equal([3, 4]);
    expect(sup.stderr.some((l) => l.includes('socket activation: passing http (fd 3), admin (fd 4) on to the application'))).to.equal(true);
  });

  it('passes the sockets again to a generation started by --restart', async () => {
    const port = await freePort();
    const sup = await activate([{ port, name: 'http' }], ['python3', '-u', '-c', PROBE], ['PROBE_EXIT=1'],
      ['--restart', 'always', '--restart-delay', '0', '--max-restarts', '1']);
    const poke = net.connect(port, '127.0.0.1');
    poke.on('error', () => undefined);
    const probes = [await sup.next(/^\{/), await sup.next(/^\{/)].map((l) => JSON.parse(l) as { pid: number; env: Record<string, string>; socks: Record<string, number[]> });
    poke.destroy();
    expect(probes[0]!.pid).to.not.equal(probes[1]!.pid);
    for (const p of probes) {
      expect(p.env).to.deep.equal({ LISTEN_PID: String(p.pid), LISTEN_FDS: '1', LISTEN_FDNAMES: 'http' });
      expect(p.socks).to.deep.equal({ 3: [port, 1] });
    }
    expect((await sup.exited).code).to.equal(3);
  });

  it('passes on nothing when LISTEN_PID is not the supervisor\'s, and does not hand the variables down', async () => {
    const child = spawnChild(node, [cli, 'run', '--', 'python3', '-u', '-c', PROBE], {
      env: { ...process.env, LISTEN_PID: '1', LISTEN_FDS: '1', LISTEN_FDNAMES: 'http' },
    });
    started.push(child);
    const probe = JSON.parse(await child.next(/^\{/)) as { env: Record<string, string>; fds: number[] };
    expect(probe.env).to.deep.equal({});
    expect(probe.fds).to.deep.equal([]);
  });

  it('a GracefulServer serves on the passed socket and keeps the port through redeploys under load', async () => {
    const port = await freePort();
    // APP_PORT=0: were the socket not passed, the app would bind another port.
    const sup = await activate([{ port, name: 'http' }], [node, path.join(fixtures, 'app.js')], ['APP_PORT=0']);
    const first = await httpGet({ port });
    const ready = (await sup.next(/^ready /)).split(' ');
    expect(ready.slice(2, 4)).to.deep.equal([String(port), '1']);
    expect(first).to.deep.equal({ status: 200, body: ready[1] });
    const load = new LoadLoop(port, 2, 2);
    const pids = [Number(ready[1])];
    for (let generation = 2; generation <= 3; generation++) {
      const res = await post(port, '/redeploy');
      expect(res).to.include({ ok: true });
      await sup.next(new RegExp(`^ready ${res.pid} ${port} ${generation} `));
      pids.push(res.pid as number);
    }
    const result = await load.stop();
    expect(result.errors).to.deep.equal([]);
    expect(result.requests).to.be.above(0);
    expect(await httpGet({ port })).to.deep.equal({ status: 200, body: String(pids[2]) });
    // The old generations are gone; the supervisor (systemd-socket-activate's pid) stays.
    await until(() => pids.slice(0, 2).every((p) => { try { process.kill(p, 0); return false; } catch { return true; } }), 20_000, 'the old generations to exit');
    process.kill(sup.pid, 0);
  });
});

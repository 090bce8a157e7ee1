/**
 * The container recipe (example/Dockerfile) and the Kubernetes one
 * (example/kubernetes.yaml). The image's exact ENTRYPOINT runs as PID 1 of a
 * pid namespace, over the image's file layout (see namespace.ts): its
 * HEALTHCHECK answers, SIGHUP redeploys, SIGTERM drains a request in flight
 * and exits 0. The manifest runs the same command lines, with the probes,
 * the grace period and the socket directory it needs.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { ControlClient } from '../../src/control/client.js';
import { freePort, gone, httpGet, spawnChild, until, type Child } from '../helpers.js';
import { childOf, imageCommand, nsSkipReason, testAppProject } from './namespace.js';
import { example, run } from './project.js';

interface Dockerfile {
  workdir: string;
  env: Record<string, string>;
  mkdirs: string[];
  entrypoint: string[];
  healthcheck: string[];
}

/** parseDockerfile reads the instructions the recipe relies on. */
function parseDockerfile(text: string): Dockerfile {
  const d: Dockerfile = { workdir: '/', env: {}, mkdirs: [], entrypoint: [], healthcheck: [] };
  for (const line of text.split('\n')) {
    let m: RegExpExecArray | null;
    if ((m = /^WORKDIR (\S+)$/.exec(line))) d.workdir = m[1]!;
    else if ((m = /^ENV (\w+)=(\S+)$/.exec(line))) d.env[m[1]!] = m[2]!;
    else if ((m = /^RUN mkdir -p (\S+)$/.exec(line))) d.mkdirs.push(m[1]!);
    else if ((m = /^ENTRYPOINT (\[.*\])$/.exec(line))) d.entrypoint = JSON.parse(m[1]!) as string[];
    else if ((m = /^HEALTHCHECK CMD (\[.*\])$/.exec(line))) d.healthcheck = JSON.parse(m[1]!) as string[];
  }
  return d;
}

const dockerfile = () => parseDockerfile(fs.readFileSync(example('Dockerfile'), 'utf8'));

/** nsPid: a process's pid inside its innermost pid namespace. */
function nsPid(pid: number): number {
  return Number(/^NSpid:\s+(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]!.trim().split(/\s+/).pop());
}

describe('recipes: the container and Kubernetes', function () {
  this.timeout(60_000);
  let box: Child | undefined;
  afterEach(async () => {
    if (!box) return;
    const pid1 = childOf(box.pid);
    if (pid1) process.kill(pid1, 'SIGKILL'); // PID 1 of its namespace: the kernel ends the rest with it
    await box.exited;
    box = undefined;
  });

  it('the ENTRYPOINT as PID 1: HEALTHCHECK answers, SIGHUP redeploys, SIGTERM drains a request in flight and exits 0', async function () {
    const why = await nsSkipReason(true);
    if (why) {
      console.log(`      skipped: ${why}`);
      this.skip();
    }
    const d = dockerfile();
    expect(d.entrypoint[0], 'the bin itself, not npx').to.equal('/srv/app/node_modules/.bin/graceful-restart');
    expect(d.mkdirs, 'the image makes the socket directory').to.include(path.dirname(d.entrypoint[d.entrypoint.indexOf('-s') + 1]!));
    const project = await testAppProject();
    const port = await freePort();
    const [cmd, args] = imageCommand(project, d.workdir, d.entrypoint, { pid: true, mkdirs: d.mkdirs });
    box = spawnChild(cmd, args, { env: { PATH: process.env.PATH, ...d.env, APP_PORT: String(port), APP_SOCKET: '/run/app/app.sock' } });
    const first = await box.next(/^ready /);
    const pid1 = (await until(() => childOf(box!.pid), 10_000, 'PID 1 of the namespace'))!;
    expect(nsPid(pid1)).to.equal(1);
    const cmdline = fs.readFileSync(`/proc/${pid1}/cmdline`, 'utf8').split('\0').slice(0, -1);
    expect(cmdline.slice(1), 'PID 1 is node running the ENTRYPOINT').to.deep.equal(d.entrypoint);
    expect(await httpGet({ port })).to.deep.equal({ status: 200, body: first.split(' ')[1] });

    // HEALTHCHECK CMD, run inside the container's namespaces as docker does.
    const health = await run('nsenter', ['-t', String(pid1), '-m', '-p', '--', ...d.healthcheck]);
    expect(health.code, health.stdout + health.stderr).to.equal(0);

    process.kill(pid1, 'SIGHUP');
    const second = await box.next(/^ready \d+ \d+ 2 /);
    const secondPid = second.split(' ')[1]!;
    expect(await httpGet({ port })).to.deep.equal({ status: 200, body: secondPid });

    // A request in flight on the serving generation, then `docker stop`.
    const slow = httpGet({ port, path: '/slow?ms=1500' });
    const supSock = `/proc/${pid1}/root/run/app/sup.sock`;
    await until(async () => {
      const c = await ControlClient.connect(supSock, 5_000);
      try {
        const s = await c.request('status', [], undefined, 5_000) as { pid: number; connections: number };
        return String(s.pid) === secondPid && s.connections >= 1;
      } finally {
        c.close();
      }
    }, 10_000, 'the slow request to be in flight');
    process.kill(pid1, 'SIGTERM');
    expect(await slow, 'the request in flight is answered').to.deep.equal({ status: 200, body: secondPid });
    expect(await box.exited, 'the container exits 0').to.deep.equal({ code: 0, signal: null });
    expect(gone(pid1)).to.equal(true);
    expect(box.stderr.filter((l) => /SIGTERM: forwarding/.test(l)), 'SIGTERM forwarded once').to.have.length(1);
    box = undefined;
  });

  it('the Kubernetes manifest: the image\'s command lines, health probes, a grace period above the shutdown timeout, the socket directory', () => {
    const yaml = createRequire(import.meta.url)('js-yaml') as { load(text: string): unknown };
    type Probe = { exec: { command: string[] } };
    const doc = yaml.load(fs.readFileSync(example('kubernetes.yaml'), 'utf8')) as {
      kind: string;
      spec: { template: { spec: {
        terminationGracePeriodSeconds: number;
        shareProcessNamespace?: boolean;
        containers: { command: string[]; env: { name: string; value: string }[]; ports: { containerPort: number }[];
          readinessProbe: Probe; livenessProbe: Probe; volumeMounts: { name: string; mountPath: string }[] }[];
        volumes: { name: string; emptyDir?: object }[];
      } } };
    };
    const d = dockerfile();
    expect(doc.kind).to.equal('Deployment');
    const pod = doc.spec.template.spec;
    const [c] = pod.containers;
    expect(pod.shareProcessNamespace, 'the supervisor stays PID 1').to.not.equal(true);
    expect(c!.command, 'the ENTRYPOINT the container test runs').to.deep.equal(d.entrypoint);
    expect(c!.readinessProbe.exec.command, 'the HEALTHCHECK the container test runs').to.deep.equal(d.healthcheck);
    expect(c!.livenessProbe.exec.command).to.deep.equal(d.healthcheck);
    const env = Object.fromEntries(c!.env.map((e) => [e.name, e.value]));
    expect(env.STATE_DIR).to.equal(d.env.STATE_DIR);
    expect(c!.ports[0]!.containerPort).to.equal(Number(env.PORT));
    const shutdown = Number(env.GRACEFUL_SHUTDOWN_TIMEOUT);
    expect(shutdown).to.be.above(0);
    expect(pod.terminationGracePeriodSeconds, 'drain (shutdown timeout) plus the take-back window fit').to.be.above(shutdown + 1);
    const sockDir = path.dirname(c!.command[c!.command.indexOf('-s') + 1]!);
    const mount = c!.volumeMounts.find((m) => m.mountPath === sockDir);
    expect(mount, 'a volume makes the socket directory').to.not.equal(undefined);
    expect(pod.volumes.find((v) => v.name === mount!.name)?.emptyDir).to.not.equal(undefined);
  });
});

/**
 * TLS session tickets across redeploys (real processes, real TLS clients):
 * the ticket keys of an https and an http2 secure listener go to each new
 * instance in the hand-off, never through the environment or a file, and
 * rotate on a schedule without failing a request.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { ControlClient, GracefulServer } from '../../src/index.js';
import { TicketKeys } from '../../src/server/ticket-keys.js';
import { endGenerations, fixtures, spawnFixture, tmpDir, until, type Child } from '../helpers.js';

interface Ports { orders: number; https: number; h2: number }
interface Answer { body: string; reused: boolean; session: Buffer | undefined }
type Kind = 'https' | 'h2';

const HOST = '127.0.0.1';
const tlsFiles = { key: fs.readFileSync(path.join(fixtures, '../../../test/fixtures/tls/key.pem')), cert: fs.readFileSync(path.join(fixtures, '../../../test/fixtures/tls/cert.pem')) };

/** connectTls opens a TLS connection offering session (if any), and keeps the last ticket the server sends. */
function connectTls(port: number, alpn: string, session: Buffer | undefined, maxVersion?: tls.SecureVersion): { socket: tls.TLSSocket; ticket: () => Buffer | undefined } {
  const socket = tls.connect({ host: HOST, port, rejectUnauthorized: false, session, ALPNProtocols: [alpn], maxVersion });
  let ticket: Buffer | undefined;
  socket.on('session', (s: Buffer) => (ticket = s));
  return { socket, ticket: () => ticket };
}

/** getHttps: one HTTP/1.1 request on a new TLS connection, closed by the server after the answer. */
function getHttps(port: number, session?: Buffer, maxVersion?: tls.SecureVersion): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const { socket, ticket } = connectTls(port, 'http/1.1', session, maxVersion);
    let text = '';
    socket.setEncoding('utf8');
    socket.on('secureConnect', () => socket.write(`GET / HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`));
    socket.on('data', (d: string) => (text += d));
    socket.on('error', reject);
    socket.on('end', () => {
      const [head, body] = text.split('\r\n\r\n');
      if (!/^HTTP\/1\.1 200 /.test(head ?? '')) return reject(new Error(`https answered ${JSON.stringify(text)}`));
      resolve({ body: body ?? '', reused: socket.isSessionReused(), session: ticket() });
    });
  });
}

/** getHttpsTo: getHttps with a server name (SNI). */
function getHttpsTo(port: number, servername: string, session?: Buffer): Promise<{ reused: boolean; session: Buffer | undefined }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: HOST, port, servername, rejectUnauthorized: false, session });
    let ticket: Buffer | undefined;
    let reused = false;
    socket.on('session', (t: Buffer) => (ticket = t));
    socket.on('secureConnect', () => {
      reused = socket.isSessionReused();
      socket.write(`GET / HTTP/1.1\r\nHost: ${servername}\r\nConnection: close\r\n\r\n`);
    });
    socket.resume();
    socket.on('error', reject);
    socket.on('end', () => resolve({ reused, session: ticket }));
  });
}

/** getH2: one HTTP/2 request on a new TLS connection (ALPN h2), then the session is closed. */
function getH2(port: number, session?: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const { socket, ticket } = connectTls(port, 'h2', session);
    const client = http2.connect(`https://${HOST}:${port}`, { createConnection: () => socket });
    client.on('error', reject);
    const req = client.request({ ':path': '/' });
    let body = '';
    req.setEncoding('utf8');
    req.on('response', (h) => {
      if (h[':status'] !== 200) reject(new Error(`h2 answered ${h[':status']}`));
    });
    req.on('data', (d: string) => (body += d));
    req.on('error', reject);
    req.on('end', () => {
      const reused = socket.isSessionReused();
      client.close(() => resolve({ body, reused, session: ticket() }));
    });
  });
}

const get = (kind: Kind, ports: Ports, session?: Buffer) => (kind === 'https' ? getHttps(ports.https, session) : getH2(ports.h2, session));

function post(port: number, p: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: HOST, port, path: p, method: 'POST', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The fixture, its generations and the keys each printed. */
class TicketApp {
  readonly pids: number[] = [];
  ports!: Ports;
  private constructor(readonly child: Child) {}

  static async start(env: Record<string, string> = {}): Promise<TicketApp> {
    const app = new TicketApp(spawnFixture('tls-tickets', [], { env: { ...process.env, ...env } }));
    const [, pid, , ports] = /^ready (\d+) (\d+) (.*)$/.exec(await app.child.next(/^ready /))!;
    app.pids.push(Number(pid));
    app.ports = JSON.parse(ports!) as Ports;
    await app.keysOf(Number(pid));
    return app;
  }

  get pid(): number {
    return this.pids[this.pids.length - 1]!;
  }

  /** keysOf: the latest key of each TLS listener of pid (https, h2), in hex, as it printed them (waits for both). */
  async keysOf(pid: number): Promise<string[]> {
    const latest = new Map<string, string>();
    await until(() => {
      for (const l of this.child.stdout) {
        const [word, p, name, hex] = l.split(' ');
        if (word === 'keys' && p === String(pid)) latest.set(name!, hex!);
      }
      return latest.size >= 2;
    }, 10_000, `the keys of ${pid}`);
    return [latest.get('https')!, latest.get('h2')!];
  }

  /** redeploy asks for one and resolves once it answered: the new instance serves alone (the old one stopped accepting). */
  async redeploy(): Promise<number> {
    const answer = JSON.parse(await post(this.ports.orders, '/redeploy')) as { ok: boolean; pid: number };
    expect(answer, JSON.stringify(answer)).to.include({ ok: true });
    this.pids.push(answer.pid);
    return answer.pid;
  }

  async stop(): Promise<void> {
    await endGenerations(this.child);
  }
}

describe('TLS session tickets across redeploys', function () {
  this.timeout(120_000);
  let app: TicketApp | undefined;
  afterEach(async () => {
    await app?.stop();
    app = undefined;
  });

  for (const kind of ['https', 'h2'] as const) {
    it(`a ${kind} client resumes its session on each new instance, over 5 redeploys`, async () => {
      app = await TicketApp.start();
      const first = await get(kind, app.ports);
      expect(first.body).to.equal(String(app.pid));
      expect(first.reused).to.equal(false);
      let session = first.session;
      expect(session, 'a ticket from the first instance').to.be.an.instanceOf(Buffer);
      const keys = await app.keysOf(app.pid);
      for (let i = 0; i < 5; i++) {
        const pid = await app.redeploy();
        expect(await app.keysOf(pid), `the keys of generation ${i + 2}`).to.deep.equal(keys);
        const again = await get(kind, app.ports, session);
        expect(again.body, `redeploy ${i + 1}`).to.equal(String(pid));
        expect(again.reused, `redeploy ${i + 1}: the session from pid ${app.pids[i]} resumed on pid ${pid}`).to.equal(true);
        session = again.session ?? session;
      }
    });
  }

  it('a TLS 1.2 client resumes with its ticket too', async () => {
    app = await TicketApp.start();
    const a = await getHttps(app.ports.https, undefined, 'TLSv1.2');
    const pid = await app.redeploy();
    const b = await getHttps(app.ports.https, a.session, 'TLSv1.2');
    expect([b.body, b.reused]).to.deep.equal([String(pid), true]);
  });

  it('a corrupt or forged ticket gets a full handshake, never a crash', async () => {
    app = await TicketApp.start();
    const { session } = await getHttps(app.ports.https);
    let full = 0;
    // Flip one byte at a time all over the saved session (its ticket included);
    // the client may refuse to send what it cannot parse any more.
    for (let at = 0; at < session!.length; at += 7) {
      const bad = Buffer.from(session!);
      bad[at] = bad[at]! ^ 0xff;
      const r = await getHttps(app.ports.https, bad).catch(() => null);
      if (r && !r.reused) full++;
      expect(r?.body ?? String(app.pid)).to.equal(String(app.pid));
    }
    expect(full, 'full handshakes').to.be.greaterThan(0);
    const after = await getHttps(app.ports.https, session);
    expect([after.body, after.reused]).to.deep.equal([String(app.pid), true]);
    expect(app.child.stderr.join('\n')).to.not.match(/Assertion|Error/);
  });

  it('keeps the keys out of the environment and out of every file', async () => {
    app = await TicketApp.start();
    const since = Date.now();
    for (let i = 0; i < 2; i++) await app.redeploy();
    const keys = await app.keysOf(app.pid);
    const forms = keys.flatMap((hex) => {
      const raw = Buffer.from(hex, 'hex');
      return [hex, raw.toString('base64'), raw.subarray(0, 16).toString('base64'), raw.subarray(16).toString('hex')];
    });
    const holds = (data: Buffer) => {
      for (const k of keys) if (data.includes(Buffer.from(k, 'hex').subarray(16))) return true;
      const text = data.toString('latin1');
      return forms.some((f) => text.includes(f));
    };
    for (const pid of app.pids.slice(1)) {
      expect(holds(fs.readFileSync(`/proc/${pid}/environ`)), `the environment of pid ${pid}`).to.equal(false);
      // Every regular file it has open.
      for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
        let target: string;
        try {
          target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
        } catch {
          continue;
        }
        if (!target.startsWith('/') || !fs.statSync(target, { throwIfNoEntry: false })?.isFile()) continue;
        expect(holds(fs.readFileSync(target)), `${target}, open in pid ${pid}`).to.equal(false);
      }
    }
    // Every file written in the temporary directory since the first redeploy.
    const scan = (dir: string, depth: number): void => {
      let entries: fs.Dirent[];
      try {
        entries = fs.readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        const p = path.join(dir, e.name);
        const st = fs.lstatSync(p, { throwIfNoEntry: false });
        if (!st || st.mtimeMs < since - 1000) continue;
        if (e.isDirectory() && depth > 0) scan(p, depth - 1);
        else if (e.isFile() && st.size < 1 << 20) {
          let data: Buffer;
          try {
            data = fs.readFileSync(p);
          } catch {
            continue; // not ours to read (or gone meanwhile)
          }
          expect(holds(data), p).to.equal(false);
        }
      }
    };
    scan(os.tmpdir(), 2);
  });

  it('rotate-tickets: a ticket of the key before still resumes (and gets renewed), one of two keys before does a full handshake', async () => {
    app = await TicketApp.start();
    for (const kind of ['https', 'h2'] as const) {
      const a = await get(kind, app.ports);
      expect(JSON.parse(await post(app.ports.orders, '/rotate'))).to.deep.equal(['https', 'h2']);
      const b = await get(kind, app.ports, a.session);
      expect(b.reused, `${kind}: a ticket of the previous key`).to.equal(true);
      expect(JSON.parse(await post(app.ports.orders, '/rotate'))).to.deep.equal(['https', 'h2']);
      const c = await get(kind, app.ports, a.session);
      expect(c.reused, `${kind}: a ticket two rotations old`).to.equal(false);
      expect(c.body).to.equal(String(app.pid));
      // b's ticket was renewed under the key that is now the previous one.
      const d = await get(kind, app.ports, b.session);
      expect(d.reused, `${kind}: the renewed ticket`).to.equal(true);
    }
  });

  it('rotates on its schedule, across a redeploy, without failing a request', async () => {
    app = await TicketApp.start({ TICKET_ROTATION: '300' });
    const old = await getHttps(app.ports.https);
    const pid0 = app.pid;
    await app.child.next(new RegExp(`^rotated ${pid0} https 2$`));
    // Requests on new connections, each offering the latest ticket, while the keys rotate and across a redeploy.
    let session: Buffer | undefined;
    let reused = 0;
    let full = 0;
    let stop = false;
    const loop = (async () => {
      while (!stop) {
        const r = await getHttps(app!.ports.https, session);
        if (r.reused) reused++;
        else full++;
        session = r.session ?? session;
      }
    })();
    const stale = await getHttps(app.ports.https, old.session);
    expect(stale.reused, 'a ticket older than 2 rotations').to.equal(false);
    const pid = await app.redeploy();
    await app.child.next(new RegExp(`^rotated ${pid} https 2$`));
    stop = true;
    await loop; // rejects on the first failed request
    expect(reused, 'requests that resumed').to.be.greaterThan(0);
    expect(full, 'full handshakes').to.be.greaterThan(0);
  });
});

describe('TLS session tickets with workers', function () {
  this.timeout(120_000);
  let child: Child | undefined;
  afterEach(async () => {
    await endGenerations(child, /^(?:ready|worker \d+) (\d+)/);
    child = undefined;
  });

  /** pidsOf: the workers generation g announced. */
  const workersOf = (g: number) => new Set(child!.stdout.flatMap((l) => {
    const m = /^worker \d+ (\d+) (\d+)$/.exec(l);
    return m && Number(m[2]) === g ? [m[1]!] : [];
  }));

  it('every worker serves with the primary\'s keys, and the next generation too, after the primary rotated them', async () => {
    const sock = path.join(tmpDir(), 'ctl.sock');
    child = spawnFixture('tls-workers', [], { env: { ...process.env, APP_SOCKET: sock } });
    const port = Number((await child.next(/^ready /)).split(' ')[2]);
    await until(() => workersOf(1).size === 2, 10_000, 'the 2 workers');
    const first = await getHttps(port);
    // New connections spread over the workers (SO_REUSEPORT); each one resumes.
    const seen = new Set<string>();
    for (let i = 0; i < 40 && seen.size < 2; i++) {
      const r = await getHttps(port, first.session);
      expect(r.reused, `connection ${i} (worker pid ${r.body})`).to.equal(true);
      seen.add(r.body);
    }
    expect(seen.size, 'workers that answered').to.equal(2);
    // A worker does not rotate alone (its siblings would not know its key): each one ran rotate-tickets.
    expect(child.stdout.filter((l) => l.startsWith('task ')).sort()).to.deep.equal([0, 1]
      .map((id) => `task ${id} a worker serves with the TLS ticket keys of its primary: run rotate-tickets on the primary`));
    const c = await ControlClient.connect(sock, 5_000);
    try {
      // The primary rotates: the next workers get the new key, and the one before still resumes.
      expect(await c.request('task', ['rotate-tickets'], undefined, 10_000)).to.equal('rotated the TLS ticket keys of https');
      await c.request('redeploy', [], undefined, 60_000);
    } finally {
      c.close();
    }
    await until(() => workersOf(2).size === 2, 10_000, 'the 2 new workers');
    const next = new Set<string>();
    for (let i = 0; i < 40 && next.size < 2; i++) {
      const r = await getHttps(port, first.session);
      expect(r.reused, `after the redeploy, connection ${i} (worker pid ${r.body})`).to.equal(true);
      if (workersOf(2).has(r.body)) next.add(r.body);
    }
    expect(next.size, 'new workers that answered').to.equal(2);
    expect(child.stderr.filter((l) => /made its own/.test(l))).to.deep.equal([]);
  });
});

describe('TLS ticket-key options', () => {
  it('refuses a bad ticketKeyRotation with ERR_GRACEFUL_INVALID_ARGUMENT', async () => {
    for (const bad of [-1, 50, 1.5, 2 ** 31, Number.NaN, '1000']) {
      expect(() => new GracefulServer({ ticketKeyRotation: bad as number, signals: false }), String(bad)).to.throw(/ticketKeyRotation must be 0 \(never rotate\) or a whole number of ms from 100 to 2147483647/)
        .with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    }
    const app = new GracefulServer({ signals: false });
    let err: (Error & { code?: string }) | undefined;
    await app.listen('https', https.createServer(tlsFiles), { port: 0, host: HOST, ticketKeyRotation: -5 }).catch((e: Error) => (err = e));
    expect(err?.message).to.equal('listen("https"): ticketKeyRotation must be 0 (never rotate) or a whole number of ms from 100 to 2147483647, got -5');
    expect(err?.code).to.equal('ERR_GRACEFUL_INVALID_ARGUMENT');
    await app.telinit(0);
  });

  it('the rotate-tickets task rotates the keys of every TLS listener, and the ticketkeys event says so', async () => {
    const app = new GracefulServer({ signals: false, log: () => undefined });
    const secure = https.createServer(tlsFiles);
    await app.listen('https', secure, { port: 0, host: HOST });
    await app.listen('plain', http.createServer(), { port: 0, host: HOST });
    await app.ready();
    const events: unknown[] = [];
    app.on('ticketkeys', (e) => events.push(e));
    const before = secure.getTicketKeys();
    expect(await app.runTask('rotate-tickets')).to.equal('rotated the TLS ticket keys of https');
    expect(secure.getTicketKeys().equals(before)).to.equal(false);
    expect(events).to.deep.equal([{ listener: 'https', rotations: 1 }]);
    await app.telinit(0);
  });

  it('makes its own keys, and says so, when the predecessor sent none or sent garbage', () => {
    for (const [inherited, why] of [
      [{ name: 'https', kind: 'listener' }, 'sent none (an older version)'],
      [{ name: 'https', kind: 'listener', ticketKeys: 'not base64!', ticketKeyAge: 1 }, 'sent keys that are not 48 or 96 bytes with an age'],
      [{ name: 'https', kind: 'listener', ticketKeys: Buffer.alloc(47).toString('base64'), ticketKeyAge: 1 }, 'sent keys that are not 48 or 96 bytes with an age'],
      [{ name: 'https', kind: 'listener', ticketKeys: Buffer.alloc(48).toString('base64'), ticketKeyAge: -1 }, 'sent keys that are not 48 or 96 bytes with an age'],
    ] as const) {
      const lines: string[] = [];
      const server = https.createServer(tlsFiles);
      const before = server.getTicketKeys();
      const keys = TicketKeys.attach(server, { name: 'https', rotation: 0, inherited, log: (m) => lines.push(m) })!;
      expect(lines).to.deep.equal([`TLS ticket keys of "https": the predecessor ${why}, so this instance made its own; sessions from before this redeploy do a full handshake`]);
      expect(server.getTicketKeys().equals(before)).to.equal(false);
      expect(Buffer.from(String(keys.meta().ticketKeys), 'base64').equals(server.getTicketKeys())).to.equal(true);
    }
    expect(TicketKeys.attach(http.createServer(), { name: 'http', rotation: 0, log: () => undefined })).to.equal(null);
  });

  it('SNI contexts (SNICallback, addContext) and setSecureContext() keep the keys that travel', async () => {
    const one = (server: https.Server) => new Promise<number>((resolve) => server.listen(0, HOST, () => resolve((server.address() as { port: number }).port)));
    const make = () => {
      const server = https.createServer({ ...tlsFiles, SNICallback: (_n, cb) => cb(null, tls.createSecureContext(tlsFiles)) }, (_q, r) => r.end('ok'));
      server.addContext('other.test', tlsFiles);
      return server;
    };
    const first = make();
    const keys = TicketKeys.attach(first, { name: 'https', rotation: 0, log: () => undefined })!;
    const a = await getHttpsTo(await one(first), 'sni.test');
    first.close();
    // What a new instance does with the meta it got, on a server with a new certificate.
    const second = make();
    TicketKeys.attach(second, { name: 'https', rotation: 0, inherited: keys.meta(), log: () => undefined })!;
    second.setSecureContext(tlsFiles);
    const port = await one(second);
    try {
      for (const servername of ['sni.test', 'other.test']) {
        const b = await getHttpsTo(port, servername, a.session);
        expect(b.reused, servername).to.equal(true);
      }
    } finally {
      second.close();
    }
  });

  it('keeps the schedule across a redeploy: a key the predecessor made a period ago rotates at once', async () => {
    const raw = Buffer.alloc(48, 7);
    const server = https.createServer(tlsFiles);
    let rotated!: () => void;
    const done = new Promise<void>((resolve) => (rotated = resolve));
    const keys = TicketKeys.attach(server, {
      name: 'https', rotation: 3_600_000, inherited: { ticketKeys: raw.toString('base64'), ticketKeyAge: 3_600_001 }, log: () => undefined, rotated: () => rotated(),
    })!;
    keys.resume(); // as the listener does when it starts accepting
    await done; // an hour-long period: only the inherited age makes this come now
    keys.pause();
    const now = Buffer.from(String(keys.meta().ticketKeys), 'base64');
    expect(now.subarray(48).equals(raw), 'the inherited key is the previous one').to.equal(true);
    expect(now.subarray(0, 48).equals(raw)).to.equal(false);
  });

  it('takes good keys from the predecessor, with the previous one', () => {
    const raw = Buffer.alloc(96);
    raw.fill(1, 0, 48);
    raw.fill(2, 48);
    const server = https.createServer(tlsFiles);
    const keys = TicketKeys.attach(server, { name: 'https', rotation: 0, inherited: { ticketKeys: raw.toString('base64'), ticketKeyAge: 5 }, log: () => expect.fail('no log') })!;
    expect(server.getTicketKeys().equals(raw.subarray(0, 48))).to.equal(true);
    expect(keys.meta().ticketKeys).to.equal(raw.toString('base64'));
    expect(keys.meta().ticketKeyAge).to.be.at.least(5);
  });
});

/**
 * A client that loops requests while redeploys happen: keep-alive loops share
 * an agent, fresh loops open a connection per request. Every error counts
 * (ECONNRESET, EPIPE, a hang-up, a timeout, a non-200); nothing is retried.
 */
import http from 'node:http';

export interface LoadResult {
  requests: number;
  errors: string[];
  /** pids in the order each loop saw them, loop by loop. */
  perLoop: number[][];
}

export class LoadLoop {
  private running = true;
  private readonly loops: Promise<void>[] = [];
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  readonly result: LoadResult = { requests: 0, errors: [], perLoop: [] };

  constructor(port: number, keepAlive: number, fresh: number, path = '/') {
    for (let i = 0; i < keepAlive + fresh; i++) {
      const seen: number[] = [];
      this.result.perLoop.push(seen);
      this.loops.push(this.loop(port, path, i < keepAlive ? this.agent : false, seen));
    }
  }

  private async loop(port: number, path: string, agent: http.Agent | false, seen: number[]): Promise<void> {
    while (this.running) {
      try {
        const body = await request(port, path, agent);
        this.result.requests++;
        const pid = Number(body);
        if (seen[seen.length - 1] !== pid) seen.push(pid);
      } catch (err) {
        this.result.errors.push(`${agent ? 'keep-alive' : 'fresh'}: ${(err as Error).message}`);
      }
    }
  }

  /** stop ends the loops after their current request and resolves with the result. */
  async stop(): Promise<LoadResult> {
    this.running = false;
    await Promise.all(this.loops);
    this.agent.destroy();
    return this.result;
  }
}

function request(port: number, path: string, agent: http.Agent | false): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`status ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
  });
}

/**
 * ServedBy follows which instance last answered each of a load's clients
 * (the pid in the body), so that a test waits for "every client made a
 * request on the instance now serving" instead of for a fixed time.
 */
export class ServedBy {
  private readonly last: (string | undefined)[];
  private readonly waiters: { pid: string; resolve(): void }[] = [];

  constructor(clients: number) {
    this.last = new Array<string | undefined>(clients);
  }

  /** saw: client i got an answer from pid. */
  saw(i: number, pid: string): void {
    this.last[i] = pid;
    for (const w of [...this.waiters]) {
      if (this.last.every((p) => p === w.pid)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  }

  /** all resolves once the last answer of every client came from pid. */
  all(pid: number | string): Promise<void> {
    const want = String(pid);
    if (this.last.every((p) => p === want)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ pid: want, resolve }));
  }
}

/** Pooled: what pooledClients saw. */
export interface Pooled {
  requests: number;
  errors: string[];
  /** Requests that had to open a connection after the client's first. */
  reopened: number;
}

/**
 * pooledClients: `clients` loops, each with its own keep-alive http.Agent of
 * one socket, a request to `/` (answered with the server's pid) then a random
 * pause up to maxPauseMs. Nothing is retried: every request that does not end
 * in a 200 is a failure. servedBy(pid) resolves once every client's last
 * answer came from pid.
 */
export function pooledClients(port: number, clients: number, maxPauseMs: number): { stop(): Promise<Pooled>; servedBy(pid: number): Promise<void> } {
  const result: Pooled = { requests: 0, errors: [], reopened: 0 };
  const served = new ServedBy(clients);
  let running = true;
  const loops = [...Array(clients).keys()].map(async (i) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    let first = true;
    while (running) {
      await new Promise<void>((resolve) => {
        const req = http.get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
          if (!first && !req.reusedSocket) result.reopened++;
          first = false;
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => {
            if (res.statusCode === 200) {
              result.requests++;
              served.saw(i, body);
            } else {
              result.errors.push(`status ${res.statusCode}`);
            }
            resolve();
          });
          res.on('error', (err) => {
            result.errors.push(err.message);
            resolve();
          });
        });
        req.on('error', (err: Error & { code?: string }) => {
          result.errors.push(err.code ?? err.message);
          resolve();
        });
        req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
      });
      // The pause is the traffic shape under test: a pooled client reuses its connection at any moment.
      await new Promise((r) => setTimeout(r, Math.random() * maxPauseMs));
    }
    agent.destroy();
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      return result;
    },
    servedBy: (pid) => served.all(pid),
  };
}

/** post sends a POST on a fresh connection and parses the JSON answer. */
export function post(port: number, path: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        try {
          resolve(JSON.parse(body) as Record<string, unknown>);
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('error', reject);
    req.end();
  });
}

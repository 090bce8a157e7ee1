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

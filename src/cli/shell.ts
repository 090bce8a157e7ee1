/**
 * The interactive shell of `graceful-restart -s <socket>` on a terminal. It
 * behaves as the node REPL or psql do:
 *
 * - Ctrl-C while a command runs (a stream, a redeploy) stops that command:
 *   the connection it ran on is closed, so its `ctx.signal` fires in the
 *   server, and the shell goes on on a new one. (A redeploy goes on in the
 *   server; the shell says so.)
 * - At the prompt Ctrl-C drops the typed line; on an empty line it says how
 *   to leave, and a second Ctrl-C in a row leaves, as Ctrl-D and `quit` do.
 * - When the server goes away (it halted, or was killed), the shell says so
 *   and exits 1. A connection the server closed while the server still
 *   answers (an idle timeout) is replaced without a word.
 * - The prompt shows the pid and generation that serve, and follows a
 *   redeploy. Replies print as the CLI prints them: a redeploy reads the same.
 * - Completion goes beyond the first word (see complete.ts); history is kept
 *   between sessions (see history.ts).
 */
import readline from 'node:readline';
import { ControlClient } from '../control/client.js';
import { tokenize } from '../control/parse.js';
import { errorCode } from '../errors.js';
import { complete, parseHelp, type CompletionSources } from './complete.js';
import { EXIT_FAILED, EXIT_OK, Exit, connect, serverUids } from './connect.js';
import { historyFile, loadHistory, saveHistory, HISTORY_SIZE } from './history.js';
import { requestOn } from './reply.js';

export interface ShellOptions {
  /** The control socket. */
  path: string;
  /** ms to wait for a connection or an answer. */
  timeout: number;
  /** Print the JSON replies. */
  json?: boolean;
  input?: NodeJS.ReadStream;
  output?: NodeJS.WriteStream;
  /** The history file (default: historyFile(); null keeps none). */
  history?: string | null;
}

/** The hint the first Ctrl-C on an empty line prints. */
export const LEAVE_HINT = '(To leave, press Ctrl-C again or Ctrl-D, or type quit)';

/** shell runs the interactive shell until the user leaves (0) or the server goes away (1); throws Exit if it cannot connect. */
export async function shell(options: ShellOptions): Promise<number> {
  const client = await connect(options.path, options.timeout);
  return new Shell(options, client).run();
}

interface Running {
  cmd: string;
  cancelled: boolean;
  /** The command has its reply: what is left (the prompt's refresh) is not the command any more. */
  replied: boolean;
}

class Shell {
  private readonly input: NodeJS.ReadStream;
  private readonly output: NodeJS.WriteStream;
  private readonly historyPath: string | null;
  private rl!: readline.Interface;
  private running: Running | null = null;
  /** Lines typed while a command ran, run after it. */
  private readonly queue: string[] = [];
  /** Ctrl-C pressed on an empty line, in a row. */
  private interrupts = 0;
  private sources: CompletionSources = { specs: new Map(), tasks: [] };
  private pid: number | null = null;
  private generation: number | null = null;
  private history: string[] = [];
  private finished = false;
  private finish!: (code: number) => void;

  constructor(private readonly options: ShellOptions, private client: ControlClient) {
    this.input = options.input ?? process.stdin;
    this.output = options.output ?? process.stdout;
    this.historyPath = options.history === undefined ? historyFile() : options.history;
  }

  async run(): Promise<number> {
    await this.learn();
    await this.refresh();
    this.history = this.input.isTTY ? loadHistory(this.historyPath) : [];
    this.rl = readline.createInterface({
      input: this.input,
      output: this.output,
      terminal: true,
      history: [...this.history],
      historySize: HISTORY_SIZE,
      removeHistoryDuplicates: true,
      completer: (line: string) => complete(line, this.sources),
    });
    this.rl.on('history', (h: string[]) => {
      this.history = h;
    });
    this.rl.on('line', (line) => this.onLine(line));
    this.rl.on('SIGINT', () => this.onInterrupt());
    this.rl.on('close', () => this.onInputEnd());
    this.watch(this.client);
    const done = new Promise<number>((resolve) => {
      this.finish = (code) => {
        if (this.finished) return;
        this.finished = true;
        resolve(code);
      };
    });
    this.prompt();
    const code = await done;
    this.saveHistory();
    this.rl.close();
    this.client.close();
    return code;
  }

  private out(line: string): void {
    this.output.write(`${line}\n`);
  }

  private prompt(): void {
    const where = this.pid === null ? '' : ` pid ${this.pid}${this.generation === null ? '' : ` gen ${this.generation}`}`;
    this.rl.setPrompt(`graceful${where}> `);
    this.rl.prompt(true); // a line typed ahead keeps its cursor
  }

  /** learn asks the server for its commands (completion) and tasks; a server that cannot tell leaves them as they were. */
  private async learn(): Promise<void> {
    try {
      const help = await this.client.request('help', [], undefined, this.options.timeout);
      if (Array.isArray(help)) this.sources = { ...this.sources, specs: parseHelp(help.map(String)) };
    } catch {
      // completion is a nicety
    }
    if (!this.sources.specs.has('task')) return;
    try {
      const tasks = (await this.client.request('task', [], undefined, this.options.timeout)) as { tasks?: unknown };
      if (Array.isArray(tasks?.tasks)) this.sources = { ...this.sources, tasks: tasks.tasks.map(String) };
    } catch {
      // no tasks
    }
  }

  /** refresh learns the pid and generation that serve, for the prompt; after a redeploy, the new commands too. */
  private async refresh(): Promise<void> {
    let s: { pid?: unknown; generation?: unknown };
    try {
      s = (await this.client.request('status', [], undefined, this.options.timeout)) as typeof s;
    } catch {
      return;
    }
    const pid = typeof s?.pid === 'number' ? s.pid : null;
    const changed = this.pid !== null && pid !== this.pid;
    this.pid = pid;
    this.generation = typeof s?.generation === 'number' ? s.generation : null;
    if (changed) await this.learn();
  }

  /** watch: a connection the server closes while nothing runs is replaced, or, if nothing answers, ends the shell. */
  private watch(client: ControlClient): void {
    client.onEnd(() => {
      if (client === this.client && this.running === null && !this.finished) {
        this.running = { cmd: '', cancelled: false, replied: true }; // lines typed meanwhile wait
        void this.replace(true).then((ok) => {
          this.running = null;
          if (ok) this.next();
        });
      }
    });
  }

  /**
   * replace opens a new connection in place of the current one; when nothing
   * answers any more, says that the server went away and ends the shell (1).
   * idle: the prompt is on the screen, and is cleared before a message.
   */
  private async replace(idle: boolean): Promise<boolean> {
    this.client.close();
    if (this.finished) return false;
    try {
      this.client = await ControlClient.connect(this.options.path, this.options.timeout, { serverUids });
    } catch (err) {
      if (idle) {
        readline.clearLine(this.output, 0);
        readline.cursorTo(this.output, 0);
      }
      const who = this.pid === null ? 'the server' : `the server (pid ${this.pid})`;
      process.stderr.write(`error: ${who} went away (it halted or exited): nothing answers at ${this.options.path} (${errorCode(err) ?? (err as Error).message}); leaving the shell\n`);
      this.finish(EXIT_FAILED);
      return false;
    }
    if (this.finished) {
      this.client.close(); // left while it connected
      return false;
    }
    this.watch(this.client);
    await this.refresh();
    return true;
  }

  private onLine(line: string): void {
    if (this.finished) return;
    this.interrupts = 0;
    if (this.running !== null) {
      this.queue.push(line);
      return;
    }
    void this.execute(line);
  }

  /** next runs a line typed meanwhile, or shows the prompt. */
  private next(): void {
    if (this.finished) return;
    const line = this.queue.shift();
    if (line === undefined) this.prompt();
    else void this.execute(line);
  }

  private async execute(line: string): Promise<void> {
    let words: string[];
    try {
      words = tokenize(line.trim());
    } catch (err) {
      process.stderr.write(`error: ${(err as Error).message}\n`);
      return this.next();
    }
    const [cmd, ...args] = words;
    if (cmd === undefined) return this.next();
    if (cmd === 'quit' || cmd === 'exit') return this.finish(EXIT_OK);
    const running: Running = { cmd, cancelled: false, replied: false };
    this.running = running;
    const client = this.client;
    let late = false;
    try {
      await requestOn(client, cmd, args, { json: this.options.json, timeout: this.options.timeout }, (l) => this.out(l));
    } catch (err) {
      // Ctrl-C said so already; a reply that is late leaves this connection out of step: a new one is used.
      if (!running.cancelled) process.stderr.write(`${(err as Error).message}\n`);
      late = err instanceof Exit && /no answer within/.test(err.message);
    }
    running.replied = true;
    if (!running.cancelled && !late && !client.isEnded) await this.refresh();
    if (this.finished) return; // left meanwhile (Ctrl-C twice, Ctrl-D)
    // The server may close the connection after a reply (telinit 0): whether it still answers decides.
    const ok = running.cancelled || late || this.client.isEnded ? await this.replace(false) : true;
    this.running = null;
    if (ok) this.next();
  }

  private onInterrupt(): void {
    if (this.finished) return;
    if (this.running !== null && !this.running.replied) {
      if (this.running.cancelled) return; // reconnecting already
      this.running.cancelled = true;
      this.queue.length = 0;
      this.out('^C');
      if (this.running.cmd === 'redeploy' || this.running.cmd === 'restart') {
        this.out('(the redeploy goes on in the server: status shows how it ends)');
      }
      this.client.close(); // the command's ctx.signal fires in the server
      return;
    }
    if (this.rl.line !== '') {
      this.interrupts = 0;
      this.output.write('^C\n');
      this.rl.write(null, { ctrl: true, name: 'e' });
      this.rl.write(null, { ctrl: true, name: 'u' }); // the typed line is dropped, and the prompt drawn again
      return;
    }
    if (++this.interrupts >= 2) {
      this.output.write('^C\n');
      this.finish(EXIT_OK);
      return;
    }
    this.output.write(`^C\n${LEAVE_HINT}\n`);
    this.prompt();
  }

  /** onInputEnd: Ctrl-D on an empty line (or the terminal went away): leave, stopping what runs. */
  private onInputEnd(): void {
    if (this.finished) return;
    if (this.running !== null) {
      this.running.cancelled = true;
      this.client.close();
    }
    this.output.write('\n');
    this.finish(EXIT_OK);
  }

  /** saveHistory keeps this session's lines for the next one (only on a terminal); a failure is said once, never fatal. */
  private saveHistory(): void {
    if (!this.input.isTTY || this.historyPath === null) return;
    try {
      saveHistory(this.historyPath, this.history);
    } catch (err) {
      process.stderr.write(`graceful-restart: the shell history was not saved to ${this.historyPath}: ${errorCode(err) ?? ''} ${(err as Error).message}\n`);
    }
  }
}

/**
 * Tasks: the named tasks of an instance (SIGUSR1/SIGUSR2 and the control
 * command `task` run them): the application's, and the library's own
 * (reopen, rotate-tickets). Where one runs is its role's choice (with
 * workers, an application's task runs on every worker).
 */
import { DuplicateNameError, UnknownTaskError, invalidArgument } from '../errors.js';

export type Task = (args: string[]) => unknown;

export class Tasks {
  private readonly tasks = new Map<string, Task>();

  /** add registers a task; a name of other characters than letters, digits, '_', '.', '-' throws, a name taken ERR_GRACEFUL_DUPLICATE_NAME. */
  add(name: string, run: Task): void {
    if (typeof name !== 'string' || !/^[\w.-]+$/.test(name)) throw invalidArgument('task', `a task name must be letters, digits, '_', '.', '-', got ${JSON.stringify(name)}`);
    if (typeof run !== 'function') throw invalidArgument('task', 'run must be a function');
    if (this.tasks.has(name)) throw new DuplicateNameError(`the task "${name}" exists already`);
    this.tasks.set(name, run);
  }

  /** get: the task of that name; throws ERR_GRACEFUL_UNKNOWN_TASK when there is none. */
  get(name: string): Task {
    const run = this.tasks.get(name);
    if (!run) throw new UnknownTaskError(`no task "${name}": the tasks are ${this.names().join(', ')}`);
    return run;
  }

  /** names: the registered tasks, sorted. */
  names(): string[] {
    return [...this.tasks.keys()].sort();
  }
}

/**
 * Lifecycle hooks (after the Diarkis SDK): start, ready, started, stop,
 * terminate. Hooks of one kind run one after another, in registration order.
 */
export type HookKind = 'start' | 'ready' | 'started' | 'stop' | 'terminate';
export type Hook = () => void | Promise<void>;
/** StopHook: given a signal that fires at the shutdown timeout. */
export type StopHook = (signal: AbortSignal) => void | Promise<void>;

export class Hooks {
  private readonly hooks = new Map<HookKind, ((signal: AbortSignal) => void | Promise<void>)[]>();

  add(kind: HookKind, hook: Hook | StopHook): void {
    const list = this.hooks.get(kind) ?? [];
    list.push(hook);
    this.hooks.set(kind, list);
  }

  /** run awaits each hook of kind in order; the first error stops the run and is thrown. */
  async run(kind: Exclude<HookKind, 'stop'>): Promise<void> {
    const signal = new AbortController().signal;
    for (const hook of this.hooks.get(kind) ?? []) await hook(signal);
  }

  /**
   * runStop runs the stop hooks with a signal that fires at deadline, and
   * returns at the latest then: 'done', 'overran' (still running at the
   * deadline; they are left behind), or the first error thrown.
   */
  async runStop(deadline: number): Promise<'done' | 'overran' | Error> {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'overran'>((resolve) => {
      timer = setTimeout(() => {
        controller.abort(new Error('the shutdown timeout passed'));
        resolve('overran');
      }, Math.max(0, deadline - Date.now()));
    });
    const run = (async () => {
      for (const hook of this.hooks.get('stop') ?? []) await hook(controller.signal);
      return 'done' as const;
    })().catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
    try {
      return await Promise.race([run, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Tasks alone: names checked, a name taken refused, an unknown one named with the list. */
import { expect } from 'chai';
import { Tasks } from '../../src/server/tasks.js';

describe('Tasks', () => {
  const codeOf = (fn: () => unknown): string | undefined => {
    try {
      fn();
    } catch (err) {
      return (err as { code?: string }).code;
    }
    return undefined;
  };

  it('registers tasks by name, lists them sorted, and runs the one asked', async () => {
    const tasks = new Tasks();
    tasks.add('reopen', () => 'reopened');
    tasks.add('flush-cache.v2', (args) => args.join('+'));
    expect(tasks.names()).to.deep.equal(['flush-cache.v2', 'reopen']);
    expect(await tasks.get('flush-cache.v2')(['a', 'b'])).to.equal('a+b');
  });

  it('refuses a bad name or run (ERR_GRACEFUL_INVALID_ARGUMENT), a name taken (ERR_GRACEFUL_DUPLICATE_NAME), an unknown task (ERR_GRACEFUL_UNKNOWN_TASK)', () => {
    const tasks = new Tasks();
    tasks.add('reopen', () => undefined);
    expect(codeOf(() => tasks.add('a b', () => undefined))).to.equal('ERR_GRACEFUL_INVALID_ARGUMENT');
    expect(() => tasks.add('x', 'nope' as never)).to.throw('task: run must be a function');
    expect(codeOf(() => tasks.add('reopen', () => undefined))).to.equal('ERR_GRACEFUL_DUPLICATE_NAME');
    expect(codeOf(() => tasks.get('missing'))).to.equal('ERR_GRACEFUL_UNKNOWN_TASK');
    expect(() => tasks.get('missing')).to.throw('no task "missing": the tasks are reopen');
  });
});

/** The final line of an answer on the control socket, in plain and JSON mode, exactly. */
import { expect } from 'chai';
import { refusalLine, replyLine } from '../../src/control/replies.js';
import { UsageError } from '../../src/errors.js';

describe('control replies', () => {
  it('replyLine, plain mode: ok, or the error on one line', () => {
    expect(replyLine(false, undefined, null, { any: 'result' })).to.equal('ok\n');
    expect(replyLine(false, 7, new Error('two\nlines'))).to.equal('error: two lines\n');
  });

  it('replyLine, JSON mode: the result (null when none), the request id first when given', () => {
    expect(replyLine(true, undefined, null, { pid: 1 })).to.equal('{"ok":true,"result":{"pid":1}}\n');
    expect(replyLine(true, undefined, null)).to.equal('{"ok":true,"result":null}\n');
    expect(replyLine(true, 'a', null, 3)).to.equal('{"id":"a","ok":true,"result":3}\n');
  });

  it('replyLine, JSON mode: the error\'s code, or ERR_GRACEFUL_COMMAND_FAILED for an error without one', () => {
    expect(replyLine(true, 2, new UsageError('usage: x'))).to.equal('{"id":2,"ok":false,"error":{"code":"ERR_GRACEFUL_USAGE","message":"usage: x"}}\n');
    expect(replyLine(true, undefined, new Error('boom'))).to.equal('{"ok":false,"error":{"code":"ERR_GRACEFUL_COMMAND_FAILED","message":"boom"}}\n');
  });

  it('refusalLine: coded in JSON mode, a plain error line otherwise', () => {
    expect(refusalLine(true, 'ERR_GRACEFUL_TOO_MANY_CONNECTIONS', 'too many')).to.equal('{"ok":false,"error":{"code":"ERR_GRACEFUL_TOO_MANY_CONNECTIONS","message":"too many"}}\n');
    expect(refusalLine(false, 'ERR_GRACEFUL_TOO_MANY_CONNECTIONS', 'too many')).to.equal('error: too many\n');
  });
});

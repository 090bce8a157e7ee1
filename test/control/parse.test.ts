/** control/parse.ts: request lines in plain mode (shell-like words) and JSON mode. */
import { expect } from 'chai';
import { ControlParseError } from '../../src/errors.js';
import { MAX_LINE_BYTES, parseRequest, quote, tokenize } from '../../src/control/parse.js';

function parseError(fn: () => unknown): ControlParseError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(ControlParseError);
    expect((err as ControlParseError).code).to.equal('ERR_GRACEFUL_CONTROL_PARSE');
    return err as ControlParseError;
  }
  throw new Error('expected a ControlParseError');
}

describe('control/parse', () => {
  it('MAX_LINE_BYTES is 64 KiB', () => {
    expect(MAX_LINE_BYTES).to.equal(65536);
  });

  it('tokenize splits on spaces and tabs, with quotes and escapes as in a shell', () => {
    expect(tokenize('')).to.deep.equal([]);
    expect(tokenize('   \t ')).to.deep.equal([]);
    expect(tokenize('status')).to.deep.equal(['status']);
    expect(tokenize('  a \t b  c ')).to.deep.equal(['a', 'b', 'c']);
    expect(tokenize(`say 'hello world' "x y"`)).to.deep.equal(['say', 'hello world', 'x y']);
    expect(tokenize(`'' ""`)).to.deep.equal(['', '']);
    expect(tokenize(`a'b'"c"d`)).to.deep.equal(['abcd']);
    expect(tokenize(`'it''s' "a\\"b" "\\\\" "\\$x" "\\n"`)).to.deep.equal(['its', 'a"b', '\\', '$x', '\\n']);
    expect(tokenize(`'no \\ escape'`)).to.deep.equal(['no \\ escape']);
    expect(tokenize('a\\ b c')).to.deep.equal(['a b', 'c']);
    expect(tokenize('trailing\\')).to.deep.equal(['trailing\\']);
  });

  it('tokenize refuses an unterminated quote with the fix in the message', () => {
    expect(parseError(() => tokenize(`say "hi`)).message).to.equal('unterminated double quote: close it, or escape it with \\');
    expect(parseError(() => tokenize(`say 'hi`)).message).to.equal('unterminated single quote: close it, or escape it with \\');
  });

  it('quote renders words that tokenize reads back the same', () => {
    expect(quote(['status'])).to.equal('status');
    expect(quote(['a b', '', "it's", 'x=1,y/z.-@%+:'])).to.equal(`'a b' '' 'it'\\''s' x=1,y/z.-@%+:`);
    const cases = [['a b', '', "it's"], ['"', '\\', '$HOME', '\t', 'é'], ["''", 'a\\ b']];
    for (const words of cases) expect(tokenize(quote(words))).to.deep.equal(words);
  });

  it('parseRequest reads plain lines; a blank line is null; a trailing CR is dropped', () => {
    expect(parseRequest('')).to.equal(null);
    expect(parseRequest('   ')).to.equal(null);
    expect(parseRequest('status')).to.deep.equal({ cmd: 'status', args: [], json: false });
    expect(parseRequest('telinit 3\r')).to.deep.equal({ cmd: 'telinit', args: ['3'], json: false });
    expect(parseRequest(`say 'a b' c`)).to.deep.equal({ cmd: 'say', args: ['a b', 'c'], json: false });
  });

  it('parseRequest refuses control characters and an empty command name', () => {
    const e = parseError(() => parseRequest('status\x00'));
    expect(e.message).to.equal('the line holds control characters: send text, one command per line');
    expect(e.json).to.equal(false);
    parseError(() => parseRequest('\x1b[A'));
    parseError(() => parseRequest('a\x7f'));
    expect(parseRequest('a\tb')).to.deep.equal({ cmd: 'a', args: ['b'], json: false });
    expect(parseError(() => parseRequest(`'' status`)).message).to.equal('the command name is empty: type a command, e.g. help');
  });

  it('parseRequest reads JSON lines: cmd, args (numbers become strings), id', () => {
    expect(parseRequest('{"cmd":"status"}')).to.deep.equal({ cmd: 'status', args: [], json: true, id: undefined });
    expect(parseRequest(' {"cmd":"telinit","args":[3,"x"],"id":7}\r')).to.deep.equal({ cmd: 'telinit', args: ['3', 'x'], json: true, id: 7 });
    expect(parseRequest('{"cmd":"a","id":"req-1"}')!.id).to.equal('req-1');
    expect(parseRequest('{"cmd":"a","id":{"x":1}}')!.id).to.equal(undefined);
  });

  it('parseRequest refuses bad JSON lines with json set, so the error goes back as JSON', () => {
    const bad = parseError(() => parseRequest('{"cmd":'));
    expect(bad.json).to.equal(true);
    expect(bad.message).to.match(/^a line starting with \{ must be JSON: /);
    const needs = 'a JSON request needs "cmd", a non-empty string, e.g. {"cmd":"status","args":[]}';
    for (const line of ['{}', '{"cmd":""}', '{"cmd":3}', '{"args":[]}']) {
      const e = parseError(() => parseRequest(line));
      expect(e.message).to.equal(needs);
      expect(e.json).to.equal(true);
    }
    for (const line of ['{"cmd":"a","args":"x"}', '{"cmd":"a","args":[null]}', '{"cmd":"a","args":[["x"]]}']) {
      expect(parseError(() => parseRequest(line)).message).to.equal('"args" must be an array of strings');
    }
  });
});

/**
 * The built-ins loaded when first needed (src/node-builtins.ts), and what
 * importing the package, its hand-off core and the CLI loads: each case
 * that looks at what a process loaded runs in a fresh process.
 */
import { expect } from 'chai';
import crypto from 'node:crypto';
import net from 'node:net';
import { builtin, isHttp2Server } from '../../src/node-builtins.js';
import { distUrl, inFresh } from '../helpers/fresh.js';

/** The public built-ins a program loaded, as process.moduleLoadList names them. */
const LOADED = "process.moduleLoadList.filter((m) => m.startsWith('NativeModule ') && !m.startsWith('NativeModule internal/')).map((m) => m.slice(13))";
/** What only some roles need: none of them is loaded by an import. */
const LAZY = ['child_process', 'crypto', 'http', 'http2', 'https', 'readline', 'tls', '_tls_wrap', '_http_server'];

describe('builtins: Node modules loaded when first needed', () => {
  it('builtin returns the module itself, as an import of it does', async () => {
    expect(builtin('crypto')).to.equal(crypto);
    expect(builtin('http2')).to.equal((await import('node:http2')).default);
    expect(builtin('crypto').randomBytes(4)).to.have.length(4);
  });

  it('loadedBuiltin and isHttp2Server load nothing: null and false until the module is loaded, then the module and the class', () => {
    const program = `
      const { loadedBuiltin, isHttp2Server } = await import(${JSON.stringify(distUrl('src/node-builtins.js'))});
      const net = await import('node:net');
      const before = ${LOADED};
      const plain = new net.Server();
      const none = { tls: loadedBuiltin('tls'), http: loadedBuiltin('http'), https: loadedBuiltin('https'), http2: loadedBuiltin('http2'), h2: isHttp2Server(plain, 'plain') };
      const loadedNothing = ${LOADED}.length === before.length;
      const http = (await import('node:http')).default;
      const http2 = (await import('node:http2')).default;
      console.log(JSON.stringify({
        none, loadedNothing,
        http: loadedBuiltin('http') === http, tls: loadedBuiltin('tls') !== null, https: loadedBuiltin('https'),
        h2c: isHttp2Server(http2.createServer(), 'plain'), h2: isHttp2Server(http2.createSecureServer(), 'secure'),
        h1: isHttp2Server(http.createServer(), 'plain'), crossed: isHttp2Server(http2.createServer(), 'secure'),
      }));`;
    expect(inFresh(program)).to.deep.equal({
      none: { tls: null, http: null, https: null, http2: null, h2: false }, loadedNothing: true,
      // http2 loads tls (and with it _tls_wrap), not https.
      http: true, tls: true, https: null, h2c: true, h2: true, h1: false, crossed: false,
    });
  });

  it('isHttp2Server: a net.Server is neither kind', () => {
    expect(isHttp2Server(new net.Server(), 'plain')).to.equal(false);
    expect(isHttp2Server(new net.Server(), 'secure')).to.equal(false);
  });

  it("import('graceful-restart') and its hand-off core load none of the built-ins only some roles need", () => {
    for (const entry of ['src/index.js', 'src/handoff.js']) {
      const loaded = inFresh(`await import(${JSON.stringify(distUrl(entry))}); console.log(JSON.stringify(${LOADED}));`) as string[];
      expect(loaded.filter((m) => LAZY.includes(m)), entry).to.deep.equal([]);
    }
  });

  it('the CLI module loads neither the supervisor (child_process) nor the shell (readline) nor HTTP', () => {
    const loaded = inFresh(`await import(${JSON.stringify(distUrl('src/cli.js'))}); console.log(JSON.stringify(${LOADED}));`) as string[];
    expect(loaded.filter((m) => LAZY.includes(m))).to.deep.equal([]);
  });
});

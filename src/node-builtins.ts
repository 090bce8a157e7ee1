/**
 * Node's built-in modules that only some roles need (http2, https, tls,
 * crypto, child_process, readline), loaded when first used rather than when
 * the package is imported: a plain server does not pay for the TLS stack,
 * and the CLI not for HTTP. require() of a built-in is synchronous and
 * cached, so a synchronous API that needs one stays synchronous.
 */
import { createRequire } from 'node:module';
import type net from 'node:net';

/** The lazily loaded built-ins, by the name `node:<name>` imports. */
export interface Builtins {
  child_process: typeof import('node:child_process');
  crypto: typeof import('node:crypto');
  http: typeof import('node:http');
  http2: typeof import('node:http2');
  https: typeof import('node:https');
  readline: typeof import('node:readline');
  tls: typeof import('node:tls');
}

const require = createRequire(import.meta.url);

/** builtin returns the built-in module `node:<id>`, loading it now if nothing did yet. */
export function builtin<K extends keyof Builtins>(id: K): Builtins[K] {
  return require(`node:${id}`) as Builtins[K];
}

/**
 * The module that defines the classes each built-in exports, as
 * process.moduleLoadList names it (`http` re-exports `_http_server`'s
 * Server, `tls` `_tls_wrap`'s Server and TLSSocket).
 */
const DEFINED_IN: Partial<Record<keyof Builtins, string>> = {
  http: '_http_server',
  https: 'https',
  http2: 'internal/http2/core',
  tls: '_tls_wrap',
};

/**
 * loadedBuiltin returns the built-in `node:<id>` if this process loaded the
 * module that defines its classes already, else null: nothing can be an
 * instance of a class that was never loaded, so an `instanceof` check needs
 * no load. Where Node keeps no list of loaded modules, it loads the module.
 */
export function loadedBuiltin<K extends 'http' | 'https' | 'http2' | 'tls'>(id: K): Builtins[K] | null {
  const loaded = (process as { moduleLoadList?: readonly string[] }).moduleLoadList;
  if (loaded && !loaded.includes(`NativeModule ${DEFINED_IN[id]}`)) return null;
  return builtin(id);
}

let http2Classes: { plain: typeof net.Server; secure: typeof net.Server } | null = null;

/**
 * isHttp2Server says whether server is an HTTP/2 server, plain (h2c) or
 * secure: Node does not export their classes, so they are taken from
 * instances (no socket is opened) once http2 is loaded.
 */
export function isHttp2Server(server: object, kind: 'plain' | 'secure'): boolean {
  const http2 = loadedBuiltin('http2');
  if (!http2) return false;
  http2Classes ??= {
    plain: Object.getPrototypeOf(http2.createServer()).constructor as typeof net.Server,
    secure: Object.getPrototypeOf(http2.createSecureServer()).constructor as typeof net.Server,
  };
  return server instanceof http2Classes[kind];
}

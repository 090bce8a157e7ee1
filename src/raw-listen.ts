/**
 * rawListen: `net.Server.prototype.listen` as Node defines it.
 * `graceful-restart/register` replaces the prototype's listen to take over an
 * unmodified program's listeners; the library's own listens (a listener
 * bound fresh or on an inherited descriptor, a probe) go through rawListen,
 * never through the replacement. The first copy of this module loaded in the
 * process (the register's, which loads before the replacement) keeps Node's
 * listen in the shared preload state, so that every copy (the package's
 * bundle, dist/src) gets that one and not the replacement.
 */
import net from 'node:net';
import { preloadState } from './preload-state.js';

const state = preloadState();
state.rawListen ??= net.Server.prototype.listen;

export const rawListen = state.rawListen as net.Server['listen'];

/**
 * rawListen: `net.Server.prototype.listen` as Node defines it, and
 * rawUnlinkSync: `fs.unlinkSync` likewise.
 * `graceful-restart/register` replaces the prototype's listen to take over an
 * unmodified program's listeners; the library's own listens (a listener
 * bound fresh or on an inherited descriptor, a probe) go through rawListen,
 * never through the replacement; the library removes its own socket files
 * (at a real halt, a stale one before a bind) with rawUnlinkSync, which the
 * register's guard of the program's unlinks does not stop. The first copy of this module loaded in the
 * process (the register's, which loads before the replacement) keeps Node's
 * listen in the shared preload state, so that every copy (the package's
 * bundle, dist/src) gets that one and not the replacement.
 */
import fs from 'node:fs';
import net from 'node:net';
import { preloadState } from './preload-state.js';

const state = preloadState();
state.rawListen ??= net.Server.prototype.listen;
state.rawUnlinkSync ??= fs.unlinkSync;

export const rawListen = state.rawListen as net.Server['listen'];
export const rawUnlinkSync = state.rawUnlinkSync as typeof fs.unlinkSync;

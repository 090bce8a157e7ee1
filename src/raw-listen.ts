/**
 * rawListen: `net.Server.prototype.listen` as Node defines it, taken when
 * this module is first loaded. `graceful-restart/register` replaces the
 * prototype's listen to take over an unmodified program's listeners; it loads
 * this module first, and the library's own listens (a listener bound fresh or
 * on an inherited descriptor, a probe) go through rawListen, never through
 * the replacement.
 */
import net from 'node:net';

export const rawListen: net.Server['listen'] = net.Server.prototype.listen;

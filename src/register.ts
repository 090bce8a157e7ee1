/**
 * graceful-restart/register: preloaded into a program that does not use this
 * package (`node --import graceful-restart/register server.js`,
 * `node -r graceful-restart/register server.js`, or `graceful-restart run`,
 * which does it for you), it gives the program what a GracefulServer
 * application gets: every net.Server#listen becomes a listener kept across
 * redeploys, SIGHUP and the control socket redeploy it, SIGTERM and SIGINT
 * drain it, and workers run the program once per worker. See
 * docs/unmodified.md; the hook is register/hook.ts.
 */
import { installListenHook } from './register/hook.js';

installListenHook();

/**
 * What a GracefulServer and a supervisor tell each other, on top of
 * sd_notify(3): the supervisor sets NOTIFY_SOCKET and SUPERVISOR_ENV for the
 * application, which says MAINPID= and READY=1 as it would to systemd, plus
 * these X_ fields (systemd ignores fields it does not know).
 */

/** Set in the application's environment: the supervisor's pid. */
export const SUPERVISOR_ENV = 'GRACEFUL_SUPERVISOR';
/** The control socket of the instance that says it (an absolute path): the supervisor forwards commands there. */
export const CONTROL_FIELD = 'X_GRACEFUL_CONTROL';
/** How a child of the sender ended, `<pid> <code>` or `<pid> <SIGNAL>`: a supervisor cannot learn it for a grandchild. */
export const EXIT_FIELD = 'X_GRACEFUL_EXIT';

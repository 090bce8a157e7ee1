/**
 * What a GracefulServer and a supervisor tell each other, on top of
 * sd_notify(3): the supervisor sets NOTIFY_SOCKET and SUPERVISOR_ENV for the
 * application, which says MAINPID= and READY=1 as it would to systemd, plus
 * X_ fields (systemd ignores fields it does not know). The names live in
 * ../protocol.ts, below the server and the supervisor both.
 */
export { SUPERVISOR_ENV, CONTROL_FIELD, EXIT_FIELD } from '../protocol.js';

/**
 * The names the processes of a service agree on: the old instance and the
 * new one (the hand-off), and an instance and its supervisor (sd_notify(3)
 * fields). Below the server, the hand-off and the supervisor, so none of them
 * imports another for a constant.
 */

/** The environment variable that names the hand-off socket to a new instance. */
export const HANDOFF_ENV = 'GRACEFUL_HANDOFF';
/** Meta `graceful` of the last record of a hand-off (it carries the state: runlevel, generation). */
export const END_MARK = 'end';
/** Meta `graceful` of the new instance's answer: it serves. */
export const READY_MARK = 'ready';
/**
 * A rolling redeploy of workers, before the ready answer: the new primary
 * asks (`slot`) that the old worker of a slot drain once its own worker of
 * that slot serves, and the old primary answers once that worker exited.
 */
export const RETIRE_MARK = 'retire';
/** Before its ready answer, a new primary tells of each of its workers that became ready (`worker`, `pid`); no answer. */
export const PROGRESS_MARK = 'progress';
export const RETIRED_MARK = 'retired';
/**
 * After its ready answer the new instance keeps the hand-off connection open
 * while its predecessor is in the take-back window. Asked to redeploy in
 * that time, it sends a commit record: the predecessor ends its window at
 * once (it drains and can no longer take back) and answers committed, then
 * closes its end. It closes its end too when the window passes or it takes
 * back; the new instance reads that end as committed.
 */
export const COMMIT_MARK = 'commit';
/**
 * Set true in the end record by an old instance that keeps the hand-off open
 * and answers commit: only then may the new instance read its end as
 * committed (an older version closes the hand-off at once, window or not).
 */
export const COMMIT_FIELD = 'commits';
export const COMMITTED_MARK = 'committed';
/**
 * A reopen (logrotate) asked of either instance while the other one holds
 * copies of the files (from the descriptors' hand-off until the hand-off
 * connection closes): a reopen record goes to the other instance, which
 * re-opens its files by path (and its workers' files) and answers reopened.
 */
export const REOPEN_MARK = 'reopen';
/** Set true in the end record by an old instance that relays reopens: only then does the new one send it reopen records. */
export const REOPENS_FIELD = 'reopens';
export const REOPENED_MARK = 'reopened';
/**
 * Connection hand-over (server/adopt.ts): the new instance's first record on
 * the connection an old instance (or old worker) opens to pass connections,
 * once it let that process in. Only then does the old one pass anything: a
 * connection passed to a peer that refused it would be lost with it.
 */
export const ADOPTING_MARK = 'adopting';
/** Meta `graceful` of a new instance that cannot start, instead of ready: `reason`, one line; it then closes the hand-off. */
export const FAILED_MARK = 'failed';

/** Set in the application's environment: the supervisor's pid. */
export const SUPERVISOR_ENV = 'GRACEFUL_SUPERVISOR';
/** The control socket of the instance that says it (an absolute path): the supervisor forwards commands there. */
export const CONTROL_FIELD = 'X_GRACEFUL_CONTROL';
/** How a child of the sender ended, `<pid> <code>` or `<pid> <SIGNAL>`: a supervisor cannot learn it for a grandchild. */
export const EXIT_FIELD = 'X_GRACEFUL_EXIT';

/** Set in a worker process: its slot (0..N-1), and how many workers the service runs. */
export const WORKER_ENV = 'GRACEFUL_WORKER_ID';
export const WORKER_COUNT_ENV = 'GRACEFUL_WORKER_COUNT';

/**
 * Errors with stable codes. A code never changes meaning and is never reused;
 * messages may improve. Kernel errors keep their errno name as `code`
 * (`ECONNREFUSED`, `EMFILE`, ...), shaped like Node's own.
 */

/** Every code this package defines. The README lists each one. */
export type GracefulErrorCode =
  | 'ERR_GRACEFUL_INVALID_ARGUMENT'
  | 'ERR_GRACEFUL_WORKER_FAILED'
  | 'ERR_GRACEFUL_NOT_PRIMARY'
  | 'ERR_GRACEFUL_BAD_FRAME'
  | 'ERR_GRACEFUL_FD_COUNT_MISMATCH'
  | 'ERR_GRACEFUL_TRUNCATED_MESSAGE'
  | 'ERR_GRACEFUL_FDS_TRUNCATED'
  | 'ERR_GRACEFUL_META_TOO_LARGE'
  | 'ERR_GRACEFUL_BAD_META'
  | 'ERR_GRACEFUL_SOCKET_IN_USE'
  | 'ERR_GRACEFUL_NOT_A_SOCKET'
  | 'ERR_GRACEFUL_CALLBACK_FAILED'
  | 'ERR_GRACEFUL_CLOSED'
  | 'ERR_GRACEFUL_TIMEOUT'
  | 'ERR_GRACEFUL_NOT_TRANSFERABLE'
  | 'ERR_GRACEFUL_ADDON_NOT_FOUND'
  | 'ERR_GRACEFUL_ADDON_LOAD_FAILED'
  | 'ERR_GRACEFUL_UPGRADE_IN_PROGRESS'
  | 'ERR_GRACEFUL_NOT_READY'
  | 'ERR_GRACEFUL_TERMINATING'
  | 'ERR_GRACEFUL_REDEPLOY_FAILED'
  | 'ERR_GRACEFUL_INVALID_RUNLEVEL'
  | 'ERR_GRACEFUL_PEER_REFUSED'
  | 'ERR_GRACEFUL_DUPLICATE_NAME'
  | 'ERR_GRACEFUL_HANDOFF_FAILED'
  | 'ERR_GRACEFUL_ALREADY_READY'
  | 'ERR_GRACEFUL_CONTROL_PARSE'
  | 'ERR_GRACEFUL_UNKNOWN_COMMAND'
  | 'ERR_GRACEFUL_USAGE'
  | 'ERR_GRACEFUL_COMMAND_FAILED'
  | 'ERR_GRACEFUL_NOT_CONFIGURED'
  | 'ERR_GRACEFUL_PERMISSION_DENIED'
  | 'ERR_GRACEFUL_LINE_TOO_LONG'
  | 'ERR_GRACEFUL_TOO_MANY_CONNECTIONS'
  | 'ERR_GRACEFUL_IDLE_TIMEOUT'
  | 'ERR_GRACEFUL_CONFIG'
  | 'ERR_GRACEFUL_UNKNOWN_TASK'
  | 'ERR_GRACEFUL_HOOK_FAILED'
  | 'ERR_GRACEFUL_UNSAFE_DIRECTORY'
  | 'ERR_GRACEFUL_PREDECESSOR_RUNNING'
  | 'ERR_GRACEFUL_ALREADY_HANDED_OVER'
  | 'ERR_GRACEFUL_UNSAFE_FILE'
  | 'ERR_GRACEFUL_SLOW_CLIENT'
  | 'ERR_GRACEFUL_UNTRUSTED_SERVER'
  | 'ERR_GRACEFUL_SUPERVISOR_RUNNING'
  | 'ERR_GRACEFUL_HANDOVER_FAILED'
  | 'ERR_GRACEFUL_UNREAD_BYTES'
  | 'ERR_GRACEFUL_MID_FRAME'
  | 'ERR_GRACEFUL_SOCKET_HANDED_OVER'
  | 'ERR_GRACEFUL_STREAM_ENDED'
  | 'ERR_GRACEFUL_LISTEN_UNSUPPORTED'
  | 'ERR_GRACEFUL_PART_LOAD_FAILED';

/** GracefulError: the base class of every error this package creates. */
export class GracefulError extends Error {
  override name = 'GracefulError';
  readonly code: GracefulErrorCode;

  constructor(code: GracefulErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/**
 * errorClass makes one class per code, so callers can test with `instanceof`
 * as well as with `code`, and the code is typed as its literal.
 */
function errorClass<C extends GracefulErrorCode>(code: C, name: string) {
  const cls = class extends GracefulError {
    declare readonly code: C;
    constructor(message: string, options?: { cause?: unknown }) {
      super(code, message, options);
      this.name = name;
    }
  };
  Object.defineProperty(cls, 'name', { value: name });
  return cls;
}

export const InvalidArgumentError = errorClass('ERR_GRACEFUL_INVALID_ARGUMENT', 'InvalidArgumentError');
export const BadFrameError = errorClass('ERR_GRACEFUL_BAD_FRAME', 'BadFrameError');
export const FdCountMismatchError = errorClass('ERR_GRACEFUL_FD_COUNT_MISMATCH', 'FdCountMismatchError');
export const TruncatedMessageError = errorClass('ERR_GRACEFUL_TRUNCATED_MESSAGE', 'TruncatedMessageError');
export const FdsTruncatedError = errorClass('ERR_GRACEFUL_FDS_TRUNCATED', 'FdsTruncatedError');
export const MetaTooLargeError = errorClass('ERR_GRACEFUL_META_TOO_LARGE', 'MetaTooLargeError');
export const BadMetaError = errorClass('ERR_GRACEFUL_BAD_META', 'BadMetaError');
export const SocketInUseError = errorClass('ERR_GRACEFUL_SOCKET_IN_USE', 'SocketInUseError');
export const NotASocketError = errorClass('ERR_GRACEFUL_NOT_A_SOCKET', 'NotASocketError');
export const CallbackFailedError = errorClass('ERR_GRACEFUL_CALLBACK_FAILED', 'CallbackFailedError');
export const ClosedError = errorClass('ERR_GRACEFUL_CLOSED', 'ClosedError');
export const TimeoutError = errorClass('ERR_GRACEFUL_TIMEOUT', 'TimeoutError');
export const NotTransferableError = errorClass('ERR_GRACEFUL_NOT_TRANSFERABLE', 'NotTransferableError');
export const AddonNotFoundError = errorClass('ERR_GRACEFUL_ADDON_NOT_FOUND', 'AddonNotFoundError');
export const AddonLoadFailedError = errorClass('ERR_GRACEFUL_ADDON_LOAD_FAILED', 'AddonLoadFailedError');
export const UpgradeInProgressError = errorClass('ERR_GRACEFUL_UPGRADE_IN_PROGRESS', 'UpgradeInProgressError');
export const NotReadyError = errorClass('ERR_GRACEFUL_NOT_READY', 'NotReadyError');
export const TerminatingError = errorClass('ERR_GRACEFUL_TERMINATING', 'TerminatingError');
export const InvalidRunlevelError = errorClass('ERR_GRACEFUL_INVALID_RUNLEVEL', 'InvalidRunlevelError');
export const PeerRefusedError = errorClass('ERR_GRACEFUL_PEER_REFUSED', 'PeerRefusedError');
export const DuplicateNameError = errorClass('ERR_GRACEFUL_DUPLICATE_NAME', 'DuplicateNameError');
export const HandoffFailedError = errorClass('ERR_GRACEFUL_HANDOFF_FAILED', 'HandoffFailedError');
export const AlreadyReadyError = errorClass('ERR_GRACEFUL_ALREADY_READY', 'AlreadyReadyError');

export const UnknownCommandError = errorClass('ERR_GRACEFUL_UNKNOWN_COMMAND', 'UnknownCommandError');
export const UsageError = errorClass('ERR_GRACEFUL_USAGE', 'UsageError');
export const CommandFailedError = errorClass('ERR_GRACEFUL_COMMAND_FAILED', 'CommandFailedError');
export const NotConfiguredError = errorClass('ERR_GRACEFUL_NOT_CONFIGURED', 'NotConfiguredError');
export const PermissionDeniedError = errorClass('ERR_GRACEFUL_PERMISSION_DENIED', 'PermissionDeniedError');
export const LineTooLongError = errorClass('ERR_GRACEFUL_LINE_TOO_LONG', 'LineTooLongError');
export const TooManyConnectionsError = errorClass('ERR_GRACEFUL_TOO_MANY_CONNECTIONS', 'TooManyConnectionsError');
export const IdleTimeoutError = errorClass('ERR_GRACEFUL_IDLE_TIMEOUT', 'IdleTimeoutError');
export const ConfigError = errorClass('ERR_GRACEFUL_CONFIG', 'ConfigError');
export const UnknownTaskError = errorClass('ERR_GRACEFUL_UNKNOWN_TASK', 'UnknownTaskError');
export const HookFailedError = errorClass('ERR_GRACEFUL_HOOK_FAILED', 'HookFailedError');
export const UnsafeDirectoryError = errorClass('ERR_GRACEFUL_UNSAFE_DIRECTORY', 'UnsafeDirectoryError');
/** PredecessorRunningError: a new instance refuses to redeploy until the instance it replaced has exited. */
export const PredecessorRunningError = errorClass('ERR_GRACEFUL_PREDECESSOR_RUNNING', 'PredecessorRunningError');
/** AlreadyHandedOverError: this instance handed over to a new one, which now serves. */
export const AlreadyHandedOverError = errorClass('ERR_GRACEFUL_ALREADY_HANDED_OVER', 'AlreadyHandedOverError');
/** UnsafeFileError: a file or symbolic link in a shared directory belongs to someone else. */
export const UnsafeFileError = errorClass('ERR_GRACEFUL_UNSAFE_FILE', 'UnsafeFileError');
/** SlowClientError: a control client that does not read its replies, or sends a line too slowly, is dropped. */
export const SlowClientError = errorClass('ERR_GRACEFUL_SLOW_CLIENT', 'SlowClientError');
/** UntrustedServerError: the process behind a control socket runs as a uid the client does not trust. */
/** A worker of a new generation did not become ready: the generation was killed, the old one serves. */
export const WorkerFailedError = errorClass('ERR_GRACEFUL_WORKER_FAILED', 'WorkerFailedError');
/** What only the primary of a service with workers does (redeploy, telinit) was asked of a worker. */
export const NotPrimaryError = errorClass('ERR_GRACEFUL_NOT_PRIMARY', 'NotPrimaryError');
export const UntrustedServerError = errorClass('ERR_GRACEFUL_UNTRUSTED_SERVER', 'UntrustedServerError');
export const SupervisorRunningError = errorClass('ERR_GRACEFUL_SUPERVISOR_RUNNING', 'SupervisorRunningError');
/** HandOverFailedError: connections could not be handed to the new instance; they drain in the old one instead. */
export const HandOverFailedError = errorClass('ERR_GRACEFUL_HANDOVER_FAILED', 'HandOverFailedError');
/**
 * StreamEndedError: a command still running on a control connection (a stream that is not
 * persistent) ended because its instance closed the control socket: it handed over to a new
 * instance in a redeploy, or it halts.
 */
export const StreamEndedError = errorClass('ERR_GRACEFUL_STREAM_ENDED', 'StreamEndedError');
/** ListenUnsupportedError: graceful-restart/register cannot take over a listen (a worker thread, a program that runs node:cluster itself). */
export const ListenUnsupportedError = errorClass('ERR_GRACEFUL_LISTEN_UNSUPPORTED', 'ListenUnsupportedError');
/** PartLoadFailedError: a part of the package loaded where first used (a role's code) could not be loaded. */
export const PartLoadFailedError = errorClass('ERR_GRACEFUL_PART_LOAD_FAILED', 'PartLoadFailedError');

/** ControlParseError: a control line that cannot be read; `json` tells which mode it looked like. */
export class ControlParseError extends GracefulError {
  declare readonly code: 'ERR_GRACEFUL_CONTROL_PARSE';
  readonly json: boolean;

  constructor(message: string, options: { json?: boolean; cause?: unknown } = {}) {
    super('ERR_GRACEFUL_CONTROL_PARSE', message, options);
    this.name = 'ControlParseError';
    this.json = options.json ?? false;
  }
}

/** Why a new instance did not take over. */
export interface RedeployFailure {
  /**
   * 'exit' (it exited or was killed before ready), 'timeout', 'spawn' (could
   * not start), 'handoff' (the hand-off broke), 'aborted' (this instance was
   * told to stop meanwhile: the new one was killed), 'taken-back' (it died
   * after it was ready, within the take-back window: this instance serves again).
   */
  reason: 'exit' | 'timeout' | 'spawn' | 'handoff' | 'aborted' | 'taken-back';
  pid?: number;
  exitCode?: number | null;
  signal?: NodeJS.Signals | null;
  /** The last lines the new instance wrote to stderr. */
  stderr: string[];
  /**
   * What the new instance said of its failure, one line: the reason it
   * reported over the hand-off, else its first error on stderr (for the
   * failures 'exit' and 'handoff').
   */
  said?: string;
}

/** RedeployFailedError: the new instance failed; the old one goes on serving. */
export class RedeployFailedError extends GracefulError {
  declare readonly code: 'ERR_GRACEFUL_REDEPLOY_FAILED';
  readonly failure: RedeployFailure;

  constructor(message: string, failure: RedeployFailure, options?: { cause?: unknown }) {
    super('ERR_GRACEFUL_REDEPLOY_FAILED', message, options);
    this.name = 'RedeployFailedError';
    this.failure = failure;
  }
}

/** SystemError: an errno from the kernel, shaped like Node's (`code`, `errno`, `syscall`, `path`). */
export interface SystemError extends Error {
  code: string;
  errno?: number;
  syscall?: string;
  path?: string;
}

/** isSystemError tells whether err carries a kernel errno name as its code. */
export function isSystemError(err: unknown, code?: string): err is SystemError {
  if (!(err instanceof Error)) return false;
  const c = (err as { code?: unknown }).code;
  if (typeof c !== 'string' || c.startsWith('ERR_')) return false;
  return code === undefined || c === code;
}

/** errorCode reads `code` off anything thrown, or returns undefined. */
export function errorCode(err: unknown): string | undefined {
  const c = (err as { code?: unknown } | null | undefined)?.code;
  return typeof c === 'string' ? c : undefined;
}

/** invalidArgument builds the error for a bad argument to a public function. */
export function invalidArgument(api: string, message: string): GracefulError {
  return new InvalidArgumentError(`${api}: ${message}`);
}
/** UnreadBytesError: a socket handed over holds bytes Node read that the application has not consumed. */
export const UnreadBytesError = errorClass('ERR_GRACEFUL_UNREAD_BYTES', 'UnreadBytesError');
/** MidFrameError: a WebSocket handed over is in the middle of a frame or of a fragmented message. */
export const MidFrameError = errorClass('ERR_GRACEFUL_MID_FRAME', 'MidFrameError');
/** SocketHandedOverError: a socket was given to handOver() a second time. */
export const SocketHandedOverError = errorClass('ERR_GRACEFUL_SOCKET_HANDED_OVER', 'SocketHandedOverError');

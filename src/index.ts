/**
 * graceful-restart: replace a running Node server with a new version of
 * itself without dropping a connection.
 *
 * The model. A service is one program that serves on listening sockets (TCP,
 * UNIX, UDP) and writes to files. A redeploy starts a new instance of it,
 * hands it every one of those descriptors over a UNIX socket (SCM_RIGHTS),
 * waits until it says it is ready, and only then lets the old instance stop
 * accepting and drain. Readiness is one message on the hand-off connection;
 * "the other side died" is the EOF the kernel delivers.
 *
 * Invariants (the instance side enforced in server/lifecycle.ts):
 * - at any time there are one or two instances of a service, and at most one
 *   of them is not ready; a new instance spawns no third while its
 *   predecessor runs (it could still take back);
 * - only one redeploy runs at a time: a second one is refused
 *   (ERR_GRACEFUL_UPGRADE_IN_PROGRESS);
 * - a new instance accepts (and reads datagrams) only from ready(), and
 *   everything in ready() that can fail happens before its predecessor is
 *   told; one that crashes, hangs or exits before that never took a
 *   connection, is killed, and the old instance serves on;
 * - no old code keeps running after a successful redeploy: once the take-back
 *   window has passed, the old instance drains and exits.
 * With workers (workers/primary.ts, workers/worker.ts):
 * - one generation of workers serves, plus at most one starting or draining;
 * - a primary is ready only once every worker of its generation is, and a
 *   worker that fails kills its whole generation; the old one serves on;
 * - no worker outlives its primary.
 * The hand-off core (graceful-restart/handoff, src/handoff.ts):
 * - every descriptor this package creates or receives is close-on-exec;
 * - a descriptor received is either given to the caller or closed, never
 *   leaked, whatever the peer sends;
 * - bad input gets a coded error, never a crash: every error has a stable code.
 *
 * This entry is the application API: the graceful server, the supervisor, the
 * control socket's client, and the hand-off functions an application calls.
 * The wire format and the meta codecs are in graceful-restart/handoff.
 */
export {
  GracefulError, InvalidArgumentError, BadFrameError, FdCountMismatchError, TruncatedMessageError, FdsTruncatedError,
  MetaTooLargeError, BadMetaError, SocketInUseError, NotASocketError, CallbackFailedError, ClosedError, TimeoutError,
  NotTransferableError, AddonNotFoundError, AddonLoadFailedError, UpgradeInProgressError, NotReadyError,
  TerminatingError, InvalidRunlevelError, PeerRefusedError, DuplicateNameError, HandoffFailedError, AlreadyReadyError,
  UnknownCommandError, UsageError, CommandFailedError, NotConfiguredError, PermissionDeniedError, LineTooLongError,
  TooManyConnectionsError, IdleTimeoutError, ConfigError, UnknownTaskError, HookFailedError, UnsafeDirectoryError,
  PredecessorRunningError, AlreadyHandedOverError, UnsafeFileError, SlowClientError, WorkerFailedError,
  NotPrimaryError, UntrustedServerError, SupervisorRunningError, HandOverFailedError, ControlParseError,
  RedeployFailedError, UnreadBytesError, MidFrameError, SocketHandedOverError, StreamEndedError, ListenUnsupportedError, PartLoadFailedError,
  type GracefulErrorCode, type RedeployFailure, type SystemError,
} from './errors.js';
export type { Meta, MetaValue } from './meta.js';
export { decodeGobMeta, encodeGobMeta, type MetaFormat } from './gob.js';
export type { PeerCredentials } from './native.js';
export { HandoffConnection, type ReceivedFd, type OutgoingFd, type ConnectionOptions } from './handoff/connection.js';
export { listenAndServe, HandoffServer, type HandoffResponse, type Handler, type ListenAndServeOptions } from './handoff/server.js';
export { receive, sendTo, receiveFrom, type ReceiveCallback, type ReceiveOptions } from './handoff/client.js';
export { fdHandler, listenerHandler, socketHandler, dgramHandler, fileHandler, sequenceHandler, callbackHandler } from './handoff/handlers.js';
export {
  fdOf, listenOnFd, listenOnPath, type UnixListenOptions, serverFromFd, socketFromFd, dgramFromFd, writeStreamFromFd, type Transferable,
} from './fds.js';
export { sendDatagram } from './datagram.js';
export {
  GracefulServer, DEFAULT_UPGRADE_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_IDLE_GRACE, DEFAULT_TAKE_BACK_WINDOW,
  type GracefulServerOptions, type RedeployEvent, type RedeployResult, type Runlevel, type InstanceState, type WorkerInfo, type WorkerState,
  type AdoptedSocket, type HandOverOptions,
} from './graceful-server.js';
export type { BindOptions, ListenOptions } from './server/listeners.js';
export { DEFAULT_TICKET_KEY_ROTATION } from './server/ticket-keys.js';
export type { DrainOptions, DrainEvent } from './server/drain.js';
export type { ConnectionStates } from './conn-states.js';
export type { ListenerInfo } from './server/listener-set.js';
export type { SpawnFunction } from './server/successor.js';
export { takeListenFds, notify, type ActivatedFd } from './systemd.js';
export { writePidFile, readPidFile, removePidFile } from './pidfile.js';
export { GracefulFile } from './server/file.js';
export { ControlServer, type ControlServerOptions, type ControlLimits } from './control/server.js';
export { CommandRegistry, type Command, type CommandContext } from './control/commands.js';
export { ControlClient, ControlReplyError, type ControlEvent, type ControlClientOptions } from './control/client.js';
export type { ControlTarget } from './control/builtins.js';
export { loadConfig } from './config.js';
export type { Hook, StopHook, HookKind } from './server/hooks.js';
export type { SighupAction } from './server/signals.js';
export { Supervisor, type SupervisorOptions, type RestartPolicy, type ExitStatus } from './supervisor/supervisor.js';

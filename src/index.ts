/**
 * graceful-restart: replace a running Node server with a new version of
 * itself without dropping a connection.
 *
 * The hand-off core: descriptors travel over a UNIX socket with SCM_RIGHTS,
 * each with a meta payload, in gobwas/graceful's framing. Invariants:
 * - every descriptor this package creates or receives is close-on-exec;
 * - a descriptor received is either given to the caller or closed, never leaked,
 *   whatever the peer sends;
 * - a bad peer gets a coded error, never a crash.
 *
 * The graceful server's invariants (enforced in server/lifecycle.ts):
 * - at any time there are one or two instances of a service, at most one of
 *   them not ready; a new instance spawns no third while its predecessor runs;
 * - only one redeploy runs at a time;
 * - no old code keeps running after a successful redeploy: once the take-back
 *   window has passed, the old instance drains and exits;
 * - a new instance accepts (and reads datagrams) only from ready(), and
 *   everything in ready() that can fail happens before its predecessor is told.
 * With workers (workers/primary.ts, workers/worker.ts):
 * - one generation of workers serves, plus at most one starting or draining;
 * - a primary is ready only once every worker of its generation is, and a
 *   worker that fails kills its whole generation; the old one serves on;
 * - no worker outlives its primary.
 */
export * from './errors.js';
export { isMeta, encodeMeta, decodeMeta, type Meta, type MetaValue } from './meta.js';
export { decodeGobMeta, encodeGobMeta, type MetaFormat } from './gob.js';
export {
  encodeMessages, FrameDecoder, HEADER_BYTES, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_FDS_PER_MESSAGE,
  DEFAULT_MAX_META_BYTES, type Message, type Record as FrameRecord, type OutgoingRecord,
} from './wire.js';
export type { PeerCredentials } from './native.js';
export { HandoffConnection, DEFAULT_HIGH_WATER_MARK, MAX_DATA_BYTES, type ReceivedFd, type OutgoingFd, type ConnectionOptions } from './handoff/connection.js';
export { listenAndServe, HandoffServer, HandoffResponse, type Handler, type ListenAndServeOptions } from './handoff/server.js';
export { receive, sendTo, receiveFrom, type ReceiveCallback, type ReceiveOptions } from './handoff/client.js';
export { fdHandler, listenerHandler, socketHandler, dgramHandler, fileHandler, sequenceHandler, callbackHandler } from './handoff/handlers.js';
export {
  fdOf, waitForFd, listenOnFd, listenOnPath, type UnixListenOptions, serverFromFd, socketFromFd, dgramFromFd, writeStreamFromFd, type Transferable,
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
export { ControlServer, CONTROL_DEFAULTS, type ControlServerOptions, type ControlLimits } from './control/server.js';
export { CommandRegistry, type Command, type CommandContext } from './control/commands.js';
export { ControlClient, ControlReplyError, resolveUid, type ControlEvent, type ControlClientOptions } from './control/client.js';
export { parseRequest, tokenize, MAX_LINE_BYTES, type ControlRequest } from './control/parse.js';
export type { ControlTarget } from './control/builtins.js';
export { loadConfig } from './config.js';
export type { Hook, StopHook, HookKind } from './server/hooks.js';
export type { SighupAction } from './server/signals.js';
export { Supervisor, exitCodeOf, FORWARDED_SIGNALS, type SupervisorOptions, type RestartPolicy, type ExitStatus } from './supervisor/supervisor.js';
export { HANDOFF_ENV, SUPERVISOR_ENV, CONTROL_FIELD, EXIT_FIELD } from './protocol.js';

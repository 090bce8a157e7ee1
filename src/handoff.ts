/**
 * graceful-restart/handoff: the hand-off core alone, after gobwas/graceful.
 * A process that owns descriptors serves them on a UNIX socket; whoever
 * connects receives them, each with a meta payload, by SCM_RIGHTS in
 * gobwas/graceful's framing, so a Go program can be either side. Nothing of
 * the graceful server, the workers, the control socket, the supervisor or the
 * CLI is loaded from here.
 *
 * Invariants:
 * - every descriptor this module creates or receives is close-on-exec;
 * - a descriptor received is either given to the caller or closed, never
 *   leaked, whatever the peer sends, and whatever the caller's callback does;
 * - a bad peer gets a coded error (a GracefulError), never a crash, and the
 *   decoder allocates at most in proportion to its input;
 * - a socket file is removed only by the server that bound it, and only if it
 *   is still the one it bound.
 */
export {
  GracefulError, InvalidArgumentError, BadFrameError, FdCountMismatchError, TruncatedMessageError, FdsTruncatedError,
  MetaTooLargeError, BadMetaError, SocketInUseError, NotASocketError, UnsafeDirectoryError, CallbackFailedError,
  ClosedError, TimeoutError, NotTransferableError, AddonNotFoundError, AddonLoadFailedError, HandoffFailedError,
  type GracefulErrorCode, type SystemError,
} from './errors.js';
export { isMeta, encodeMeta, decodeMeta, type Meta, type MetaValue } from './meta.js';
export { decodeGobMeta, encodeGobMeta, type MetaFormat } from './gob.js';
export {
  encodeMessages, FrameDecoder, HEADER_BYTES, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_FDS_PER_MESSAGE,
  DEFAULT_MAX_META_BYTES, type Message, type Record as FrameRecord, type OutgoingRecord,
} from './wire.js';
export type { PeerCredentials } from './native.js';
export { HandoffConnection, DEFAULT_HIGH_WATER_MARK, MAX_DATA_BYTES, closeFds, type ReceivedFd, type OutgoingFd, type ConnectionOptions } from './handoff/connection.js';
export { listenAndServe, HandoffServer, HandoffResponse, type Handler, type ListenAndServeOptions } from './handoff/server.js';
export { receive, sendTo, receiveFrom, type ReceiveCallback, type ReceiveOptions } from './handoff/client.js';
export { fdHandler, listenerHandler, socketHandler, dgramHandler, fileHandler, sequenceHandler, callbackHandler } from './handoff/handlers.js';
export {
  fdOf, waitForFd, listenOnFd, listenOnPath, serverFromFd, socketFromFd, dgramFromFd, writeStreamFromFd,
  type UnixListenOptions, type Transferable,
} from './fds.js';
export { sendDatagram } from './datagram.js';

/**
 * The read seam of a net.Socket: its libuv stream handle (`socket._handle`),
 * where reading really stops and starts. socket.pause() alone only stops
 * the stream's 'data' events; libuv goes on reading into Node's buffers.
 * Handing a connection over, or holding a client that sends faster than it
 * is served, needs the kernel to keep the bytes: readStop on the handle.
 * This is the one place that reaches into `_handle` for that.
 */
import type net from 'node:net';

/** StreamHandle: the parts of a net.Socket's libuv stream handle that stopping and starting reads touch. */
export interface StreamHandle {
  fd: number;
  /** The stream's own note that the handle reads; kept in step so that resume() and read() agree with libuv. */
  reading?: boolean;
  readStop(): number;
  readStart(): number;
  writeQueueSize?: number;
}

/** rawHandle: the socket's handle as Node keeps it, whatever it holds (null once destroyed). */
function rawHandle(socket: net.Socket): Partial<StreamHandle> | null {
  return (socket as unknown as { _handle?: Partial<StreamHandle> | null })._handle ?? null;
}

/**
 * handleOf: the libuv stream handle of a socket, when it has one that reads
 * and a descriptor; null otherwise (destroyed, or not a stream of a descriptor).
 */
export function handleOf(socket: net.Socket): StreamHandle | null {
  const handle = rawHandle(socket);
  if (!handle || typeof handle.readStop !== 'function' || typeof handle.fd !== 'number' || handle.fd < 0) return null;
  return handle as StreamHandle;
}

/**
 * stopReading stops libuv reading the socket for real: bytes the client
 * sends from now on stay in the kernel. The stream is paused too, so
 * nothing Node holds already is delivered until startReading.
 */
export function stopReading(socket: net.Socket): void {
  socket.pause();
  const handle = rawHandle(socket);
  if (handle?.reading && handle.readStop) {
    handle.reading = false; // so that resume() starts it again
    handle.readStop();
  }
}

/**
 * startReading undoes stopReading. The handle is started here, not by
 * resume(): after a read() that found nothing the stream believes a read is
 * under way and would never start the handle again. A handle that fails to
 * start destroys the socket.
 */
export function startReading(socket: net.Socket): void {
  socket.resume();
  const handle = rawHandle(socket);
  if (handle && !handle.reading && handle.readStart && !socket.destroyed) {
    handle.reading = true;
    const err = handle.readStart();
    if (err) socket.destroy();
  }
}

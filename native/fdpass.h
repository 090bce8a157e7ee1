// fdpass.h: plain POSIX helpers for AF_UNIX sockets that carry descriptors.
//
// Every function returns a non-negative value on success and -errno on
// failure, so the caller turns the errno into an error without reading global
// state. Every descriptor created or received here is close-on-exec and
// non-blocking.
//
// Man pages: unix(7), socket(2), bind(2), accept4(2), sendmsg(2), recvmsg(2),
// cmsg(3), getsockopt(2) with SO_PEERCRED, fcntl(2), dup2(2).
#ifndef GRACEFUL_FDPASS_H
#define GRACEFUL_FDPASS_H

#include <stddef.h>
#include <sys/types.h>

namespace fdpass {

// The kernel's SCM_MAX_FD: at most this many descriptors in one message.
constexpr int kMaxFds = 253;

// Returned by RecvMsg and RecvDatagram when the kernel set MSG_CTRUNC: some
// ancillary data was dropped (the receiver reached its open-file limit, or the
// control buffer was too small). Every descriptor that did arrive has been
// closed. The bytes of the message were consumed all the same: on a stream
// the framing is lost for good; a datagram is dropped.
constexpr long kTruncated = -(1L << 20);

// Creates a stream socket bound to path (a leading '@' names the abstract
// namespace), gives the socket file the given mode, and listens. Returns the
// descriptor or -errno; -ENAMETOOLONG when path does not fit sockaddr_un.
int Listen(const char* path, int mode, int backlog);

// Connects a non-blocking stream socket to path. Returns the descriptor or
// -errno (-EAGAIN when the listener's backlog is full: retry later).
int Connect(const char* path);

// Makes a connected pair of UNIX stream sockets, non-blocking and
// close-on-exec, into fds[0] and fds[1]. Returns 0, or -errno.
int SocketPair(int fds[2]);

// Accepts one connection. Returns the descriptor, or -EAGAIN when none waits.
int Accept(int listen_fd);

// Sends data with fds attached (nfds may be 0). Returns the number of bytes
// sent, or -errno. When it returns a positive count below len, the
// descriptors went with the bytes that were sent: send the rest without them.
long SendMsg(int fd, const char* data, size_t len, const int* fds, int nfds);

// Receives up to len bytes and up to kMaxFds descriptors into fds, storing
// their number in *nfds. Returns the bytes read (0 at end of stream), -errno,
// or kTruncated.
long RecvMsg(int fd, char* data, size_t len, int* fds, int* nfds);

// Reads SO_PEERCRED of a connected socket.
int PeerCred(int fd, pid_t* pid, uid_t* uid, gid_t* gid);

// Sends one datagram, with optional descriptors, to the UNIX datagram socket
// at path (the transport of sd_notify(3)). Returns bytes sent or -errno.
long SendDatagram(const char* path, const char* data, size_t len,
                  const int* fds, int nfds);

// Creates a datagram socket bound to path with the given file mode, which
// receives its senders' credentials (SO_PASSCRED): the receiving end of
// sd_notify(3). Returns the descriptor or -errno.
int BindDatagram(const char* path, int mode);

// Who sent a datagram, as the kernel vouches for it (SCM_CREDENTIALS).
// known is false when no credentials came: the sender is unknown, never
// uid 0.
struct Sender {
  bool known;
  pid_t pid;
  uid_t uid;
  gid_t gid;
};

// Receives one datagram of up to len bytes, and its sender. Descriptors that
// came with it are closed. Returns the length, -EAGAIN when none waits,
// -EMSGSIZE when the datagram was longer than len, or kTruncated when its
// ancillary data was cut (in both cases the datagram is dropped).
long RecvDatagram(int fd, char* data, size_t len, Sender* sender);

// Sets or clears FD_CLOEXEC on fd (systemd passes its sockets without it).
int SetCloexec(int fd, bool on);

// Duplicates fd (close-on-exec) at the lowest free number. Returns it or -errno.
int Dup(int fd);

// Puts a duplicate of old_fd at new_fd, not close-on-exec (to restore an
// inherited stderr at fd 2). Returns new_fd or -errno.
int Dup2(int old_fd, int new_fd);

// Closes fd. Returns 0 or -errno; close(2) is never retried on Linux.
int Close(int fd);

// Closes fds[0..n), every one, going on past a failure: one call for a batch
// of received descriptors the caller discards. Each entry close(2) failed on
// is replaced by -errno (EINTR counts as closed: on Linux the descriptor is
// gone all the same); the others are left as they were. A negative entry is
// never passed to close(2): it fails with -EBADF. Returns how many failed.
int CloseEach(int* fds, int n);

}  // namespace fdpass

#endif  // GRACEFUL_FDPASS_H

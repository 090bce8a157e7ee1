// fdpass.cc: AF_UNIX socket calls that carry descriptors (SCM_RIGHTS) and
// credentials (SCM_CREDENTIALS). No Node-API here: see binding.cc for the
// glue. Every receive goes through one recvmsg(2) helper, Receive. Man pages:
// unix(7), sendmsg(2), recvmsg(2), cmsg(3), accept4(2).
#include "fdpass.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace fdpass {
namespace {

// Fills addr from path. Returns the address length or -errno.
int MakeAddress(const char* path, sockaddr_un* addr) {
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  size_t len = strlen(path);
  if (len == 0) return -EINVAL;
  if (len >= sizeof(addr->sun_path)) return -ENAMETOOLONG;
  memcpy(addr->sun_path, path, len);
  if (path[0] == '@') {
    addr->sun_path[0] = '\0';  // abstract namespace, not NUL-terminated
    return static_cast<int>(offsetof(sockaddr_un, sun_path) + len);
  }
  return static_cast<int>(offsetof(sockaddr_un, sun_path) + len + 1);
}

// Closes fd keeping errno intact, for error paths.
void CloseQuietly(int fd) {
  int saved = errno;
  close(fd);
  errno = saved;
}

// Room for kMaxFds descriptors, aligned as cmsg(3) asks.
union ControlBuffer {
  char buf[CMSG_SPACE(sizeof(int) * kMaxFds)];
  cmsghdr align;
};

long SendWithRights(int fd, const sockaddr_un* to, socklen_t to_len,
                    const char* data, size_t len, const int* fds, int nfds) {
  if (nfds < 0 || nfds > kMaxFds) return -EINVAL;
  iovec iov;
  iov.iov_base = const_cast<char*>(data);
  iov.iov_len = len;
  msghdr msg;
  memset(&msg, 0, sizeof(msg));
  msg.msg_name = const_cast<sockaddr_un*>(to);
  msg.msg_namelen = to_len;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ControlBuffer control;
  if (nfds > 0) {
    // Only the bytes the message uses: the buffer has room for kMaxFds.
    memset(&control, 0, CMSG_SPACE(sizeof(int) * nfds));
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
  }
  ssize_t n;
  do {
    n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : n;
}

// What one recvmsg(2) brought besides its bytes.
struct Received {
  int nfds = 0;           // descriptors stored (SCM_RIGHTS), in order
  bool has_cred = false;  // an SCM_CREDENTIALS message came
  ucred cred;
  int flags = 0;          // msg_flags: MSG_CTRUNC, MSG_TRUNC
};

// Room for the sender's credentials and kMaxFds descriptors, aligned as
// cmsg(3) asks.
union ReceiveBuffer {
  char buf[CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(sizeof(int) * kMaxFds)];
  cmsghdr align;
};

// Receive is the one recvmsg(2) of this file: non-blocking, received
// descriptors close-on-exec, retried on EINTR. It stores up to kMaxFds
// descriptors into fds and the credentials into *got. Returns the bytes read
// or -errno. On MSG_CTRUNC the caller owns (and must close) what was stored.
long Receive(int fd, char* data, size_t len, int* fds, Received* got) {
  iovec iov;
  iov.iov_base = data;
  iov.iov_len = len;
  ReceiveBuffer control;
  msghdr msg;
  memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof(control.buf);
  ssize_t n;
  do {
    n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  got->flags = msg.msg_flags;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET) continue;
    if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len >= CMSG_LEN(sizeof(ucred))) {
      memcpy(&got->cred, CMSG_DATA(c), sizeof(ucred));
      got->has_cred = true;
    } else if (c->cmsg_type == SCM_RIGHTS) {
      size_t here = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < here; i++) {
        int received;
        memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        if (got->nfds < kMaxFds) {
          fds[got->nfds++] = received;
        } else {
          CloseQuietly(received);  // more than one message can carry: never leaked
        }
      }
    }
  }
  return n;
}

// BindAt makes a non-blocking, close-on-exec socket of type bound at path
// (with SO_PASSCRED first when passcred), its file (not an abstract name's)
// at mode: the descriptor, or -errno with nothing left behind.
int BindAt(const char* path, int type, int mode, bool passcred) {
  sockaddr_un addr;
  int addr_len = MakeAddress(path, &addr);
  if (addr_len < 0) return addr_len;
  int fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int on = 1;
  if ((passcred && setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) < 0) ||
      bind(fd, reinterpret_cast<sockaddr*>(&addr), addr_len) < 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  if (path[0] != '@' && chmod(path, static_cast<mode_t>(mode)) < 0) {
    int err = errno;
    close(fd);
    unlink(path);
    return -err;
  }
  return fd;
}

}  // namespace

int Listen(const char* path, int mode, int backlog) {
  // Until listen(2) every connect is refused, so nobody can reach the socket
  // while its file still has the umask's mode.
  int fd = BindAt(path, SOCK_STREAM, mode, false);
  if (fd < 0) return fd;
  if (listen(fd, backlog) < 0) {
    int err = errno;
    close(fd);
    if (path[0] != '@') unlink(path);
    return -err;
  }
  return fd;
}

int Connect(const char* path) {
  sockaddr_un addr;
  int addr_len = MakeAddress(path, &addr);
  if (addr_len < 0) return addr_len;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int rc;
  do {
    rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), addr_len);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

int SocketPair(int fds[2]) {
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                 fds) < 0) {
    return -errno;
  }
  return 0;
}

int Accept(int listen_fd) {
  int fd;
  do {
    fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  return fd < 0 ? -errno : fd;
}

long SendMsg(int fd, const char* data, size_t len, const int* fds, int nfds) {
  return SendWithRights(fd, nullptr, 0, data, len, fds, nfds);
}

long RecvMsg(int fd, char* data, size_t len, int* fds, int* nfds) {
  *nfds = 0;
  Received got;
  long n = Receive(fd, data, len, fds, &got);
  if (n < 0) return n;
  if (got.flags & MSG_CTRUNC) {
    for (int i = 0; i < got.nfds; i++) CloseQuietly(fds[i]);
    return kTruncated;
  }
  *nfds = got.nfds;
  return n;
}

int PeerCred(int fd, pid_t* pid, uid_t* uid, gid_t* gid) {
  ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return -errno;
  *pid = cred.pid;
  *uid = cred.uid;
  *gid = cred.gid;
  return 0;
}

long SendDatagram(const char* path, const char* data, size_t len,
                  const int* fds, int nfds) {
  sockaddr_un addr;
  int addr_len = MakeAddress(path, &addr);
  if (addr_len < 0) return addr_len;
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  long n = SendWithRights(fd, &addr, static_cast<socklen_t>(addr_len), data,
                          len, fds, nfds);
  CloseQuietly(fd);
  return n;
}

int BindDatagram(const char* path, int mode) {
  return BindAt(path, SOCK_DGRAM, mode, true);
}

long RecvDatagram(int fd, char* data, size_t len, Sender* sender) {
  sender->known = false;
  sender->pid = 0;
  sender->uid = 0;
  sender->gid = 0;
  int fds[kMaxFds];
  Received got;
  long n = Receive(fd, data, len, fds, &got);
  if (n < 0) return n;
  for (int i = 0; i < got.nfds; i++) CloseQuietly(fds[i]);
  // Cut ancillary data may have lost the credentials: drop the datagram.
  if (got.flags & MSG_CTRUNC) return kTruncated;
  if (got.flags & MSG_TRUNC) return -EMSGSIZE;
  if (got.has_cred) {
    sender->known = true;
    sender->pid = got.cred.pid;
    sender->uid = got.cred.uid;
    sender->gid = got.cred.gid;
  }
  return n;
}

int SetCloexec(int fd, bool on) {
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0) return -errno;
  int wanted = on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
  if (wanted != flags && fcntl(fd, F_SETFD, wanted) < 0) return -errno;
  return 0;
}

int Dup(int fd) {
  int rc = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  return rc < 0 ? -errno : rc;
}

int Dup2(int old_fd, int new_fd) {
  int rc;
  do {
    rc = dup2(old_fd, new_fd);
  } while (rc < 0 && errno == EINTR);
  return rc < 0 ? -errno : rc;
}

int Close(int fd) { return close(fd) < 0 ? -errno : 0; }

int CloseEach(int* fds, int n) {
  int failed = 0;
  for (int i = 0; i < n; i++) {
    int err = fds[i] < 0 ? EBADF : (close(fds[i]) < 0 ? errno : 0);
    if (err != 0 && err != EINTR) {
      fds[i] = -err;
      failed++;
    }
  }
  return failed;
}

}  // namespace fdpass

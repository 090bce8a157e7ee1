// binding.cc: the Node-API glue over fdpass.{h,cc}, and the addon's entry.
//
// Flat functions that take and return numbers and buffers; the poll handle
// is in poller.cc, the process calls in process_binding.cc, the errors and
// argument validators they all share in glue.cc. Man pages: unix(7),
// sendmsg(2), recvmsg(2), cmsg(3), getsockopt(2) SO_PEERCRED, fcntl(2).
#include <napi.h>

#include <errno.h>
#include <sys/socket.h>

#include <string>

#include "bound.h"
#include "fdpass.h"
#include "glue.h"
#include "poller.h"
#include "process_binding.h"
#include "reuseport.h"

namespace {

using glue::ArgByteRange;
using glue::ArgBytes;
using glue::ArgFd;
using glue::ArgFds;
using glue::ArgInt;
using glue::ArgString;
using glue::RawNumber;
using glue::RawUsage;
using glue::ThrowErrno;
using glue::ThrowUsage;

constexpr int kAgain = -1;  // EAGAIN / EWOULDBLOCK: retry when ready

// listen(path, mode, backlog) -> fd
Napi::Value Listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  int mode, backlog;
  if (!ArgString(env, info[0], &path) || !ArgInt(env, info[1], &mode) ||
      !ArgInt(env, info[2], &backlog)) {
    return ThrowUsage(env, "listen(path, mode, backlog)");
  }
  int fd = fdpass::Listen(path.c_str(), mode, backlog);
  if (fd < 0) return ThrowErrno(env, -fd, "listen", path);
  return Napi::Number::New(env, fd);
}

// connect(path) -> fd, or -1 when the listener's backlog is full
Napi::Value Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!ArgString(env, info[0], &path)) return ThrowUsage(env, "connect(path)");
  int fd = fdpass::Connect(path.c_str());
  if (fd == -EAGAIN) return Napi::Number::New(env, kAgain);
  if (fd < 0) return ThrowErrno(env, -fd, "connect", path);
  return Napi::Number::New(env, fd);
}

// socketpair() -> [fd, fd]: connected UNIX stream sockets, non-blocking,
// close-on-exec
Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fds[2];
  int rc = fdpass::SocketPair(fds);
  if (rc < 0) return ThrowErrno(env, -rc, "socketpair");
  Napi::Array pair = Napi::Array::New(env, 2);
  pair.Set(uint32_t{0}, Napi::Number::New(env, fds[0]));
  pair.Set(uint32_t{1}, Napi::Number::New(env, fds[1]));
  return pair;
}

// accept(fd) -> fd, or -1 when no connection waits
Napi::Value Accept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int listen_fd;
  if (!ArgFd(env, info[0], &listen_fd)) return ThrowUsage(env, "accept(fd)");
  int fd = fdpass::Accept(listen_fd);
  if (fd == -EAGAIN || fd == -EWOULDBLOCK) return Napi::Number::New(env, kAgain);
  if (fd < 0) return ThrowErrno(env, -fd, "accept");
  return Napi::Number::New(env, fd);
}

// close(fd)
Napi::Value Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ArgFd(env, info[0], &fd)) return ThrowUsage(env, "close(fd)");
  int rc = fdpass::Close(fd);
  // EINTR still closed the descriptor on Linux: not an error for the caller.
  if (rc < 0 && rc != -EINTR) return ThrowErrno(env, -rc, "close");
  return env.Undefined();
}

// The hot pair, sendmsg and recvmsg, run once per message: they use the C
// Node-API directly, one call per argument (node-addon-api's wrappers make
// several per typed array). bound.cc has them over buffers bound once, and
// the conversion of their results that both share.

// sendmsg(fd, bytes, offset, length, fds, nfds) -> bytes sent, -1 (EAGAIN)
// or -2 (ETOOMANYREFS).
napi_value SendMsg(napi_env env, napi_callback_info cbinfo) {
  constexpr const char* usage =
      "sendmsg(fd, bytes: Uint8Array, offset, length, fds: Int32Array | "
      "number[] | null, nfds <= 253)";
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, cbinfo, &argc, argv, nullptr, nullptr) !=
          napi_ok ||
      argc < 6) {
    return RawUsage(env, usage);
  }
  int fd;
  char* data;
  size_t len;
  int nfds;
  int fds[fdpass::kMaxFds];
  if (!ArgFd(env, argv[0], &fd) || !ArgByteRange(env, argv + 1, &data, &len) ||
      !ArgInt(env, argv[5], &nfds) || !ArgFds(env, argv[4], nfds, fds)) {
    return RawUsage(env, usage);
  }
  return bound::SendResult(env, fdpass::SendMsg(fd, data, len, fds, nfds));
}

// recvmsg(fd, bytes, offset, length, fdsOut: Int32Array(1 + 253)) -> bytes
// read (0 at end of stream) or -1 (EAGAIN); fdsOut[0] holds the number of
// descriptors, fdsOut[1..] the descriptors.
napi_value RecvMsg(napi_env env, napi_callback_info cbinfo) {
  constexpr const char* usage =
      "recvmsg(fd, bytes: Uint8Array, offset, length, fdsOut: Int32Array of "
      "at least 254 entries)";
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, cbinfo, &argc, argv, nullptr, nullptr) !=
          napi_ok ||
      argc < 5) {
    return RawUsage(env, usage);
  }
  int fd;
  char* data;
  size_t len;
  napi_typedarray_type type;
  size_t out_length;
  void* out_base;
  if (!ArgFd(env, argv[0], &fd) || !ArgByteRange(env, argv + 1, &data, &len) ||
      napi_get_typedarray_info(env, argv[4], &type, &out_length, &out_base,
                               nullptr, nullptr) != napi_ok ||
      type != napi_int32_array ||
      out_length < static_cast<size_t>(fdpass::kMaxFds) + 1) {
    return RawUsage(env, usage);
  }
  int32_t* out = static_cast<int32_t*>(out_base);
  int nfds = 0;
  long n = fdpass::RecvMsg(fd, data, len, out + 1, &nfds);
  out[0] = nfds;
  return bound::RecvResult(env, n);
}

// closeFds(fds: Int32Array, count) -> how many failed: closes fds[0..count)
// in one call, every one, going on past a failure; an entry close(2) failed
// on becomes -errno (EINTR counts as closed). The batch close of received
// descriptors a caller discards: one crossing instead of one per descriptor.
napi_value CloseFds(napi_env env, napi_callback_info cbinfo) {
  constexpr const char* usage = "closeFds(fds: Int32Array, count <= fds.length)";
  size_t argc = 2;
  napi_value argv[2];
  napi_typedarray_type type;
  size_t length;
  void* base;
  int count;
  if (napi_get_cb_info(env, cbinfo, &argc, argv, nullptr, nullptr) !=
          napi_ok ||
      argc < 2 ||
      napi_get_typedarray_info(env, argv[0], &type, &length, &base, nullptr,
                               nullptr) != napi_ok ||
      type != napi_int32_array || !ArgInt(env, argv[1], &count) ||
      count < 0 || static_cast<size_t>(count) > length) {
    return RawUsage(env, usage);
  }
  int failed = fdpass::CloseEach(static_cast<int32_t*>(base), count);
  return RawNumber(env, failed);
}

// setCloexec(fd, on)
Napi::Value SetCloexec(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ArgFd(env, info[0], &fd) || !info[1].IsBoolean()) {
    return ThrowUsage(env, "setCloexec(fd, on: boolean)");
  }
  int rc = fdpass::SetCloexec(fd, info[1].As<Napi::Boolean>().Value());
  if (rc < 0) return ThrowErrno(env, -rc, "fcntl");
  return env.Undefined();
}

// shutdownWrite(fd): shutdown(fd, SHUT_WR); the peer reads the end of the
// stream while this side can still read what it answers.
Napi::Value ShutdownWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ArgFd(env, info[0], &fd)) return ThrowUsage(env, "shutdownWrite(fd)");
  if (shutdown(fd, SHUT_WR) < 0) return ThrowErrno(env, errno, "shutdown");
  return env.Undefined();
}

// dup(fd) -> a close-on-exec duplicate
Napi::Value Dup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ArgFd(env, info[0], &fd)) return ThrowUsage(env, "dup(fd)");
  int rc = fdpass::Dup(fd);
  if (rc < 0) return ThrowErrno(env, -rc, "fcntl");
  return Napi::Number::New(env, rc);
}

// dup2(oldFd, newFd) -> newFd
Napi::Value Dup2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int old_fd, new_fd;
  if (!ArgFd(env, info[0], &old_fd) || !ArgFd(env, info[1], &new_fd)) {
    return ThrowUsage(env, "dup2(oldFd, newFd)");
  }
  int rc = fdpass::Dup2(old_fd, new_fd);
  if (rc < 0) return ThrowErrno(env, -rc, "dup2");
  return Napi::Number::New(env, rc);
}

// peercred(fd) -> { pid, uid, gid }
Napi::Value PeerCred(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ArgFd(env, info[0], &fd)) return ThrowUsage(env, "peercred(fd)");
  pid_t pid;
  uid_t uid;
  gid_t gid;
  int rc = fdpass::PeerCred(fd, &pid, &uid, &gid);
  if (rc < 0) return ThrowErrno(env, -rc, "getsockopt");
  Napi::Object result = Napi::Object::New(env);
  result.Set("pid", Napi::Number::New(env, pid));
  result.Set("uid", Napi::Number::New(env, uid));
  result.Set("gid", Napi::Number::New(env, gid));
  return result;
}

// sendDatagram(path, bytes, offset, length, fds, nfds) -> bytes sent
Napi::Value SendDatagram(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* usage =
      "sendDatagram(path, bytes: Uint8Array, offset, length, fds: Int32Array "
      "| number[] | null, nfds <= 253)";
  std::string path;
  char* data;
  size_t len;
  int nfds;
  int fds[fdpass::kMaxFds];
  napi_value range[3] = {info[1], info[2], info[3]};
  if (!ArgString(env, info[0], &path) || !ArgByteRange(env, range, &data, &len) ||
      !ArgInt(env, info[5], &nfds) || !ArgFds(env, info[4], nfds, fds)) {
    return ThrowUsage(env, usage);
  }
  long n = fdpass::SendDatagram(path.c_str(), data, len, fds, nfds);
  if (n < 0) return ThrowErrno(env, static_cast<int>(-n), "sendmsg", path);
  return Napi::Number::New(env, static_cast<double>(n));
}

// bindDatagram(path, mode) -> fd, a datagram socket that receives credentials
Napi::Value BindDatagram(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  int mode;
  if (!ArgString(env, info[0], &path) || !ArgInt(env, info[1], &mode)) {
    return ThrowUsage(env, "bindDatagram(path, mode)");
  }
  int fd = fdpass::BindDatagram(path.c_str(), mode);
  if (fd < 0) return ThrowErrno(env, -fd, "bind", path);
  return Napi::Number::New(env, fd);
}

// recvDatagram(fd, bytes: Uint8Array) -> { length, pid, uid, gid }, or null
// when none waits; pid, uid and gid are null when no credentials came (an
// unknown sender). A datagram longer than bytes throws EMSGSIZE, one whose
// ancillary data was cut ERR_GRACEFUL_FDS_TRUNCATED; either is dropped.
Napi::Value RecvDatagram(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  char* data;
  size_t len;
  if (!ArgFd(env, info[0], &fd) || !ArgBytes(env, info[1], &data, &len)) {
    return ThrowUsage(env, "recvDatagram(fd, bytes: Uint8Array)");
  }
  fdpass::Sender sender;
  long n = fdpass::RecvDatagram(fd, data, len, &sender);
  if (n == -EAGAIN || n == -EWOULDBLOCK) return env.Null();
  if (n == fdpass::kTruncated) {
    glue::CodedError(
        env, "ERR_GRACEFUL_FDS_TRUNCATED", "recvmsg",
        "recvmsg: the ancillary data of a datagram was cut (MSG_CTRUNC), most "
        "likely because this process reached its open-file limit (EMFILE): "
        "its sender cannot be trusted, so the datagram was dropped and its "
        "descriptors closed. The next datagram reads normally")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (n < 0) return ThrowErrno(env, static_cast<int>(-n), "recvmsg");
  Napi::Object result = Napi::Object::New(env);
  result.Set("length", Napi::Number::New(env, static_cast<double>(n)));
  if (sender.known) {
    result.Set("pid", Napi::Number::New(env, sender.pid));
    result.Set("uid", Napi::Number::New(env, sender.uid));
    result.Set("gid", Napi::Number::New(env, sender.gid));
  } else {
    result.Set("pid", env.Null());
    result.Set("uid", env.Null());
    result.Set("gid", env.Null());
  }
  return result;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("listen", Napi::Function::New(env, Listen));
  exports.Set("socketpair", Napi::Function::New(env, SocketPair));
  exports.Set("connect", Napi::Function::New(env, Connect));
  exports.Set("accept", Napi::Function::New(env, Accept));
  exports.Set("close", Napi::Function::New(env, Close));
  for (const auto& [name, fn] :
       {std::pair<const char*, napi_callback>{"sendmsg", SendMsg},
        {"recvmsg", RecvMsg},
        {"closeFds", CloseFds}}) {
    napi_value f;
    napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, nullptr, &f);
    exports.Set(name, Napi::Value(env, f));
  }
  exports.Set("peercred", Napi::Function::New(env, PeerCred));
  exports.Set("setCloexec", Napi::Function::New(env, SetCloexec));
  exports.Set("dup", Napi::Function::New(env, Dup));
  exports.Set("shutdownWrite", Napi::Function::New(env, ShutdownWrite));
  exports.Set("dup2", Napi::Function::New(env, Dup2));
  exports.Set("sendDatagram", Napi::Function::New(env, SendDatagram));
  exports.Set("bindDatagram", Napi::Function::New(env, BindDatagram));
  exports.Set("recvDatagram", Napi::Function::New(env, RecvDatagram));
  bound::Add(env, exports);
  process_binding::Add(env, exports);
  exports.Set("Poller", poller::Define(env));
  exports.Set("maxFds", Napi::Number::New(env, fdpass::kMaxFds));
  fdpass::RegisterReusePort(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(graceful_fdpass, Init)

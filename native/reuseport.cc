// reuseport.cc: see reuseport.h. Plain POSIX code and its Node-API glue;
// errors are shaped like Node's (code, errno, syscall, address, port).
#include "reuseport.h"
#include "glue.h"

#include <arpa/inet.h>
#include <linux/filter.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <string>

namespace fdpass {
namespace {

// ListenReusePortFd binds and (with do_listen) listens; returns the fd (and
// sets *bound_port) or -errno, having closed what it opened. A socket bound
// but not listening is no member of the group yet: the kernel sends it no
// connection until whoever gets it calls listen(2).
// With type SOCK_DGRAM (and reuse false) it is a bound UDP socket instead,
// without SO_REUSEADDR/SO_REUSEPORT: a primary holds it for its workers.
int BindSocketFd(const std::string& host, int port, int type, bool reuse, int backlog, bool ipv6_only, bool do_listen, int* bound_port, const char** syscall) {
  sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t len;
  int family;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    family = AF_INET;
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof *v4;
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    family = AF_INET6;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof *v6;
  } else {
    *syscall = "inet_pton";
    return -EINVAL;
  }
  *syscall = "socket";
  int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  int v6only = ipv6_only ? 1 : 0;
  int rc = 0;
  *syscall = "setsockopt";
  if ((reuse && (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
                 setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)) ||
      (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) < 0)) {
    rc = -errno;
  }
  if (rc == 0) {
    *syscall = "bind";
    if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) < 0) rc = -errno;
  }
  if (rc == 0 && do_listen) {
    *syscall = "listen";
    if (listen(fd, backlog) < 0) rc = -errno;
  }
  if (rc == 0) {
    *syscall = "getsockname";
    sockaddr_storage got;
    socklen_t got_len = sizeof got;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&got), &got_len) < 0) {
      rc = -errno;
    } else {
      *bound_port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&got)->sin_port
                                            : reinterpret_cast<sockaddr_in6*>(&got)->sin6_port);
    }
  }
  if (rc < 0) {
    close(fd);
    return rc;
  }
  return fd;
}

Napi::Value Result(Napi::Env env, int fd, const std::string& host, int port, int bound_port, const char* syscall);

Napi::Value ListenReusePort(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsNumber() || !info[3].IsBoolean()) {
    Napi::TypeError::New(env, "Usage: listenReusePort(host, port, backlog, ipv6Only[, listen])").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string host = info[0].As<Napi::String>().Utf8Value();
  int port = info[1].As<Napi::Number>().Int32Value();
  int bound_port = 0;
  const char* syscall = "socket";
  int fd = BindSocketFd(host, port, SOCK_STREAM, true, info[2].As<Napi::Number>().Int32Value(), info[3].As<Napi::Boolean>().Value(),
                        info.Length() < 5 || !info[4].IsBoolean() || info[4].As<Napi::Boolean>().Value(), &bound_port, &syscall);
  return Result(env, fd, host, port, bound_port, syscall);
}

Napi::Value BindUdp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsBoolean()) {
    Napi::TypeError::New(env, "Usage: bindUdp(host, port, ipv6Only)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string host = info[0].As<Napi::String>().Utf8Value();
  int port = info[1].As<Napi::Number>().Int32Value();
  int bound_port = 0;
  const char* syscall = "socket";
  int fd = BindSocketFd(host, port, SOCK_DGRAM, false, 0, info[2].As<Napi::Boolean>().Value(), false, &bound_port, &syscall);
  return Result(env, fd, host, port, bound_port, syscall);
}

// SetReusePort sets SO_REUSEPORT on a socket already bound (and listening):
// Linux checks the flag of every socket on the port at each later bind, so a
// new socket with SO_REUSEPORT (same uid) can then bind the same port on an
// overlapping address (0.0.0.0 beside 127.0.0.1, or the reverse).
Napi::Value SetReusePort(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (info.Length() < 1 || !glue::ArgFd(env, info[0], &fd)) return glue::ThrowUsage(env, "setReusePort(fd)");
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) return glue::ThrowErrno(env, errno, "setsockopt");
  return env.Undefined();
}

// DropIncoming attaches a socket filter that drops every packet to fd, a
// listening socket: no new connection gets into its queue (a client's SYN
// is dropped and sent again later, when another socket may serve it), while
// what is queued already can still be accepted before the socket is closed.
Napi::Value DropIncoming(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (info.Length() < 1 || !glue::ArgFd(env, info[0], &fd)) return glue::ThrowUsage(env, "dropIncoming(fd)");
  sock_filter code[] = {{BPF_RET | BPF_K, 0, 0, 0}};
  sock_fprog prog = {1, code};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0) return glue::ThrowErrno(env, errno, "setsockopt");
  return env.Undefined();
}

Napi::Value Result(Napi::Env env, int fd, const std::string& host, int port, int bound_port, const char* syscall) {
  if (fd < 0) {
    const char* code = uv_err_name(fd);
    Napi::Error error = Napi::Error::New(env, std::string(syscall) + " " + code + " " + host + ":" + std::to_string(port) + " (" + uv_strerror(fd) + ")");
    error.Set("code", Napi::String::New(env, code));
    error.Set("errno", Napi::Number::New(env, fd));
    error.Set("syscall", Napi::String::New(env, syscall));
    error.Set("address", Napi::String::New(env, host));
    error.Set("port", Napi::Number::New(env, port));
    error.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("fd", Napi::Number::New(env, fd));
  result.Set("port", Napi::Number::New(env, bound_port));
  return result;
}

}  // namespace

void RegisterReusePort(Napi::Env env, Napi::Object exports) {
  exports.Set("listenReusePort", Napi::Function::New(env, ListenReusePort));
  exports.Set("bindUdp", Napi::Function::New(env, BindUdp));
  exports.Set("setReusePort", Napi::Function::New(env, SetReusePort));
  exports.Set("dropIncoming", Napi::Function::New(env, DropIncoming));
}

}  // namespace fdpass

// binding.cc: the Node-API glue over fdpass.{h,cc}.
//
// Flat functions that take and return numbers and buffers, plus Poller, a
// libuv poll handle that tells JavaScript when a descriptor owned by this
// addon is readable or writable (libuv never reads it, so no ancillary data
// is lost). Errors are shaped like Node's: code (errno name), errno (negative,
// as in libuv), syscall, and path where there is one.
#include <napi.h>
#include <uv.h>

#include <errno.h>
#include <string.h>

#include <string>

#include "fdpass.h"
#include "process.h"
#include "reuseport.h"

namespace {

constexpr int kAgain = -1;          // EAGAIN / EWOULDBLOCK: retry when ready
constexpr int kTooManyRefs = -2;    // ETOOMANYREFS: retry once the peer reads

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall,
                       const std::string& path = std::string()) {
  const char* code = uv_err_name(-err);
  std::string message = std::string(syscall) + " " + code;
  if (!path.empty()) message += " " + path;
  message += " (";
  message += uv_strerror(-err);
  message += ")";
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  error.Set("errno", Napi::Number::New(env, -err));
  error.Set("syscall", Napi::String::New(env, syscall));
  if (!path.empty()) error.Set("path", Napi::String::New(env, path));
  return error;
}

Napi::Value ThrowErrno(Napi::Env env, int err, const char* syscall,
                       const std::string& path = std::string()) {
  ErrnoError(env, err, syscall, path).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value ThrowUsage(Napi::Env env, const char* usage) {
  Napi::TypeError::New(env, std::string("Usage: ") + usage)
      .ThrowAsJavaScriptException();
  return env.Undefined();
}

bool IsFd(const Napi::Value& v) {
  if (!v.IsNumber()) return false;
  double d = v.As<Napi::Number>().DoubleValue();
  return d >= 0 && d <= 2147483647.0 && d == static_cast<int>(d);
}

// Reads fds from an Int32Array (the first count entries) or a plain array.
bool ReadFds(const Napi::Value& v, int count, int* out) {
  if (count < 0 || count > fdpass::kMaxFds) return false;
  if (v.IsTypedArray()) {
    Napi::TypedArray ta = v.As<Napi::TypedArray>();
    if (ta.TypedArrayType() != napi_int32_array) return false;
    Napi::Int32Array arr = v.As<Napi::Int32Array>();
    if (arr.ElementLength() < static_cast<size_t>(count)) return false;
    for (int i = 0; i < count; i++) {
      if (arr[i] < 0) return false;
      out[i] = arr[i];
    }
    return true;
  }
  if (v.IsArray()) {
    Napi::Array arr = v.As<Napi::Array>();
    if (arr.Length() < static_cast<uint32_t>(count)) return false;
    for (int i = 0; i < count; i++) {
      Napi::Value item = arr.Get(static_cast<uint32_t>(i));
      if (!IsFd(item)) return false;
      out[i] = item.As<Napi::Number>().Int32Value();
    }
    return true;
  }
  return count == 0 && (v.IsNull() || v.IsUndefined());
}

// Resolves (buffer, offset, length) to a byte range, checking bounds.
bool ByteRange(const Napi::CallbackInfo& info, size_t index, char** data,
               size_t* len) {
  if (!info[index].IsTypedArray() || !info[index + 1].IsNumber() ||
      !info[index + 2].IsNumber()) {
    return false;
  }
  Napi::TypedArray ta = info[index].As<Napi::TypedArray>();
  if (ta.TypedArrayType() != napi_uint8_array) return false;
  Napi::Uint8Array bytes = info[index].As<Napi::Uint8Array>();
  double offset = info[index + 1].As<Napi::Number>().DoubleValue();
  double length = info[index + 2].As<Napi::Number>().DoubleValue();
  if (offset < 0 || length < 0 || offset + length > bytes.ByteLength() ||
      offset != static_cast<size_t>(offset) ||
      length != static_cast<size_t>(length)) {
    return false;
  }
  *data = reinterpret_cast<char*>(bytes.Data()) + static_cast<size_t>(offset);
  *len = static_cast<size_t>(length);
  return true;
}

// listen(path, mode, backlog) -> fd
Napi::Value Listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsNumber() || !info[2].IsNumber()) {
    return ThrowUsage(env, "listen(path, mode, backlog)");
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = fdpass::Listen(path.c_str(), info[1].As<Napi::Number>().Int32Value(),
                          info[2].As<Napi::Number>().Int32Value());
  if (fd < 0) return ThrowErrno(env, -fd, "listen", path);
  return Napi::Number::New(env, fd);
}

// connect(path) -> fd, or -1 when the listener's backlog is full
Napi::Value Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) return ThrowUsage(env, "connect(path)");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = fdpass::Connect(path.c_str());
  if (fd == -EAGAIN) return Napi::Number::New(env, kAgain);
  if (fd < 0) return ThrowErrno(env, -fd, "connect", path);
  return Napi::Number::New(env, fd);
}

// accept(fd) -> fd, or -1 when no connection waits
Napi::Value Accept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!IsFd(info[0])) return ThrowUsage(env, "accept(fd)");
  int fd = fdpass::Accept(info[0].As<Napi::Number>().Int32Value());
  if (fd == -EAGAIN || fd == -EWOULDBLOCK) return Napi::Number::New(env, kAgain);
  if (fd < 0) return ThrowErrno(env, -fd, "accept");
  return Napi::Number::New(env, fd);
}

// close(fd)
Napi::Value Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!IsFd(info[0])) return ThrowUsage(env, "close(fd)");
  int rc = fdpass::Close(info[0].As<Napi::Number>().Int32Value());
  // EINTR still closed the descriptor on Linux: not an error for the caller.
  if (rc < 0 && rc != -EINTR) return ThrowErrno(env, -rc, "close");
  return env.Undefined();
}

// The hot pair, sendmsg and recvmsg, run once per message: they use the C
// Node-API directly, one call per argument (node-addon-api's wrappers make
// several per typed array), and check the same things as the helpers above.

// Reads a descriptor argument (an integer in [0, 2^31)); false otherwise.
bool RawFd(napi_env env, napi_value v, int* fd) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return false;
  if (!(d >= 0 && d <= 2147483647.0) || d != static_cast<int>(d)) return false;
  *fd = static_cast<int>(d);
  return true;
}

// Reads a non-negative integral size argument; false otherwise.
bool RawSize(napi_env env, napi_value v, size_t* out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return false;
  if (!(d >= 0 && d <= 9007199254740991.0) ||
      d != static_cast<double>(static_cast<size_t>(d))) {
    return false;
  }
  *out = static_cast<size_t>(d);
  return true;
}

// Resolves (Uint8Array, offset, length) to a byte range, checking bounds.
bool RawByteRange(napi_env env, const napi_value* argv, char** data,
                  size_t* len) {
  napi_typedarray_type type;
  size_t length;
  void* base;
  if (napi_get_typedarray_info(env, argv[0], &type, &length, &base, nullptr,
                               nullptr) != napi_ok ||
      type != napi_uint8_array) {
    return false;
  }
  size_t offset, count;
  if (!RawSize(env, argv[1], &offset) || !RawSize(env, argv[2], &count) ||
      offset > length || count > length - offset) {
    return false;
  }
  *data = static_cast<char*>(base) + offset;
  *len = count;
  return true;
}

// Reads nfds descriptors from an Int32Array or a plain array (or none from
// null / undefined).
bool RawFds(napi_env env, napi_value v, int count, int* out) {
  if (count < 0 || count > fdpass::kMaxFds) return false;
  napi_typedarray_type type;
  size_t length;
  void* base;
  if (napi_get_typedarray_info(env, v, &type, &length, &base, nullptr,
                               nullptr) == napi_ok) {
    if (type != napi_int32_array || length < static_cast<size_t>(count)) {
      return false;
    }
    const int32_t* fds = static_cast<const int32_t*>(base);
    for (int i = 0; i < count; i++) {
      if (fds[i] < 0) return false;
      out[i] = fds[i];
    }
    return true;
  }
  bool is_array = false;
  if (napi_is_array(env, v, &is_array) == napi_ok && is_array) {
    uint32_t array_length;
    if (napi_get_array_length(env, v, &array_length) != napi_ok ||
        array_length < static_cast<uint32_t>(count)) {
      return false;
    }
    for (int i = 0; i < count; i++) {
      napi_value item;
      if (napi_get_element(env, v, static_cast<uint32_t>(i), &item) !=
              napi_ok ||
          !RawFd(env, item, &out[i])) {
        return false;
      }
    }
    return true;
  }
  napi_valuetype t;
  return count == 0 && napi_typeof(env, v, &t) == napi_ok &&
         (t == napi_null || t == napi_undefined);
}

napi_value RawNumber(napi_env env, double n) {
  napi_value v;
  napi_create_double(env, n, &v);
  return v;
}

napi_value RawUsage(napi_env env, const char* usage) {
  std::string message = std::string("Usage: ") + usage;
  napi_throw_type_error(env, nullptr, message.c_str());
  return nullptr;
}

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
  int32_t nfds;
  int fds[fdpass::kMaxFds];
  if (!RawFd(env, argv[0], &fd) || !RawByteRange(env, argv + 1, &data, &len) ||
      napi_get_value_int32(env, argv[5], &nfds) != napi_ok ||
      !RawFds(env, argv[4], nfds, fds)) {
    return RawUsage(env, usage);
  }
  long n = fdpass::SendMsg(fd, data, len, fds, nfds);
  if (n == -EAGAIN || n == -EWOULDBLOCK) return RawNumber(env, kAgain);
  if (n == -ETOOMANYREFS) return RawNumber(env, kTooManyRefs);
  if (n < 0) {
    ErrnoError(Napi::Env(env), static_cast<int>(-n), "sendmsg")
        .ThrowAsJavaScriptException();
    return nullptr;
  }
  return RawNumber(env, static_cast<double>(n));
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
  if (!RawFd(env, argv[0], &fd) || !RawByteRange(env, argv + 1, &data, &len) ||
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
  if (n == -EAGAIN || n == -EWOULDBLOCK) return RawNumber(env, kAgain);
  if (n == fdpass::kTruncated) {
    Napi::Env e(env);
    Napi::Error error = Napi::Error::New(
        e,
        "recvmsg: the kernel dropped descriptors (MSG_CTRUNC), most likely "
        "because this process reached its open-file limit (EMFILE); every "
        "descriptor of the message was closed. Raise the limit (ulimit -n) "
        "or close descriptors, then retry");
    error.Set("code", Napi::String::New(e, "ERR_GRACEFUL_FDS_TRUNCATED"));
    error.Set("syscall", Napi::String::New(e, "recvmsg"));
    error.ThrowAsJavaScriptException();
    return nullptr;
  }
  if (n < 0) {
    ErrnoError(Napi::Env(env), static_cast<int>(-n), "recvmsg")
        .ThrowAsJavaScriptException();
    return nullptr;
  }
  return RawNumber(env, static_cast<double>(n));
}

// setCloexec(fd, on)
Napi::Value SetCloexec(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!IsFd(info[0]) || !info[1].IsBoolean()) return ThrowUsage(env, "setCloexec(fd, on: boolean)");
  int rc = fdpass::SetCloexec(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Boolean>().Value());
  if (rc < 0) return ThrowErrno(env, -rc, "fcntl");
  return env.Undefined();
}

// dup(fd) -> a close-on-exec duplicate
Napi::Value Dup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!IsFd(info[0])) return ThrowUsage(env, "dup(fd)");
  int rc = fdpass::Dup(info[0].As<Napi::Number>().Int32Value());
  if (rc < 0) return ThrowErrno(env, -rc, "fcntl");
  return Napi::Number::New(env, rc);
}

// dup2(oldFd, newFd) -> newFd
Napi::Value Dup2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!IsFd(info[0]) || !IsFd(info[1])) return ThrowUsage(env, "dup2(oldFd, newFd)");
  int rc = fdpass::Dup2(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value());
  if (rc < 0) return ThrowErrno(env, -rc, "dup2");
  return Napi::Number::New(env, rc);
}

// peercred(fd) -> { pid, uid, gid }
Napi::Value PeerCred(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!IsFd(info[0])) return ThrowUsage(env, "peercred(fd)");
  pid_t pid;
  uid_t uid;
  gid_t gid;
  int rc = fdpass::PeerCred(info[0].As<Napi::Number>().Int32Value(), &pid,
                            &uid, &gid);
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
  char* data;
  size_t len;
  int fds[fdpass::kMaxFds];
  constexpr const char* usage =
      "sendDatagram(path, bytes: Uint8Array, offset, length, fds: Int32Array "
      "| number[] | null, nfds <= 253)";
  if (!info[0].IsString() || !ByteRange(info, 1, &data, &len) ||
      !info[5].IsNumber()) {
    return ThrowUsage(env, usage);
  }
  int nfds = info[5].As<Napi::Number>().Int32Value();
  if (!ReadFds(info[4], nfds, fds)) return ThrowUsage(env, usage);
  std::string path = info[0].As<Napi::String>().Utf8Value();
  long n = fdpass::SendDatagram(path.c_str(), data, len, fds, nfds);
  if (n < 0) return ThrowErrno(env, static_cast<int>(-n), "sendmsg", path);
  return Napi::Number::New(env, static_cast<double>(n));
}

// bindDatagram(path, mode) -> fd, a datagram socket that receives credentials
Napi::Value BindDatagram(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsNumber()) {
    return ThrowUsage(env, "bindDatagram(path, mode)");
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = fdpass::BindDatagram(path.c_str(),
                                info[1].As<Napi::Number>().Int32Value());
  if (fd < 0) return ThrowErrno(env, -fd, "bind", path);
  return Napi::Number::New(env, fd);
}

// recvDatagram(fd, bytes: Uint8Array) -> { length, pid, uid, gid }, or null
// when none waits. A datagram longer than bytes throws EMSGSIZE (dropped).
Napi::Value RecvDatagram(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!IsFd(info[0]) || !info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    return ThrowUsage(env, "recvDatagram(fd, bytes: Uint8Array)");
  }
  Napi::Uint8Array bytes = info[1].As<Napi::Uint8Array>();
  pid_t pid;
  uid_t uid;
  gid_t gid;
  long n = fdpass::RecvDatagram(info[0].As<Napi::Number>().Int32Value(),
                                reinterpret_cast<char*>(bytes.Data()),
                                bytes.ByteLength(), &pid, &uid, &gid);
  if (n == -EAGAIN || n == -EWOULDBLOCK) return env.Null();
  if (n < 0) return ThrowErrno(env, static_cast<int>(-n), "recvmsg");
  Napi::Object result = Napi::Object::New(env);
  result.Set("length", Napi::Number::New(env, static_cast<double>(n)));
  result.Set("pid", Napi::Number::New(env, pid));
  result.Set("uid", Napi::Number::New(env, uid));
  result.Set("gid", Napi::Number::New(env, gid));
  return result;
}

// setChildSubreaper()
Napi::Value SetChildSubreaper(const Napi::CallbackInfo& info) {
  int rc = fdpass::SetChildSubreaper();
  if (rc < 0) return ThrowErrno(info.Env(), -rc, "prctl");
  return info.Env().Undefined();
}

// reap(skip: number[]) -> [{ pid, code, signal }]: exited children, except
// the pids in skip (libuv's), which are left for libuv to reap.
Napi::Value Reap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr uint32_t kMaxSkip = 64;
  constexpr int kBatch = 64;
  if (!info[0].IsArray() || info[0].As<Napi::Array>().Length() > kMaxSkip) {
    return ThrowUsage(env, "reap(skip: number[], at most 64 pids)");
  }
  Napi::Array list = info[0].As<Napi::Array>();
  pid_t skip[kMaxSkip];
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value v = list.Get(i);
    if (!IsFd(v)) return ThrowUsage(env, "reap(skip: number[])");
    skip[i] = v.As<Napi::Number>().Int32Value();
  }
  fdpass::Reaped reaped[kBatch];
  int n = fdpass::Reap(skip, static_cast<int>(list.Length()), reaped, kBatch);
  if (n < 0) return ThrowErrno(env, -n, "waitid");
  Napi::Array result = Napi::Array::New(env, n);
  for (int i = 0; i < n; i++) {
    Napi::Object r = Napi::Object::New(env);
    r.Set("pid", Napi::Number::New(env, reaped[i].pid));
    r.Set("code", reaped[i].code < 0 ? env.Null()
                                     : Napi::Number::New(env, reaped[i].code));
    r.Set("signal", reaped[i].signal == 0
                        ? env.Null()
                        : Napi::Number::New(env, reaped[i].signal));
    result.Set(static_cast<uint32_t>(i), r);
  }
  return result;
}

// pidfdOpen(pid) -> fd, readable once the process exits
Napi::Value PidfdOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!IsFd(info[0]) || info[0].As<Napi::Number>().Int32Value() <= 0) {
    return ThrowUsage(env, "pidfdOpen(pid > 0)");
  }
  int fd = fdpass::PidfdOpen(info[0].As<Napi::Number>().Int32Value());
  if (fd < 0) return ThrowErrno(env, -fd, "pidfd_open");
  return Napi::Number::New(env, fd);
}

// Poller(fd, callback(status, events)): a libuv poll handle. start(events)
// with 1 = readable, 2 = writable; stop(); close(); ref(); unref(). While
// started it keeps itself alive; close() must be called before the
// descriptor is closed.
class Poller : public Napi::ObjectWrap<Poller> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Poller",
                       {InstanceMethod("start", &Poller::Start),
                        InstanceMethod("stop", &Poller::Stop),
                        InstanceMethod("close", &Poller::Close),
                        InstanceMethod("ref", &Poller::RefHandle),
                        InstanceMethod("unref", &Poller::UnrefHandle)});
  }

  explicit Poller(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<Poller>(info),
        context_(info.Env(), "GracefulPoller") {
    Napi::Env env = info.Env();
    if (!IsFd(info[0]) || !info[1].IsFunction()) {
      ThrowUsage(env, "new Poller(fd, callback(status, events))");
      return;
    }
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
      Napi::Error::New(env, "Poller: no event loop").ThrowAsJavaScriptException();
      return;
    }
    handle_ = new uv_poll_t;
    int rc = uv_poll_init(loop, handle_, info[0].As<Napi::Number>().Int32Value());
    if (rc < 0) {
      delete handle_;
      handle_ = nullptr;
      ThrowErrno(env, -rc, "uv_poll_init");
      return;
    }
    handle_->data = this;
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
  }

  ~Poller() override { CloseHandle(); }

 private:
  static void OnClosed(uv_handle_t* handle) {
    delete reinterpret_cast<uv_poll_t*>(handle);
  }

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    Poller* self = static_cast<Poller*>(handle->data);
    if (self == nullptr) return;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    napi_value argv[2] = {Napi::Number::New(env, status),
                          Napi::Number::New(env, events)};
    napi_value result;
    napi_status st =
        napi_make_callback(env, self->context_, self->Value(),
                           self->callback_.Value(), 2, argv, &result);
    if (st == napi_pending_exception) {
      napi_value error;
      napi_get_and_clear_last_exception(env, &error);
      napi_fatal_exception(env, error);
    }
  }

  void KeepAlive(bool alive) {
    if (alive && !strong_) {
      Ref();
      strong_ = true;
    } else if (!alive && strong_) {
      Unref();
      strong_ = false;
    }
  }

  void CloseHandle() {
    if (handle_ == nullptr) return;
    uv_poll_stop(handle_);
    handle_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(handle_), OnClosed);
    handle_ = nullptr;
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsNumber()) return ThrowUsage(env, "poller.start(events)");
    if (handle_ == nullptr) return ThrowErrno(env, EBADF, "uv_poll_start");
    int events = info[0].As<Napi::Number>().Int32Value() &
                 (UV_READABLE | UV_WRITABLE);
    if (events == 0) {
      uv_poll_stop(handle_);
      KeepAlive(false);
      return env.Undefined();
    }
    int rc = uv_poll_start(handle_, events, OnPoll);
    if (rc < 0) return ThrowErrno(env, -rc, "uv_poll_start");
    KeepAlive(true);
    return env.Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (handle_ != nullptr) uv_poll_stop(handle_);
    KeepAlive(false);
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseHandle();
    KeepAlive(false);
    return info.Env().Undefined();
  }

  Napi::Value RefHandle(const Napi::CallbackInfo& info) {
    if (handle_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(handle_));
    return info.Env().Undefined();
  }

  Napi::Value UnrefHandle(const Napi::CallbackInfo& info) {
    if (handle_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(handle_));
    return info.Env().Undefined();
  }

  uv_poll_t* handle_ = nullptr;
  bool strong_ = false;
  Napi::FunctionReference callback_;
  Napi::AsyncContext context_;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("listen", Napi::Function::New(env, Listen));
  exports.Set("connect", Napi::Function::New(env, Connect));
  exports.Set("accept", Napi::Function::New(env, Accept));
  exports.Set("close", Napi::Function::New(env, Close));
  for (const auto& [name, fn] :
       {std::pair<const char*, napi_callback>{"sendmsg", SendMsg},
        {"recvmsg", RecvMsg}}) {
    napi_value f;
    napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, nullptr, &f);
    exports.Set(name, Napi::Value(env, f));
  }
  exports.Set("peercred", Napi::Function::New(env, PeerCred));
  exports.Set("setCloexec", Napi::Function::New(env, SetCloexec));
  exports.Set("dup", Napi::Function::New(env, Dup));
  exports.Set("dup2", Napi::Function::New(env, Dup2));
  exports.Set("sendDatagram", Napi::Function::New(env, SendDatagram));
  exports.Set("bindDatagram", Napi::Function::New(env, BindDatagram));
  exports.Set("recvDatagram", Napi::Function::New(env, RecvDatagram));
  exports.Set("setChildSubreaper", Napi::Function::New(env, SetChildSubreaper));
  exports.Set("reap", Napi::Function::New(env, Reap));
  exports.Set("pidfdOpen", Napi::Function::New(env, PidfdOpen));
  exports.Set("Poller", Poller::Define(env));
  exports.Set("maxFds", Napi::Number::New(env, fdpass::kMaxFds));
  fdpass::RegisterReusePort(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(graceful_fdpass, Init)

// poller.cc: Poller, a libuv poll handle (see poller.h). libuv reports
// POLLERR as a bare status and stops the handle; start() starts it afresh.
// Man pages: poll(2), epoll(7).
#include "poller.h"

#include <errno.h>
#include <uv.h>

#include "glue.h"

namespace poller {
namespace {

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
    int fd;
    if (!glue::ArgFd(env, info[0], &fd) || !info[1].IsFunction()) {
      glue::ThrowUsage(env, "new Poller(fd, callback(status, events))");
      return;
    }
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
      Napi::Error::New(env, "Poller: no event loop").ThrowAsJavaScriptException();
      return;
    }
    handle_ = new uv_poll_t;
    int rc = uv_poll_init(loop, handle_, fd);
    if (rc < 0) {
      delete handle_;
      handle_ = nullptr;
      glue::ThrowErrno(env, -rc, "uv_poll_init");
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
    if (!info[0].IsNumber()) return glue::ThrowUsage(env, "poller.start(events)");
    if (handle_ == nullptr) return glue::ThrowErrno(env, EBADF, "uv_poll_start");
    int events = info[0].As<Napi::Number>().Int32Value() &
                 (UV_READABLE | UV_WRITABLE);
    if (events == 0) {
      uv_poll_stop(handle_);
      KeepAlive(false);
      return env.Undefined();
    }
    int rc = uv_poll_start(handle_, events, OnPoll);
    if (rc < 0) return glue::ThrowErrno(env, -rc, "uv_poll_start");
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

}  // namespace

Napi::Function Define(Napi::Env env) { return Poller::Define(env); }

}  // namespace poller

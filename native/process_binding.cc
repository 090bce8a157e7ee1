// process_binding.cc: setChildSubreaper(), reap(skip), pidfdOpen(pid) over
// process.{h,cc}. Man pages: prctl(2) PR_SET_CHILD_SUBREAPER, waitid(2),
// pidfd_open(2).
#include "process_binding.h"

#include "glue.h"
#include "process.h"

namespace process_binding {
namespace {

// setChildSubreaper()
Napi::Value SetChildSubreaper(const Napi::CallbackInfo& info) {
  int rc = fdpass::SetChildSubreaper();
  if (rc < 0) return glue::ThrowErrno(info.Env(), -rc, "prctl");
  return info.Env().Undefined();
}

// reap(skip: number[]) -> [{ pid, code, signal }]: exited children, except
// the pids in skip (libuv's), which are left for libuv to reap.
Napi::Value Reap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr uint32_t kMaxSkip = 64;
  constexpr int kBatch = 64;
  if (!info[0].IsArray() || info[0].As<Napi::Array>().Length() > kMaxSkip) {
    return glue::ThrowUsage(env, "reap(skip: number[], at most 64 pids)");
  }
  Napi::Array list = info[0].As<Napi::Array>();
  pid_t skip[kMaxSkip];
  for (uint32_t i = 0; i < list.Length(); i++) {
    int pid;
    if (!glue::ArgFd(env, list.Get(i), &pid)) {
      return glue::ThrowUsage(env, "reap(skip: number[])");
    }
    skip[i] = pid;
  }
  fdpass::Reaped reaped[kBatch];
  int n = fdpass::Reap(skip, static_cast<int>(list.Length()), reaped, kBatch);
  if (n < 0) return glue::ThrowErrno(env, -n, "waitid");
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
  int pid;
  if (!glue::ArgFd(env, info[0], &pid) || pid <= 0) {
    return glue::ThrowUsage(env, "pidfdOpen(pid > 0)");
  }
  int fd = fdpass::PidfdOpen(pid);
  if (fd < 0) return glue::ThrowErrno(env, -fd, "pidfd_open");
  return Napi::Number::New(env, fd);
}

}  // namespace

void Add(Napi::Env env, Napi::Object exports) {
  exports.Set("setChildSubreaper", Napi::Function::New(env, SetChildSubreaper));
  exports.Set("reap", Napi::Function::New(env, Reap));
  exports.Set("pidfdOpen", Napi::Function::New(env, PidfdOpen));
}

}  // namespace process_binding

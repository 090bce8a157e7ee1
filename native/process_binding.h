// process_binding.h: the Node-API glue over process.{h,cc}: subreaper,
// reaping, pidfds. Man pages: prctl(2), waitid(2), pidfd_open(2).
#ifndef GRACEFUL_PROCESS_BINDING_H
#define GRACEFUL_PROCESS_BINDING_H

#include <napi.h>

namespace process_binding {

// Add sets setChildSubreaper, reap and pidfdOpen on exports.
void Add(Napi::Env env, Napi::Object exports);

}  // namespace process_binding

#endif  // GRACEFUL_PROCESS_BINDING_H

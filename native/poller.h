// poller.h: Poller, a libuv poll handle over a descriptor the addon owns.
// It tells JavaScript when the descriptor is readable or writable; libuv
// never reads it, so no ancillary data is lost. Man pages: poll(2), epoll(7);
// libuv's uv_poll_t.
#ifndef GRACEFUL_POLLER_H
#define GRACEFUL_POLLER_H

#include <napi.h>

namespace poller {

// Define returns the Poller class: new Poller(fd, callback(status, events)).
Napi::Function Define(Napi::Env env);

}  // namespace poller

#endif  // GRACEFUL_POLLER_H

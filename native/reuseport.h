// reuseport.h: a TCP listening socket in an SO_REUSEPORT group, which Node 20
// cannot make (its `reusePort` listen option needs Node 22.12). Each worker
// of a service gets a member of the group; the kernel spreads connections
// over the members by a hash of the 4-tuple. Man pages: socket(7)
// SO_REUSEPORT, tcp(7), bind(2), listen(2), getsockname(2).
#ifndef GRACEFUL_REUSEPORT_H
#define GRACEFUL_REUSEPORT_H

#include <napi.h>

namespace fdpass {

// Adds listenReusePort(host, port, backlog, ipv6Only[, listen]) to exports: it
// returns { fd, port } of a new non-blocking, close-on-exec socket with
// SO_REUSEADDR and SO_REUSEPORT set, bound to the numeric address host, and
// listening unless listen is false (its receiver listens when it accepts).
// And bindUdp(host, port, ipv6Only): { fd, port } of a bound UDP socket; and
// setReusePort(fd): SO_REUSEPORT set on a socket already bound; and
// dropIncoming(fd): a socket filter that drops every packet to fd.
void RegisterReusePort(Napi::Env env, Napi::Object exports);

}  // namespace fdpass

#endif  // GRACEFUL_REUSEPORT_H

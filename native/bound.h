// bound.h: sendmsg and recvmsg over buffers bound once (see bound.cc).
// Man pages: sendmsg(2), recvmsg(2), cmsg(3).
#ifndef GRACEFUL_BOUND_H
#define GRACEFUL_BOUND_H

#include <napi.h>

namespace bound {

// Add sets bindReceive, recvmsgBound, recvmsgMany, recvmsgFailure, bindSend
// and sendmsgBound on exports.
void Add(Napi::Env env, Napi::Object exports);

// RecvResult turns what fdpass::RecvMsg returned into recvmsg's answer: the
// bytes read, -1 for EAGAIN, or a thrown error (ERR_GRACEFUL_FDS_TRUNCATED,
// or errno shaped like Node's); nullptr when it threw.
napi_value RecvResult(napi_env env, long n);

// SendResult does the same for fdpass::SendMsg: bytes sent, -1 for EAGAIN,
// -2 for ETOOMANYREFS, or a thrown error.
napi_value SendResult(napi_env env, long n);

}  // namespace bound

#endif  // GRACEFUL_BOUND_H

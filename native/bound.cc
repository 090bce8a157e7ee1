// bound.cc: the hot pair, sendmsg and recvmsg, over buffers bound once.
//
// recvmsg(fd, bytes, offset, length, fdsOut) and sendmsg(fd, bytes, offset,
// length, fds, nfds) look up each typed array at every call: a Node-API call
// that asks V8 for its type, its buffer and its length, twice per message.
// A connection reads into one buffer and sends from one encoder for its whole
// life, so it binds them once (bindReceive, bindSend) and each message then
// passes numbers only (recvmsgBound, sendmsgBound). A bound typed array is
// kept alive by a reference until another one is bound in its place; the
// results and errors are those of recvmsg and sendmsg. Each bind returns a
// new number, which every call names: a call whose buffers were bound in
// the meantime by someone else (a second copy of the JavaScript module in the
// same process shares this addon) returns -3 and does nothing, so its caller
// binds again, never reading into or sending from another's buffer.
//
// recvmsgMany reads ahead: several recvmsg in one call, end to end into the
// bound bytes, until the kernel says EAGAIN or a bound is reached (reads,
// descriptors, room), and reports each read's length and descriptor count
// in a third bound array, so the caller decodes each read as if it had
// made it alone. Man pages: sendmsg(2), recvmsg(2), cmsg(3).
#include "bound.h"

#include <errno.h>
#include <stdint.h>

#include "fdpass.h"
#include "glue.h"

namespace bound {
namespace {

constexpr int kAgain = -1;        // EAGAIN / EWOULDBLOCK: retry when ready
constexpr int kTooManyRefs = -2;  // ETOOMANYREFS: retry once the peer reads
constexpr int kStale = -3;        // the buffers were bound again since: bind, retry

// recvmsgMany makes another read only with at least this much room left, so
// that a message of up to one piece (4096 bytes) is never cut by the room.
constexpr size_t kMinRoom = 4096;

// A typed array bound once: its memory, and the reference that keeps it.
struct Slot {
  napi_ref ref = nullptr;
  void* data = nullptr;
  size_t length = 0;  // in elements
};

// What one environment (the main thread, or a worker) has bound.
struct Bound {
  Slot recv_bytes, recv_fds, recv_reads, send_bytes, send_fds;
  double recv_binding = 0, send_binding = 0;  // the number of the last bind
  double bindings = 0;                        // binds so far
};

using glue::RawNumber;
using glue::RawUsage;

// Replace puts fresh in slot, dropping the reference the slot held.
void Replace(napi_env env, Slot* slot, const Slot& fresh) {
  if (slot->ref != nullptr) napi_delete_reference(env, slot->ref);
  *slot = fresh;
}

// Bind puts the typed array v (of the given type, at least min elements) in
// slot, dropping what the slot held. False when v does not fit.
bool Bind(napi_env env, napi_value v, napi_typedarray_type want, size_t min,
          Slot* slot) {
  napi_typedarray_type type;
  size_t length;
  void* data;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, nullptr,
                               nullptr) != napi_ok ||
      type != want || length < min) {
    return false;
  }
  napi_ref ref;
  if (napi_create_reference(env, v, 1, &ref) != napi_ok) return false;
  Replace(env, slot, Slot{ref, data, length});
  return true;
}

// bindReceive(bytes: Uint8Array, fdsOut: Int32Array(>= 254)
//             [, reads: Int32Array(>= 3)]) -> binding
napi_value BindReceive(napi_env env, napi_callback_info cbinfo) {
  constexpr const char* usage =
      "bindReceive(bytes: Uint8Array, fdsOut: Int32Array of at least 254 "
      "entries[, reads: Int32Array of at least 3 entries])";
  size_t argc = 3;
  napi_value argv[3];
  void* data;
  if (napi_get_cb_info(env, cbinfo, &argc, argv, nullptr, &data) !=
          napi_ok ||
      argc < 2) {
    return RawUsage(env, usage);
  }
  Bound* b = static_cast<Bound*>(data);
  Slot bytes, fds, reads;
  napi_valuetype third = napi_undefined;
  if (argc >= 3) napi_typeof(env, argv[2], &third);
  if (!Bind(env, argv[0], napi_uint8_array, 0, &bytes)) return RawUsage(env, usage);
  if (!Bind(env, argv[1], napi_int32_array, fdpass::kMaxFds + 1, &fds)) {
    napi_delete_reference(env, bytes.ref);
    return RawUsage(env, usage);
  }
  if (third != napi_undefined &&
      !Bind(env, argv[2], napi_int32_array, 3, &reads)) {
    napi_delete_reference(env, bytes.ref);
    napi_delete_reference(env, fds.ref);
    return RawUsage(env, usage);
  }
  Replace(env, &b->recv_bytes, bytes);
  Replace(env, &b->recv_fds, fds);
  Replace(env, &b->recv_reads, reads);
  b->recv_binding = ++b->bindings;
  return RawNumber(env, b->recv_binding);
}

// bindSend(bytes: Uint8Array, fds: Int32Array) -> binding
napi_value BindSend(napi_env env, napi_callback_info cbinfo) {
  constexpr const char* usage = "bindSend(bytes: Uint8Array, fds: Int32Array)";
  size_t argc = 2;
  napi_value argv[2];
  void* data;
  if (napi_get_cb_info(env, cbinfo, &argc, argv, nullptr, &data) !=
          napi_ok ||
      argc < 2) {
    return RawUsage(env, usage);
  }
  Bound* b = static_cast<Bound*>(data);
  Slot bytes, fds;
  if (!Bind(env, argv[0], napi_uint8_array, 0, &bytes)) return RawUsage(env, usage);
  if (!Bind(env, argv[1], napi_int32_array, 0, &fds)) {
    napi_delete_reference(env, bytes.ref);
    return RawUsage(env, usage);
  }
  Replace(env, &b->send_bytes, bytes);
  Replace(env, &b->send_fds, fds);
  b->send_binding = ++b->bindings;
  return RawNumber(env, b->send_binding);
}

// ArgCount reads a whole number in [0, max] (a byte count, an offset).
bool ArgCount(napi_env env, napi_value v, size_t max, size_t* out) {
  size_t n;
  if (!glue::ArgSize(env, v, &n) || n > max) return false;
  *out = n;
  return true;
}

// BoundCall reads the argc arguments of a call on bound buffers (the
// receiving ones, or with send the sending ones) and checks its binding,
// argv[0]. It returns the Bound to go on with, or nullptr with *early set to
// what the call returns instead: a usage error (too few arguments, a binding
// that is no number, nothing bound yet), or kStale (a binding that is not the
// last: bind again, retry).
Bound* BoundCall(napi_env env, napi_callback_info cbinfo, size_t argc,
                 napi_value* argv, const char* usage, bool send,
                 napi_value* early) {
  size_t got = argc;
  void* data;
  if (napi_get_cb_info(env, cbinfo, &got, argv, nullptr, &data) != napi_ok ||
      got < argc) {
    *early = RawUsage(env, usage);
    return nullptr;
  }
  Bound* b = static_cast<Bound*>(data);
  double binding;
  if (napi_get_value_double(env, argv[0], &binding) != napi_ok ||
      (send ? b->send_bytes : b->recv_bytes).ref == nullptr) {
    *early = RawUsage(env, usage);
    return nullptr;
  }
  if (binding != (send ? b->send_binding : b->recv_binding)) {
    *early = RawNumber(env, kStale);
    return nullptr;
  }
  return b;
}

// recvmsgBound(binding, fd, length) -> as recvmsg(fd, bytes, 0, length,
// fdsOut) with the bound buffers, or -3 when binding is not the last.
napi_value RecvMsgBound(napi_env env, napi_callback_info cbinfo) {
  constexpr const char* usage =
      "recvmsgBound(binding, fd, length <= bound bytes), after bindReceive()";
  napi_value argv[3], early;
  Bound* b = BoundCall(env, cbinfo, 3, argv, usage, false, &early);
  if (b == nullptr) return early;
  int fd;
  size_t len;
  if (!glue::ArgFd(env, argv[1], &fd) ||
      !ArgCount(env, argv[2], b->recv_bytes.length, &len)) {
    return RawUsage(env, usage);
  }
  int32_t* out = static_cast<int32_t*>(b->recv_fds.data);
  int nfds = 0;
  long n = fdpass::RecvMsg(fd, static_cast<char*>(b->recv_bytes.data), len,
                           out + 1, &nfds);
  out[0] = nfds;
  return RecvResult(env, n);
}

// recvmsgMany(binding, fd, length, maxReads, maxFds) -> how many reads it
// made (at least 1), -1 when the first found nothing (EAGAIN), -3 when
// binding is not the last. Read i took reads[1 + 2i] bytes, laid end to end
// from bytes[0] (at most length in all), and reads[2 + 2i] descriptors, laid
// end to end from fdsOut[1] (fdsOut[0] is their total). It reads again while
// fewer than maxReads were made, fewer than maxFds descriptors came, at
// least kMinRoom bytes and room for kMaxFds descriptors are left, and the
// last read brought bytes (a read of 0 is the end of the stream, reported
// as one). reads[0] says why it stopped: 1 the kernel said EAGAIN, 0 a
// bound or the end of the stream, negative the failure of the read after
// the last reported: the caller handles the reads it got, then raises it
// with recvmsgFailure(status). The first read's failure throws as recvmsg
// does. On MSG_CTRUNC the descriptors of that message are closed here.
napi_value RecvMsgMany(napi_env env, napi_callback_info cbinfo) {
  constexpr const char* usage =
      "recvmsgMany(binding, fd, length <= bound bytes, maxReads >= 1, "
      "maxFds >= 1), after bindReceive() with a reads array";
  napi_value argv[5], early;
  Bound* b = BoundCall(env, cbinfo, 5, argv, usage, false, &early);
  if (b == nullptr) return early;
  if (b->recv_reads.ref == nullptr) return RawUsage(env, usage);
  int fd;
  size_t len, max_reads, max_fds;
  size_t reads_room = (b->recv_reads.length - 1) / 2;
  if (!glue::ArgFd(env, argv[1], &fd) ||
      !ArgCount(env, argv[2], b->recv_bytes.length, &len) ||
      !ArgCount(env, argv[3], reads_room, &max_reads) || max_reads < 1 ||
      !ArgCount(env, argv[4], SIZE_MAX, &max_fds) || max_fds < 1) {
    return RawUsage(env, usage);
  }
  char* bytes = static_cast<char*>(b->recv_bytes.data);
  int32_t* out = static_cast<int32_t*>(b->recv_fds.data);
  const size_t fds_room = b->recv_fds.length - 1;
  int32_t* reads = static_cast<int32_t*>(b->recv_reads.data);
  size_t used = 0, nfds = 0, made = 0;
  int32_t status = 0;
  for (;;) {
    int got = 0;
    long n = fdpass::RecvMsg(fd, bytes + used, len - used, out + 1 + nfds, &got);
    if (n < 0) {
      if (made == 0) {
        out[0] = 0;
        return RecvResult(env, n);  // -1 for EAGAIN, or it throws
      }
      status = (n == -EAGAIN || n == -EWOULDBLOCK) ? 1 : static_cast<int32_t>(n);
      break;
    }
    reads[1 + 2 * made] = static_cast<int32_t>(n);
    reads[2 + 2 * made] = got;
    made++;
    used += static_cast<size_t>(n);
    nfds += static_cast<size_t>(got);
    if (n == 0 || made == max_reads || nfds >= max_fds ||
        len - used < kMinRoom ||
        fds_room - nfds < static_cast<size_t>(fdpass::kMaxFds)) {
      break;
    }
  }
  out[0] = static_cast<int32_t>(nfds);
  reads[0] = status;
  return RawNumber(env, static_cast<double>(made));
}

// recvmsgFailure(status) throws what recvmsg would have thrown for the
// negative status recvmsgMany left in reads[0].
napi_value RecvMsgFailure(napi_env env, napi_callback_info cbinfo) {
  constexpr const char* usage = "recvmsgFailure(status < 0)";
  size_t argc = 1;
  napi_value argv[1];
  double status;
  if (napi_get_cb_info(env, cbinfo, &argc, argv, nullptr, nullptr) !=
          napi_ok ||
      argc < 1 || napi_get_value_double(env, argv[0], &status) != napi_ok ||
      !(status < 0) || status < static_cast<double>(fdpass::kTruncated)) {
    return RawUsage(env, usage);
  }
  return RecvResult(env, static_cast<long>(status));
}

// sendmsgBound(binding, fd, offset, length, fdsOffset, nfds) -> as
// sendmsg(fd, bytes, offset, length, fds.subarray(fdsOffset), nfds) with the
// bound buffers, or -3 when binding is not the last.
napi_value SendMsgBound(napi_env env, napi_callback_info cbinfo) {
  constexpr const char* usage =
      "sendmsgBound(binding, fd, offset, length, fdsOffset, nfds <= 253), "
      "within the buffers of bindSend()";
  napi_value argv[6], early;
  Bound* b = BoundCall(env, cbinfo, 6, argv, usage, true, &early);
  if (b == nullptr) return early;
  int fd;
  size_t offset, len, fds_offset, nfds;
  if (!glue::ArgFd(env, argv[1], &fd) ||
      !ArgCount(env, argv[2], b->send_bytes.length, &offset) ||
      !ArgCount(env, argv[3], b->send_bytes.length - offset, &len) ||
      !ArgCount(env, argv[4], b->send_fds.length, &fds_offset) ||
      !ArgCount(env, argv[5], b->send_fds.length - fds_offset, &nfds) ||
      nfds > static_cast<size_t>(fdpass::kMaxFds)) {
    return RawUsage(env, usage);
  }
  const int32_t* fds = static_cast<const int32_t*>(b->send_fds.data) + fds_offset;
  for (size_t i = 0; i < nfds; i++) {
    if (fds[i] < 0) return RawUsage(env, usage);
  }
  long n = fdpass::SendMsg(fd, static_cast<const char*>(b->send_bytes.data) + offset,
                           len, fds, static_cast<int>(nfds));
  return SendResult(env, n);
}

}  // namespace

napi_value RecvResult(napi_env env, long n) {
  if (n == -EAGAIN || n == -EWOULDBLOCK) return RawNumber(env, kAgain);
  if (n == fdpass::kTruncated) {
    glue::CodedError(
        Napi::Env(env), "ERR_GRACEFUL_FDS_TRUNCATED", "recvmsg",
        "recvmsg: the kernel dropped descriptors of a message (MSG_CTRUNC), "
        "most likely because this process reached its open-file limit "
        "(EMFILE). Every descriptor of the message was closed, and its bytes "
        "were consumed with it, so this stream cannot be resynchronised: "
        "close the connection and do not retry on it. Raise the limit "
        "(ulimit -n, LimitNOFILE=) or hold fewer descriptors before the next "
        "hand-off")
        .ThrowAsJavaScriptException();
    return nullptr;
  }
  if (n < 0) {
    glue::ErrnoError(Napi::Env(env), static_cast<int>(-n), "recvmsg")
        .ThrowAsJavaScriptException();
    return nullptr;
  }
  return RawNumber(env, static_cast<double>(n));
}

napi_value SendResult(napi_env env, long n) {
  if (n == -EAGAIN || n == -EWOULDBLOCK) return RawNumber(env, kAgain);
  if (n == -ETOOMANYREFS) return RawNumber(env, kTooManyRefs);
  if (n < 0) {
    glue::ErrnoError(Napi::Env(env), static_cast<int>(-n), "sendmsg")
        .ThrowAsJavaScriptException();
    return nullptr;
  }
  return RawNumber(env, static_cast<double>(n));
}

void Add(Napi::Env env, Napi::Object exports) {
  // One Bound per environment, freed with it; the references die with it too.
  Bound* b = new Bound();
  env.AddCleanupHook([b]() { delete b; });
  for (const auto& [name, fn] :
       {std::pair<const char*, napi_callback>{"bindReceive", BindReceive},
        {"recvmsgBound", RecvMsgBound},
        {"recvmsgMany", RecvMsgMany},
        {"recvmsgFailure", RecvMsgFailure},
        {"bindSend", BindSend},
        {"sendmsgBound", SendMsgBound}}) {
    napi_value f;
    napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, b, &f);
    exports.Set(name, Napi::Value(env, f));
  }
}

}  // namespace bound

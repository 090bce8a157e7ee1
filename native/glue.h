// glue.h: what every Node-API file of the addon shares: errors shaped like
// Node's own (code = errno name, errno negative as in libuv, syscall, path),
// usage errors, and the one set of argument validators.
//
// The validators take the C Node-API types (napi_env, napi_value), so the
// hot path (sendmsg/recvmsg, plain C Node-API) and the node-addon-api
// wrappers (a Napi::Env or Napi::Value converts to them) check arguments the
// same way. Each returns false when the argument is not what it says.
// Man pages: errno(3) for the names uv_err_name gives.
#ifndef GRACEFUL_GLUE_H
#define GRACEFUL_GLUE_H

#include <napi.h>

#include <stddef.h>

#include <string>

namespace glue {

// ErrnoError builds an error like Node's for errno err (positive).
Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall,
                       const std::string& path = std::string());

// ThrowErrno throws ErrnoError and returns undefined.
Napi::Value ThrowErrno(Napi::Env env, int err, const char* syscall,
                       const std::string& path = std::string());

// ThrowUsage throws a TypeError "Usage: <usage>" and returns undefined.
Napi::Value ThrowUsage(Napi::Env env, const char* usage);

// RawNumber makes a JavaScript number, with the C Node-API (the hot path's).
napi_value RawNumber(napi_env env, double n);

// RawUsage throws a TypeError "Usage: <usage>" with the C Node-API and
// returns nullptr.
napi_value RawUsage(napi_env env, const char* usage);

// CodedError builds an Error with a code of this package (ERR_GRACEFUL_...)
// and the syscall that failed.
Napi::Error CodedError(Napi::Env env, const char* code, const char* syscall,
                       const char* message);

// ArgFd reads a descriptor (or pid): an integer in [0, 2^31).
bool ArgFd(napi_env env, napi_value v, int* out);

// ArgInt reads an int32 number.
bool ArgInt(napi_env env, napi_value v, int* out);

// ArgSize reads a non-negative integral size.
bool ArgSize(napi_env env, napi_value v, size_t* out);

// ArgString reads a string.
bool ArgString(napi_env env, napi_value v, std::string* out);

// ArgByteRange resolves (Uint8Array, offset, length) at argv[0..2] to a byte
// range, checking bounds.
bool ArgByteRange(napi_env env, const napi_value* argv, char** data,
                  size_t* len);

// ArgBytes resolves a whole Uint8Array.
bool ArgBytes(napi_env env, napi_value v, char** data, size_t* len);

// ArgFds reads count (<= 253) descriptors from an Int32Array or a plain
// array, or none from null / undefined.
bool ArgFds(napi_env env, napi_value v, int count, int* out);

}  // namespace glue

#endif  // GRACEFUL_GLUE_H

// glue.cc: errors and argument validators shared by the addon's Node-API
// files (see glue.h). Man pages: errno(3).
#include "glue.h"

#include <uv.h>

#include "fdpass.h"

namespace glue {

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall,
                       const std::string& path) {
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
                       const std::string& path) {
  ErrnoError(env, err, syscall, path).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value ThrowUsage(Napi::Env env, const char* usage) {
  Napi::TypeError::New(env, std::string("Usage: ") + usage)
      .ThrowAsJavaScriptException();
  return env.Undefined();
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

Napi::Error CodedError(Napi::Env env, const char* code, const char* syscall,
                       const char* message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  error.Set("syscall", Napi::String::New(env, syscall));
  return error;
}

bool ArgFd(napi_env env, napi_value v, int* out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return false;
  if (!(d >= 0 && d <= 2147483647.0) || d != static_cast<int>(d)) return false;
  *out = static_cast<int>(d);
  return true;
}

bool ArgInt(napi_env env, napi_value v, int* out) {
  int32_t n;
  if (napi_get_value_int32(env, v, &n) != napi_ok) return false;
  *out = n;
  return true;
}

bool ArgSize(napi_env env, napi_value v, size_t* out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return false;
  if (!(d >= 0 && d <= 9007199254740991.0) ||
      d != static_cast<double>(static_cast<size_t>(d))) {
    return false;
  }
  *out = static_cast<size_t>(d);
  return true;
}

bool ArgString(napi_env env, napi_value v, std::string* out) {
  size_t length;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &length) != napi_ok) {
    return false;
  }
  out->resize(length + 1);
  if (napi_get_value_string_utf8(env, v, &(*out)[0], length + 1, &length) !=
      napi_ok) {
    return false;
  }
  out->resize(length);
  return true;
}

bool ArgBytes(napi_env env, napi_value v, char** data, size_t* len) {
  napi_typedarray_type type;
  size_t length;
  void* base;
  if (napi_get_typedarray_info(env, v, &type, &length, &base, nullptr,
                               nullptr) != napi_ok ||
      type != napi_uint8_array) {
    return false;
  }
  *data = static_cast<char*>(base);
  *len = length;
  return true;
}

bool ArgByteRange(napi_env env, const napi_value* argv, char** data,
                  size_t* len) {
  char* base;
  size_t length;
  if (!ArgBytes(env, argv[0], &base, &length)) return false;
  size_t offset, count;
  if (!ArgSize(env, argv[1], &offset) || !ArgSize(env, argv[2], &count) ||
      offset > length || count > length - offset) {
    return false;
  }
  *data = base + offset;
  *len = count;
  return true;
}

bool ArgFds(napi_env env, napi_value v, int count, int* out) {
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
          !ArgFd(env, item, &out[i])) {
        return false;
      }
    }
    return true;
  }
  napi_valuetype t;
  return count == 0 && napi_typeof(env, v, &t) == napi_ok &&
         (t == napi_null || t == napi_undefined);
}

}  // namespace glue

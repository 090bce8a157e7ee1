{
  "targets": [
    {
      "target_name": "graceful_fdpass",
      "sources": ["native/binding.cc", "native/glue.cc", "native/bound.cc", "native/poller.cc", "native/process_binding.cc", "native/fdpass.cc", "native/process.cc", "native/reuseport.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Werror=return-type"],
      "cflags_cc!": ["-fno-exceptions"]
    }
  ]
}

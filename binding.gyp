# Keep this file JSON (plus whole-line # comments): scripts/native-build.cjs reads the sources list from it too.
{
  "targets": [
    {
      "target_name": "coldstart",
      "sources": [
        "native/src/addon.cc",
        "native/src/cuda_api.cc",
        "native/src/probe.cc",
        "native/src/loader.cc",
        "native/src/load_engine.cc",
        "native/src/load_tp.cc",
        "native/src/pagecache.cc",
        "native/src/limits.cc",
        "native/src/fileio.cc",
        "native/src/checkpoint.cc",
        "native/src/amx.cc",
        "native/src/pageout.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O3", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-ldl", "-lpthread"],
      "conditions": [
        ["OS=='mac'", { "xcode_settings": { "GCC_ENABLE_CPP_EXCEPTIONS": "YES", "CLANG_CXX_LIBRARY": "libc++" } }]
      ]
    },
    {
      "target_name": "coldstart_load",
      "type": "shared_library",
      "product_prefix": "lib",
      "sources": ["native/src/capi.cc", "native/src/load_engine.cc", "native/src/load_tp.cc", "native/src/cuda_api.cc"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O3", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-ldl", "-lpthread"]
    }
  ]
}

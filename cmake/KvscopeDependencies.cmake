# Finds every third-party dependency from Debian packages. Each failure names
# the Debian package to install, so a missing dependency is a one-line fix.
include_guard(GLOBAL)
find_package(PkgConfig QUIET)

function(kvscope_require_header var header package)
  find_path(${var} NAMES ${header})
  if(NOT ${var})
    message(FATAL_ERROR "kvscope: header <${header}> not found; install the Debian package '${package}' (apt-get install ${package})")
  endif()
endfunction()

# Standalone Asio (header only, no CMake config in Debian): libasio-dev.
kvscope_require_header(KVSCOPE_ASIO_INCLUDE_DIR asio.hpp libasio-dev)
add_library(kvscope_asio INTERFACE)
target_include_directories(kvscope_asio SYSTEM INTERFACE ${KVSCOPE_ASIO_INCLUDE_DIR})
# ASIO_HAS_STD_ALIGNED_ALLOC: Asio decides between aligned_alloc/free and
# operator new/delete for its recycled allocations (coroutine frames among
# them) from a libstdc++ macro that is only visible if a standard header came
# before Asio's. Translation units that include Asio first would otherwise
# disagree with the rest about these inline functions, and a frame taken with
# aligned_alloc could be freed with operator delete (ASan reported it). Fixing
# the choice for every unit that uses kvscope keeps them consistent.
target_compile_definitions(kvscope_asio INTERFACE ASIO_STANDALONE ASIO_NO_DEPRECATED
  ASIO_HAS_STD_ALIGNED_ALLOC=1)
# ASIO_HAS_CO_AWAIT: Asio 1.24 turns co_await support on for clang only when
# <experimental/coroutine> exists (libc++); clang with libstdc++ 12 (the fuzz
# preset) has C++20 <coroutine>, which Asio then uses.
target_compile_definitions(kvscope_asio INTERFACE $<$<CXX_COMPILER_ID:Clang>:ASIO_HAS_CO_AWAIT=1>)
find_package(Threads REQUIRED)
target_link_libraries(kvscope_asio INTERFACE Threads::Threads)

# A pkg-config module as the imported target PkgConfig::<prefix>.
macro(kvscope_require_pkg prefix module package)
  if(PkgConfig_FOUND)
    pkg_check_modules(${prefix} QUIET IMPORTED_TARGET ${module})
  endif()
  if(NOT ${prefix}_FOUND)
    message(FATAL_ERROR "kvscope: ${module} not found; install the Debian packages '${package}' and 'pkg-config'")
  endif()
endmacro()

# xxHash: libxxhash-dev ships a pkg-config file.
kvscope_require_pkg(KVSCOPE_XXHASH libxxhash libxxhash-dev)

# moodycamel concurrentqueue (header only): libconcurrentqueue-dev.
kvscope_require_header(KVSCOPE_CONCURRENTQUEUE_INCLUDE_DIR concurrentqueue/concurrentqueue.h libconcurrentqueue-dev)
add_library(kvscope_concurrentqueue INTERFACE)
target_include_directories(kvscope_concurrentqueue SYSTEM INTERFACE ${KVSCOPE_CONCURRENTQUEUE_INCLUDE_DIR})

macro(kvscope_find_config name package)
  find_package(${name} CONFIG QUIET)
  if(NOT ${name}_FOUND)
    message(FATAL_ERROR "kvscope: ${name} not found; install the Debian package '${package}'")
  endif()
endmacro()

# KV cache events (docs/kv-events.md): ZeroMQ, the transport the routers
# subscribe with (libzmq3-dev, C++ binding cppzmq-dev), and msgpack-c for the
# payloads (libmsgpack-cxx-dev, header only; used without Boost).
kvscope_require_pkg(KVSCOPE_ZMQ libzmq libzmq3-dev)
kvscope_require_header(KVSCOPE_CPPZMQ_INCLUDE_DIR zmq_addon.hpp cppzmq-dev)
kvscope_require_header(KVSCOPE_MSGPACK_INCLUDE_DIR msgpack.hpp libmsgpack-cxx-dev)
add_library(kvscope_wire INTERFACE)
target_include_directories(kvscope_wire SYSTEM INTERFACE ${KVSCOPE_CPPZMQ_INCLUDE_DIR}
  ${KVSCOPE_MSGPACK_INCLUDE_DIR})
target_compile_definitions(kvscope_wire INTERFACE MSGPACK_NO_BOOST MSGPACK_DEFAULT_API_VERSION=3)
target_link_libraries(kvscope_wire INTERFACE PkgConfig::KVSCOPE_ZMQ)

kvscope_find_config(fmt libfmt-dev)
# nlohmann/json writes the JSON exports (escaping, number formatting) so we do not.
kvscope_find_config(nlohmann_json nlohmann-json3-dev)
# simdjson parses trace files (DOM parser with runtime SIMD dispatch, validating).
kvscope_find_config(simdjson libsimdjson-dev)
# CLI11 parses the kvscope command line (typed options, checks, help text).
kvscope_find_config(CLI11 libcli11-dev)
# The serving-stack example parses HTTP with Node's http-parser (libhttp-parser-dev).
if(KVSCOPE_BUILD_EXAMPLES)
  kvscope_require_header(KVSCOPE_HTTP_PARSER_INCLUDE_DIR http_parser.h libhttp-parser-dev)
  find_library(KVSCOPE_HTTP_PARSER_LIBRARY NAMES http_parser)
  if(NOT KVSCOPE_HTTP_PARSER_LIBRARY)
    message(FATAL_ERROR "kvscope: libhttp_parser not found; install the Debian package 'libhttp-parser-dev'")
  endif()
  add_library(kvscope_http_parser INTERFACE)
  target_include_directories(kvscope_http_parser SYSTEM INTERFACE ${KVSCOPE_HTTP_PARSER_INCLUDE_DIR})
  target_link_libraries(kvscope_http_parser INTERFACE ${KVSCOPE_HTTP_PARSER_LIBRARY})
endif()
if(KVSCOPE_BUILD_TESTS OR KVSCOPE_BUILD_FUZZERS)
  kvscope_find_config(GTest "libgtest-dev and libgmock-dev")
endif()
if(KVSCOPE_BUILD_BENCH)
  kvscope_find_config(benchmark libbenchmark-dev)
endif()

// The parts of gRPC core's C API that Muster's bridge uses.
// libgrpc and libgpr are linked by name: pkg-config's flag list for grpc
// overflows the linker's argument list.

// System headers first, with the default feature macros: gRPC's
// port_platform.h defines _GNU_SOURCE-style macros that would otherwise give
// this module a different fd_set than Dispatch's, and sanitizer builds reject that.
#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/grpc_posix.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/string_util.h>
#include <grpc/support/time.h>

// The parts of gRPC core's C API that Muster's bridge uses.
// libgrpc and libgpr are linked by name: pkg-config's flag list for grpc
// overflows the linker's argument list.
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/string_util.h>
#include <grpc/support/time.h>

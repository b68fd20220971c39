#ifndef MUSTER_GRPC_SHIM_H
#define MUSTER_GRPC_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <grpc/slice.h>

// Only what Swift cannot call directly lives here; everything else in gRPC
// core is called from Swift through the CGRPCCore module map.

#ifdef __cplusplus
extern "C" {
#endif

// GRPC_SLICE_START_PTR is a macro that picks a branch of a union.
const uint8_t *muster_slice_start(const grpc_slice *slice);

// GRPC_SLICE_LENGTH is a macro that picks a branch of a union.
size_t muster_slice_length(const grpc_slice *slice);

// SO_PEERCRED's struct ucred needs _GNU_SOURCE, which the Swift side does not set:
// the pid, uid and gid of the process at the other end of a connected Unix socket.
// Returns 0, or -1 with errno set.
int muster_peer_credentials(int fd, int32_t *pid, uint32_t *uid, uint32_t *gid);

// absl (C++, no C API) as Debian builds it, without NDEBUG, checks every mutex
// lock of gRPC core against a process-wide lock-order graph (deadlock
// detection), whose lookups slow down as mutexes multiply (every connection
// has several): this turns the check off, as absl's release builds have it.
void muster_absl_ignore_lock_cycles(void);

#ifdef __cplusplus
}
#endif

#endif

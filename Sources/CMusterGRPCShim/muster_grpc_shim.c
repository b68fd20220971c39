#define _GNU_SOURCE
#include <sys/socket.h>

#include "muster_grpc_shim.h"

const uint8_t *muster_slice_start(const grpc_slice *slice) {
    return GRPC_SLICE_START_PTR(*slice);
}

size_t muster_slice_length(const grpc_slice *slice) {
    return GRPC_SLICE_LENGTH(*slice);
}

int muster_peer_credentials(int fd, int32_t *pid, uint32_t *uid, uint32_t *gid) {
    struct ucred credentials;
    socklen_t length = sizeof(credentials);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) {
        return -1;
    }
    *pid = credentials.pid;
    *uid = credentials.uid;
    *gid = credentials.gid;
    return 0;
}

#include "muster_grpc_shim.h"

const uint8_t *muster_slice_start(const grpc_slice *slice) {
    return GRPC_SLICE_START_PTR(*slice);
}

size_t muster_slice_length(const grpc_slice *slice) {
    return GRPC_SLICE_LENGTH(*slice);
}

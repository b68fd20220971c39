// The one C++ helper: absl's mutex setting has no C entry point.
#include <absl/synchronization/mutex.h>

#include "muster_grpc_shim.h"

void muster_absl_ignore_lock_cycles(void) {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

/* The plain C baseline for the bridge benchmark's Health/Check comparison: gRPC core's C API alone (no C++, no
 * Swift) on the same Debian libgrpc as Muster's bridge, with mTLS that requires and verifies a client certificate.
 * Every unary call is answered with grpc.health.v1.HealthCheckResponse{status: SERVING} and status OK. One
 * completion queue polled by one thread, as Muster's server has on two cores.
 * Usage: health_server PORT SERVER_CERT SERVER_KEY BUNDLE */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

/* A call moves through three stages, each one batch: requested, message received, answered. */
typedef struct {
    int stage;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array metadata;
    grpc_byte_buffer *request;
    grpc_byte_buffer *response;
    int cancelled;
} call_state;

static grpc_server *server;
static grpc_completion_queue *queue;

static char *slurp(const char *path) {
    FILE *file = fopen(path, "rb");
    if (!file) { perror(path); exit(1); }
    fseek(file, 0, SEEK_END);
    long size = ftell(file);
    rewind(file);
    char *text = calloc(1, (size_t)size + 1);
    if (fread(text, 1, (size_t)size, file) != (size_t)size) { perror(path); exit(1); }
    fclose(file);
    return text;
}

static void request_call(void) {
    call_state *state = calloc(1, sizeof *state);
    grpc_call_details_init(&state->details);
    grpc_metadata_array_init(&state->metadata);
    if (grpc_server_request_call(server, &state->call, &state->details, &state->metadata, queue, queue, state)
        != GRPC_CALL_OK) {
        fprintf(stderr, "request_call failed\n");
        exit(1);
    }
}

static void finish(call_state *state) {
    if (state->request) grpc_byte_buffer_destroy(state->request);
    if (state->response) grpc_byte_buffer_destroy(state->response);
    if (state->call) grpc_call_unref(state->call);
    grpc_call_details_destroy(&state->details);
    grpc_metadata_array_destroy(&state->metadata);
    free(state);
}

static void start(call_state *state, grpc_op *ops, size_t count) {
    if (grpc_call_start_batch(state->call, ops, count, state, NULL) != GRPC_CALL_OK) {
        fprintf(stderr, "start_batch failed\n");
        exit(1);
    }
}

static void advance(call_state *state, int success) {
    grpc_op ops[3];
    memset(ops, 0, sizeof ops);
    switch (state->stage) {
    case 0:
        if (!success) { finish(state); return; }
        request_call();
        state->stage = 1;
        ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[1].op = GRPC_OP_RECV_MESSAGE;
        ops[1].data.recv_message.recv_message = &state->request;
        start(state, ops, 2);
        return;
    case 1: {
        state->stage = 2;
        static const char serving[] = {0x08, 0x01}; /* HealthCheckResponse{status: SERVING} */
        grpc_slice body = grpc_slice_from_copied_buffer(serving, sizeof serving);
        state->response = grpc_raw_byte_buffer_create(&body, 1);
        grpc_slice_unref(body);
        static grpc_slice details;
        details = grpc_empty_slice();
        ops[0].op = GRPC_OP_SEND_MESSAGE;
        ops[0].data.send_message.send_message = state->response;
        ops[1].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[1].data.send_status_from_server.status = GRPC_STATUS_OK;
        ops[1].data.send_status_from_server.status_details = &details;
        ops[2].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        ops[2].data.recv_close_on_server.cancelled = &state->cancelled;
        start(state, ops, 3);
        return;
    }
    default:
        finish(state);
    }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: health_server PORT SERVER_CERT SERVER_KEY BUNDLE\n");
        return 2;
    }
    grpc_init();
    grpc_ssl_pem_key_cert_pair pair = {slurp(argv[3]), slurp(argv[2])};
    grpc_server_credentials *credentials = grpc_ssl_server_credentials_create_ex(
        slurp(argv[4]), &pair, 1, GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY, NULL);
    server = grpc_server_create(NULL, NULL);
    queue = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(server, queue, NULL);
    char address[64];
    snprintf(address, sizeof address, "127.0.0.1:%s", argv[1]);
    if (!grpc_server_add_http2_port(server, address, credentials)) {
        fprintf(stderr, "cannot listen on %s\n", address);
        return 1;
    }
    grpc_server_credentials_release(credentials);
    grpc_server_start(server);
    /* Enough calls requested ahead for the benchmark's 16 concurrent callers. */
    for (int i = 0; i < 64; i++) request_call();
    printf("listening on port %s\n", argv[1]);
    fflush(stdout);
    for (;;) {
        grpc_event event = grpc_completion_queue_next(queue, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (event.type == GRPC_OP_COMPLETE) advance(event.tag, event.success);
        if (event.type == GRPC_QUEUE_SHUTDOWN) break;
    }
    return 0;
}

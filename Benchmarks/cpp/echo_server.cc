// The C++ baseline for the bridge benchmark: muster.testing.v1.Echo/Unary on
// gRPC C++ (callback API) over the same Debian libgrpc as Muster's bridge,
// with mTLS that requires a client certificate.
// Usage: echo_server PORT SERVER_CERT SERVER_KEY BUNDLE
#include <fstream>
#include <iostream>
#include <sstream>

#include <grpcpp/grpcpp.h>

#include "muster/testing/v1/echo.grpc.pb.h"

using muster::testing::v1::EchoRequest;
using muster::testing::v1::EchoResponse;

static std::string slurp(const char* path) {
    std::ifstream in(path);
    std::stringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
}

class EchoService final : public muster::testing::v1::Echo::CallbackService {
    grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* context, const EchoRequest* request,
                                    EchoResponse* response) override {
        response->set_payload(request->payload());
        auto* reactor = context->DefaultReactor();
        reactor->Finish(grpc::Status::OK);
        return reactor;
    }
};

int main(int argc, char** argv) {
    if (argc != 5) {
        std::cerr << "usage: echo_server PORT SERVER_CERT SERVER_KEY BUNDLE\n";
        return 2;
    }
    grpc::SslServerCredentialsOptions options(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    options.pem_root_certs = slurp(argv[4]);
    options.pem_key_cert_pairs.push_back({slurp(argv[3]), slurp(argv[2])});
    EchoService service;
    grpc::ServerBuilder builder;
    builder.AddListeningPort(std::string("127.0.0.1:") + argv[1], grpc::SslServerCredentials(options));
    builder.RegisterService(&service);
    auto server = builder.BuildAndStart();
    if (!server) return 1;
    std::cout << "listening on port " << argv[1] << std::endl;
    server->Wait();
    return 0;
}

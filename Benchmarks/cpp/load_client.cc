// The one load client for every server in the bridge benchmark: closed-loop
// unary calls of a 64-byte payload over mTLS at a fixed concurrency, on one
// channel (or, with `health`, grpc.health.v1.Health/Check); reports QPS and
// latency percentiles as one JSON line.
// Usage: load_client TARGET BUNDLE CLIENT_CERT CLIENT_KEY CONCURRENCY WARMUP_S MEASURE_S [health]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "grpc/health/v1/health.grpc.pb.h"
#include "muster/testing/v1/echo.grpc.pb.h"

using Clock = std::chrono::steady_clock;
using muster::testing::v1::EchoRequest;
using muster::testing::v1::EchoResponse;

static std::string slurp(const char* path) {
    std::ifstream in(path);
    std::stringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
}

struct Shared {
    std::unique_ptr<muster::testing::v1::Echo::Stub> stub;
    std::unique_ptr<grpc::health::v1::Health::Stub> health;
    EchoRequest request;
    grpc::health::v1::HealthCheckRequest check;
    std::atomic<bool> recording{false};
    std::atomic<bool> stopping{false};
    std::atomic<long> errors{0};
    std::mutex mutex;
    std::condition_variable idle;
    int outstanding = 0;
    std::vector<std::vector<double>> latencies;
};

struct Call {
    grpc::ClientContext context;
    EchoResponse response;
    grpc::health::v1::HealthCheckResponse checked;
    Clock::time_point started;
};

static void issue(Shared* shared, int worker) {
    auto* call = new Call();
    call->started = Clock::now();
    auto done = [shared, worker, call](grpc::Status status) {
        double micros = std::chrono::duration<double, std::micro>(Clock::now() - call->started).count();
        bool serving = call->checked.status() == grpc::health::v1::HealthCheckResponse::SERVING;
        if (!status.ok() || (shared->health && !serving)) shared->errors++;
        else if (shared->recording) shared->latencies[worker].push_back(micros);
        delete call;
        if (!shared->stopping) {
            issue(shared, worker);
        } else {
            std::lock_guard<std::mutex> lock(shared->mutex);
            if (--shared->outstanding == 0) shared->idle.notify_all();
        }
    };
    if (shared->health) {
        shared->health->async()->Check(&call->context, &shared->check, &call->checked, done);
    } else {
        shared->stub->async()->Unary(&call->context, &shared->request, &call->response, done);
    }
}

int main(int argc, char** argv) {
    if (argc != 8 && !(argc == 9 && std::string(argv[8]) == "health")) {
        std::cerr << "usage: load_client TARGET BUNDLE CLIENT_CERT CLIENT_KEY CONCURRENCY WARMUP_S MEASURE_S [health]\n";
        return 2;
    }
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = slurp(argv[2]);
    tls.pem_cert_chain = slurp(argv[3]);
    tls.pem_private_key = slurp(argv[4]);
    int concurrency = std::atoi(argv[5]);
    Shared shared;
    auto channel = grpc::CreateChannel(argv[1], grpc::SslCredentials(tls));
    if (argc == 9) {
        shared.health = grpc::health::v1::Health::NewStub(channel);
    } else {
        shared.stub = muster::testing::v1::Echo::NewStub(channel);
    }
    shared.request.set_payload(std::string(64, 'm'));
    shared.latencies.resize(concurrency);
    shared.outstanding = concurrency;
    for (int i = 0; i < concurrency; i++) issue(&shared, i);
    std::this_thread::sleep_for(std::chrono::seconds(std::atoi(argv[6])));
    shared.recording = true;
    auto began = Clock::now();
    std::this_thread::sleep_for(std::chrono::seconds(std::atoi(argv[7])));
    shared.recording = false;
    double seconds = std::chrono::duration<double>(Clock::now() - began).count();
    shared.stopping = true;
    {
        std::unique_lock<std::mutex> lock(shared.mutex);
        shared.idle.wait(lock, [&] { return shared.outstanding == 0; });
    }
    std::vector<double> all;
    for (auto& worker : shared.latencies) all.insert(all.end(), worker.begin(), worker.end());
    std::sort(all.begin(), all.end());
    auto pct = [&](double p) { return all.empty() ? 0.0 : all[std::min(all.size() - 1, (size_t)(p * all.size()))]; };
    std::cout << "{\"calls\":" << all.size() << ",\"qps\":" << all.size() / seconds << ",\"p50_us\":" << pct(0.50)
              << ",\"p99_us\":" << pct(0.99) << ",\"errors\":" << shared.errors.load() << "}" << std::endl;
    return 0;
}

// The end-to-end tests' fixture: a signed fleet repository and one device running a real
// eddyd, with its app `sensor-app` serving its version on a loopback port.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "storage/state_store.hpp"
#include "tests/support/fleet.hpp"

namespace eddy::testing {

class DeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = free_port();
    fleet_ = std::make_unique<Fleet>(tmp_.path());
    device_ = std::make_unique<Device>(tmp_ / "device", fleet_->repo().url(), fleet_->allowed_signers());
    device_->add_app("sensor-app");
  }

  AppBundle bundle(const std::string& version, bool healthy = true) {
    AppBundle b;
    b.version = version;
    b.healthy = healthy;
    b.port = port_;
    return b;
  }

  // What eddyd has accepted and installed, straight from its database.
  std::string db_value(const std::string& key) {
    auto store = storage::StateStore::open(device_->data_dir() / "eddy.db");
    if (!store) return "<" + store.error().message + ">";
    auto v = store->get(key);
    return v && *v ? **v : "";
  }

  std::vector<std::string> version_folders() {
    std::vector<std::string> out;
    auto dir = device_->app_dir("sensor-app") / "versions";
    if (!stdfs::exists(dir)) return out;
    for (const auto& e : stdfs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

  std::string serving() { return http_get(port_, "/version").value_or("(nothing)"); }

  void install_v1() {
    fleet_->publish("sensor-app", bundle("1.0.0"));
    device_->start();
    auto r = device_->eddy({"check"});
    ASSERT_EQ(r.exit_code, 0) << r.output << device_->log();
    ASSERT_EQ(device_->current_version("sensor-app"), "1.0.0") << device_->log();
    ASSERT_TRUE(wait_until([&] { return serving() == "1.0.0\n"; })) << device_->log();
  }

  TempDir tmp_;
  int port_ = 0;
  std::unique_ptr<Fleet> fleet_;
  std::unique_ptr<Device> device_;
};

}  // namespace eddy::testing

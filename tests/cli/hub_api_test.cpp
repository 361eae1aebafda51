// Where `eddy rollout|fleet` finds the hub and the operator token, and how it builds paths.
#include "cli/hub_api.hpp"

#include <gtest/gtest.h>

#include <map>

#include "tests/support/support.hpp"

namespace {

using eddy::Errc;
using eddy::cli::Environment;
using eddy::cli::HubFlags;
using eddy::cli::resolve_hub_settings;
using eddy::testing::TempDir;
using eddy::testing::write_file;

Environment env_of(std::map<std::string, std::string> values) {
  return [values](const char* name) -> std::optional<std::string> {
    auto it = values.find(name);
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
}

HubFlags flags(std::string url, std::string token_file = "", std::string ca_file = "", std::string timeout = "") {
  return HubFlags{std::move(url), std::move(token_file), std::move(ca_file), std::move(timeout)};
}

class HubSettingsTest : public ::testing::Test {
 protected:
  TempDir dir_;
  std::filesystem::path no_config() const { return dir_ / "absent.yaml"; }
};

TEST_F(HubSettingsTest, FlagsComeFirst) {
  write_file(dir_ / "token", "  s3cret\n");
  write_file(dir_ / "ca.pem", "-----BEGIN CERTIFICATE-----\n");
  auto settings = resolve_hub_settings(
      flags("https://hub.example:8443/", (dir_ / "token").string(), (dir_ / "ca.pem").string(), "3s"),
      env_of({{"EDDY_HUB", "http://127.0.0.1:1"}, {"EDDY_TOKEN", "other"}}), no_config());
  ASSERT_TRUE(settings) << settings.error().message;
  EXPECT_EQ(settings->url, "https://hub.example:8443");  // the trailing '/' goes
  EXPECT_EQ(settings->token, "s3cret");
  EXPECT_EQ(settings->ca_file, dir_ / "ca.pem");
  EXPECT_EQ(settings->timeout, std::chrono::seconds(3));
  EXPECT_NE(settings->token_source.find("--token-file"), std::string::npos);
}

TEST_F(HubSettingsTest, EnvironmentThenConfigFile) {
  write_file(dir_ / "env-token", "from-file\n");
  auto settings = resolve_hub_settings({},
                                       env_of({{"EDDY_HUB", "http://127.0.0.1:9"},
                                               {"EDDY_TOKEN_FILE", (dir_ / "env-token").string()},
                                               {"EDDY_TOKEN", "inline"}}),
                                       no_config());
  ASSERT_TRUE(settings) << settings.error().message;
  EXPECT_EQ(settings->url, "http://127.0.0.1:9");
  EXPECT_EQ(settings->token, "from-file");  // $EDDY_TOKEN_FILE before $EDDY_TOKEN
  EXPECT_TRUE(settings->ca_file.empty());

  settings =
      resolve_hub_settings({}, env_of({{"EDDY_HUB", "http://127.0.0.1:9"}, {"EDDY_TOKEN", "inline"}}), no_config());
  ASSERT_TRUE(settings) << settings.error().message;
  EXPECT_EQ(settings->token, "inline");
  EXPECT_EQ(settings->token_source, "$EDDY_TOKEN");

  // cli.yaml: relative paths from its folder, ~/ from $HOME.
  std::filesystem::create_directories(dir_ / "home" / "conf");
  write_file(dir_ / "home" / "conf" / "tok", "yaml-token");
  write_file(dir_ / "home" / "ca.pem", "pem");
  write_file(dir_ / "home" / "conf" / "cli.yaml",
             "hub:\n  url: https://hub.example\n  token_file: tok\n  ca_file: ~/ca.pem\n");
  settings =
      resolve_hub_settings({}, env_of({{"HOME", (dir_ / "home").string()}}), dir_ / "home" / "conf" / "cli.yaml");
  ASSERT_TRUE(settings) << settings.error().message;
  EXPECT_EQ(settings->url, "https://hub.example");
  EXPECT_EQ(settings->token, "yaml-token");
  EXPECT_EQ(settings->ca_file, dir_ / "home" / "ca.pem");
}

TEST_F(HubSettingsTest, DefaultConfigPathFollowsXdg) {
  EXPECT_EQ(eddy::cli::default_cli_config(env_of({{"XDG_CONFIG_HOME", "/x"}, {"HOME", "/h"}})), "/x/eddy/cli.yaml");
  EXPECT_EQ(eddy::cli::default_cli_config(env_of({{"HOME", "/h"}})), "/h/.config/eddy/cli.yaml");
  EXPECT_TRUE(eddy::cli::default_cli_config(env_of({})).empty());
}

TEST_F(HubSettingsTest, MissingHubOrTokenSaysWhatToGive) {
  auto settings = resolve_hub_settings({}, env_of({{"EDDY_TOKEN", "t"}}), no_config());
  ASSERT_FALSE(settings);
  EXPECT_EQ(settings.error().code, Errc::invalid_argument);
  EXPECT_NE(settings.error().message.find("--hub"), std::string::npos) << settings.error().message;
  EXPECT_NE(settings.error().message.find("$EDDY_HUB"), std::string::npos) << settings.error().message;

  settings = resolve_hub_settings(flags("http://127.0.0.1:1"), env_of({}), no_config());
  ASSERT_FALSE(settings);
  EXPECT_EQ(settings.error().code, Errc::invalid_argument);
  EXPECT_NE(settings.error().message.find("--token-file"), std::string::npos) << settings.error().message;
}

TEST_F(HubSettingsTest, BadInputsAreNamed) {
  auto env = env_of({{"EDDY_TOKEN", "t"}});
  struct Case {
    HubFlags flags;
    Errc code;
    const char* needle;
  };
  write_file(dir_ / "empty", "\n");
  write_file(dir_ / "line", "alice s3cret\n");
  for (const auto& c : std::initializer_list<Case>{
           {flags("ftp://hub"), Errc::invalid_argument, "ftp://hub"},
           {flags("http://hub/?x=1"), Errc::invalid_argument, "query"},
           {flags("http://hub", (dir_ / "nope").string()), Errc::not_found, "nope"},
           {flags("http://hub", (dir_ / "empty").string()), Errc::invalid_argument, "is empty"},
           {flags("http://hub", (dir_ / "line").string()), Errc::invalid_argument, "more than one word"},
           {flags("http://hub", "", (dir_ / "no-ca.pem").string()), Errc::not_found, "no-ca.pem"},
           {flags("http://hub", "", "", "10"), Errc::invalid_argument, "--timeout"},
           {flags("http://hub", "", "", "0s"), Errc::invalid_argument, "--timeout"}}) {
    auto settings = resolve_hub_settings(c.flags, env, no_config());
    ASSERT_FALSE(settings) << c.needle;
    EXPECT_EQ(settings.error().code, c.code) << settings.error().message;
    EXPECT_NE(settings.error().message.find(c.needle), std::string::npos) << settings.error().message;
  }
}

TEST_F(HubSettingsTest, StrictConfigFile) {
  auto env = env_of({{"EDDY_TOKEN", "t"}});
  for (const auto& [yaml, needle] : std::initializer_list<std::pair<const char*, const char*>>{
           {"hub: {url: http://h, tokn_file: x}\n", "cli.yaml:1: unknown key `tokn_file`"},
           {"hub: {url: http://h}\nsocket: /x\n", "cli.yaml:2: unknown key `socket`"},
           {"hub: [1]\n", "must be a mapping"},
           {"hub: {url: [a]}\n", "hub.url"},
           {"hub: {url: 'x'\n", "not valid YAML"}}) {
    write_file(dir_ / "cli.yaml", yaml);
    auto settings = resolve_hub_settings({}, env, dir_ / "cli.yaml");
    ASSERT_FALSE(settings) << yaml;
    EXPECT_EQ(settings.error().code, Errc::invalid_argument) << settings.error().message;
    EXPECT_NE(settings.error().message.find(needle), std::string::npos) << settings.error().message;
  }
  write_file(dir_ / "cli.yaml", "");  // an empty file is no settings, not an error
  auto settings = resolve_hub_settings(flags("http://h"), env, dir_ / "cli.yaml");
  EXPECT_TRUE(settings) << settings.error().message;
}

TEST(HubPaths, EncodeNamesAndSelectors) {
  EXPECT_EQ(eddy::cli::encode_path_segment("sensor-app_1.2~x"), "sensor-app_1.2~x");
  EXPECT_EQ(eddy::cli::encode_path_segment("a/b c?"), "a%2Fb%20c%3F");
  EXPECT_EQ(eddy::cli::encode_query_value("site=berlin,hw=pi 4&x"), "site=berlin,hw=pi%204%26x");
  EXPECT_TRUE(eddy::cli::check_selector(""));
  EXPECT_TRUE(eddy::cli::check_selector("site=berlin,hw=pi4"));
  EXPECT_TRUE(eddy::cli::check_selector("site="));  // an empty value is a value
  for (const char* bad : {"site", "=x", "a=b,", "a=b,,c=d", "a=b=c"}) {
    auto ok = eddy::cli::check_selector(bad);
    ASSERT_FALSE(ok) << bad;
    EXPECT_EQ(ok.error().code, Errc::invalid_argument);
    EXPECT_NE(ok.error().message.find(bad), std::string::npos) << ok.error().message;
  }
}

}  // namespace

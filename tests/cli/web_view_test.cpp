// The hub's web view (fleet/web/index.html, embedded into eddy-hub and served at /) loaded from
// a real eddy-hub by headless Chromium from Debian: the DOM it renders is checked against the
// hub's own rollout status, and screenshots go to the test output folder (printed).
#include <fstream>

#include "tests/cli/hub_fixture.hpp"

namespace {

using eddy::testing::contains;
using eddy::testing::read_file;
using eddy::testing::wait_until;
using nlohmann::json;
namespace stdfs = std::filesystem;

// Chromium as Debian installs it (scripts/install-deps), or empty.
stdfs::path find_chromium() {
  for (const char* name : {"chromium", "chromium-browser"}) {
    auto found = eddy::testing::run({"sh", "-c", "command -v \"$0\"", name});
    if (found.exit_code == 0) {
      auto path = found.output.substr(0, found.output.find('\n'));
      if (!path.empty()) return path;
    }
  }
  return {};
}

class WebViewTest : public eddy::testing::HubCliFixture {
 protected:
  void SetUp() override {
    chromium_ = find_chromium();
    if (chromium_.empty()) {
      // Loud, and a skip rather than a pass: the web view was not looked at.
      std::cerr << "\n*** CHROMIUM IS NOT INSTALLED: THE WEB VIEW WAS NOT TESTED ***\n"
                   "*** install it with scripts/install-deps (apt-get install -y chromium)  ***\n\n";
      GTEST_SKIP() << "chromium is not installed: the web view was NOT tested";
    }
    output_ = stdfs::path(EDDY_TEST_OUTPUT_DIR) / "web_view";
    stdfs::create_directories(output_);
  }

  struct Page {
    std::string dom;
    std::string log;
  };

  // Load `url` in headless Chromium, let its scripts run for `budget` of virtual time (which
  // does not pass while requests are in flight), and return the DOM. With `screenshot`, a PNG
  // of the page goes to the output folder under that name.
  Page browse(const std::string& url, const std::string& screenshot = {},
              std::chrono::milliseconds budget = std::chrono::milliseconds(5000)) {
    const auto profile = dir_ / ("chromium-profile-" + std::to_string(++runs_));
    std::vector<std::string> common{chromium_.string(),
                                    "--headless",
                                    "--no-sandbox",  // tests run as root, where the sandbox cannot start
                                    "--disable-gpu",
                                    "--no-first-run",
                                    "--no-default-browser-check",
                                    "--disable-extensions",
                                    "--disable-dev-shm-usage",
                                    "--hide-scrollbars",
                                    "--user-data-dir=" + profile.string(),
                                    "--window-size=1200,1500",
                                    "--virtual-time-budget=" + std::to_string(budget.count())};
    Page page;
    auto dom_args = common;
    dom_args.insert(dom_args.end(), {"--dump-dom", url});
    // stdout is the DOM; Chromium's own chatter (D-Bus, GPU) goes to a log of its own.
    dom_args.insert(dom_args.begin(), {"sh", "-c", "exec \"$0\" \"$@\" >\"$DOM_FILE\" 2>>\"$LOG_FILE\""});
    const auto dom_file = dir_ / ("dom-" + std::to_string(runs_) + ".html");
    const auto log_file = dir_ / ("chromium-" + std::to_string(runs_) + ".log");
    auto result = eddy::testing::run(dom_args, {}, {{"DOM_FILE", dom_file.string()}, {"LOG_FILE", log_file.string()}});
    page.log = stdfs::exists(log_file) ? read_file(log_file) : std::string();
    EXPECT_EQ(result.exit_code, 0) << "chromium failed to load " << url << ":\n" << result.output << page.log;
    page.dom = stdfs::exists(dom_file) ? read_file(dom_file) : std::string();
    EXPECT_TRUE(contains(page.dom, "</html>")) << "chromium gave no DOM for " << url << "; its log:\n" << page.log;
    if (!screenshot.empty()) {
      const auto png = output_ / screenshot;
      stdfs::remove(png);
      auto shot_args = common;
      shot_args.insert(shot_args.end(), {"--screenshot=" + png.string(), url});
      auto shot = eddy::testing::run(shot_args);
      EXPECT_EQ(shot.exit_code, 0) << shot.output;
      EXPECT_TRUE(is_png(png)) << "no screenshot at " << png << ":\n" << shot.output;
      std::cout << "web view screenshot: " << png.string() << "\n";
      write_file(output_ / (stdfs::path(screenshot).stem().string() + ".html"), page.dom);
    }
    return page;
  }

  static bool is_png(const stdfs::path& file) {
    std::ifstream in(file, std::ios::binary);
    char magic[8] = {};
    in.read(magic, sizeof magic);
    return in && std::string(magic, 8) == "\x89PNG\r\n\x1a\n" && stdfs::file_size(file) > 10000;
  }
  static void write_file(const stdfs::path& file, const std::string& text) { eddy::testing::write_file(file, text); }

  // The DOM's <section> of rollout `name` (empty when missing).
  static std::string section_of(const std::string& dom, const std::string& name) {
    auto start = dom.find("data-rollout=\"" + name + "\"");
    if (start == std::string::npos) return {};
    auto end = dom.find("</section>", start);
    return dom.substr(start, end == std::string::npos ? std::string::npos : end - start);
  }

  stdfs::path chromium_;
  stdfs::path output_;
  int runs_ = 0;
};

TEST_F(WebViewTest, DrawsEachRolloutWithItsStepDevicesFailuresVerdictAndEvents) {
  devices_ = {"pi-1", "pi-2", "pi-3", "pi-4", "pi-5", "pi-6", "pi-7", "pi-8"};
  // app: two devices at least in its first step (minDevices); one failure of two stays within
  // 60%. gw: one failure is over 0%, and the hub rolls it back.
  add_rollout("1.0.0", "  steps: [50, 100]\n  bake: 1h\n  minDevices: 2\n  maxFailureRate: 60%\n  onFailure: pause\n");
  add_rollout("2.0.0", "  steps: [25, 100]\n  bake: 1h\n  minDevices: 1\n  maxFailureRate: 0%\n  onFailure: rollback\n",
              "gw");
  fleet_.repo().commit("app 1.0.0, gw 2.0.0");
  start_hub("app-1.0.0");

  // The devices register; the director admits each first step's share at its next tick.
  std::map<std::string, std::vector<std::pair<std::string, std::int64_t>>> admitted;
  ASSERT_TRUE(wait_until([&] {
    admitted.clear();
    for (const auto& id : devices_) {
      for (const char* target : {"app", "gw"}) {
        auto gate = sync(id, {{"site", "berlin"}}, {}, {}, target);
        if (gate.is_object() && gate.value("admitted", false))
          admitted[target].emplace_back(id, gate.value("generation", 1));
      }
    }
    return admitted["app"].size() >= 2 && !admitted["gw"].empty() && rollout().value("selected", 0) == 8 &&
           rollout("gw").value("selected", 0) == 8;
  })) << rollout().dump()
      << rollout("gw").dump();
  sync(admitted["app"][0].first, {{"site", "berlin"}}, "1.0.0", "committed");
  report_outcome(admitted["app"][1].first, "1.0.0", admitted["app"][1].second, "rolled-back");
  report_outcome(admitted["gw"][0].first, "2.0.0", admitted["gw"][0].second, "rolled-back", "gw");
  json app, gw;
  ASSERT_TRUE(wait_until([&] {
    app = rollout();
    gw = rollout("gw");
    return app["devices"].value("succeeded", 0) == 1 && app["devices"].value("failed", 0) == 1 &&
           gw.value("state", "") == "rolled-back";
  })) << app.dump()
      << gw.dump();
  ASSERT_EQ(app["state"], "progressing") << app.dump();

  auto page = browse(hub_->url() + "/#token=" + operator_token, "rollouts.png");
  auto section = section_of(page.dom, "app");
  ASSERT_FALSE(section.empty()) << "the page shows no rollout `app`; DOM:\n" << page.dom << "\nchromium:\n" << page.log;
  const auto& devices = app["devices"];
  for (const std::string& needle :
       {std::string("data-state=\"progressing\""), std::string("data-step=\"1\""), std::string("data-steps=\"2\""),
        std::string(">app<"), std::string("release app-1.0.0 \u00b7 generation 1"),
        std::string("step 1 of 2 (50%) \u00b7 progressing"),
        std::to_string(app["admitted"].get<int>()) + " of 8 selected devices admitted", std::string(">1 succeeded<"),
        std::string(">1 failed<"), ">" + std::to_string(devices["in_progress"].get<int>()) + " in progress<",
        ">" + std::to_string(devices["no_data"].get<int>()) + " no data<",
        ">" + std::to_string(devices["waiting"].get<int>()) + " waiting<",
        std::string("\u26a0 1 device failed (50% of " + std::to_string(app["admitted"].get<int>()) + " admitted)"),
        std::string("WAIT \u00b7 baked "), std::string("bake time: "),  // the verdict, in its gate's unit
        std::string("EVENTS"), std::string("generation 1 of release app-1.0.0")})
    EXPECT_TRUE(contains(section, needle)) << "missing `" << needle << "` in:\n" << section;

  section = section_of(page.dom, "gw");
  ASSERT_FALSE(section.empty()) << page.dom;
  for (const std::string& needle :
       {std::string("data-state=\"rolled-back\""), std::string(">ROLLED-BACK<"), std::string(">1 failed<"),
        std::string("Rolled back: the admitted devices return to their previous version."),
        std::string("HALT \u00b7 failure rate 100% vs threshold 0%"), std::string(">halt<"), std::string(">rollback<")})
    EXPECT_TRUE(contains(section, needle)) << "missing `" << needle << "` in:\n" << section;
  EXPECT_TRUE(contains(page.dom, "2 rollouts \u00b7 1 halted or rolled back")) << page.dom;
  EXPECT_TRUE(contains(page.dom, "id=\"connection\" class=\"ok\">live<")) << page.dom;
}

TEST_F(WebViewTest, ARefusedTokenAsksForAnother) {
  publish("1.0.0", "  steps: [50, 100]\n  bake: 1h\n");
  start_hub("app-1.0.0");

  auto page = browse(hub_->url() + "/#token=not-a-token-the-hub-knows", "refused-token.png");
  EXPECT_TRUE(contains(page.dom, "The hub refused the token (401")) << page.dom;
  EXPECT_TRUE(contains(page.dom, "<form id=\"login\">")) << "the token form is not shown:\n" << page.dom;
  EXPECT_FALSE(contains(page.dom, "data-rollout=")) << page.dom;

  // A device token may not read rollouts.
  page = browse(hub_->url() + "/#token=" + device_token("pi-1"));
  EXPECT_TRUE(contains(page.dom, "This token may not read rollouts (403")) << page.dom;

  // Without a token the page asks for one.
  page = browse(hub_->url() + "/");
  EXPECT_TRUE(contains(page.dom, "Enter an operator token")) << page.dom;
  EXPECT_TRUE(contains(page.dom, "<form id=\"login\">")) << page.dom;
}

TEST_F(WebViewTest, AnUnreachableHubIsSaidPlainly) {
  publish("1.0.0", "  steps: [50, 100]\n  bake: 1h\n");
  start_hub("app-1.0.0");
  // The page as the hub serves it, opened where no hub answers its requests (a file: its
  // relative API requests fail as they do when the hub is down).
  auto served = hub_->request("GET", "/", "");
  ASSERT_EQ(served.status, 200);
  EXPECT_TRUE(contains(served.body, "sessionStorage")) << "GET / is not the web view";
  // One self-contained page: nothing loaded from elsewhere (no CDN, no other file).
  for (const char* external : {"src=", "href=", "<link", "@import", "url("})
    EXPECT_FALSE(contains(served.body, external)) << "the page refers to something outside it: " << external;
  const auto copy = dir_ / "offline" / "index.html";
  write_file(copy, served.body);
  hub_->stop();

  auto page = browse("file://" + copy.string() + "#token=" + operator_token, "hub-unreachable.png");
  EXPECT_TRUE(contains(page.dom, "Cannot reach the hub at ")) << page.dom;
  EXPECT_TRUE(contains(page.dom, "Retrying every 3 s")) << page.dom;
  EXPECT_TRUE(contains(page.dom, ">hub unreachable<")) << page.dom;
}

}  // namespace

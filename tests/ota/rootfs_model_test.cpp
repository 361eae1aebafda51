// A rootfs release's `deltas:` (issue 3), in the form `eddy release delta` prints.
#include <gtest/gtest.h>

#include <string>

#include "ota/model.hpp"

namespace eddy::ota {
namespace {

const std::string kSha(64, 'a');
const std::string kBase(64, 'b');

std::string rootfs_release(const std::string& payload_extra, const std::string& type = "rootfs",
                           const std::string& target = "rootfs") {
  return "apiVersion: eddy/v1\nkind: Release\nmetadata: {name: os-2}\nspec:\n  target: " + target +
         "\n  version: \"2.0\"\n  payload:\n    type: " + type + "\n    path: payloads/os-2.img.zst\n    sha256: " +
         kSha + "\n    size: 100\n" + payload_extra;
}

TEST(ModelRootfs, DeltasAsEddyReleaseDeltaPrintsThem) {
  auto r = parse_release(rootfs_release("    deltas:\n"
                                        "      - from_sha256: " + kBase + "\n"
                                        "        from_size: 4096\n"
                                        "        image_sha256: " + kSha + "\n"
                                        "        path: \"payloads/os-1-2.delta.zst\"\n"
                                        "        sha256: " + kSha + "\n"
                                        "        size: 40\n"
                                        "      - {from_sha256: " + kSha + ", from_size: 8192, image_sha256: " + kBase + ", url: \"https://cdn.example.com/d.zst\", "
                                        "sha256: " + kBase + ", size: 50}\n"),
                         "releases/os-2.yaml");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->payload.deltas.size(), 2u);
  EXPECT_EQ(r->payload.deltas[0].from_sha256, kBase);
  EXPECT_EQ(r->payload.deltas[0].from_size, 4096u);
  EXPECT_EQ(r->payload.deltas[0].image_sha256, kSha);
  EXPECT_EQ(r->payload.deltas[0].path, "payloads/os-1-2.delta.zst");
  EXPECT_EQ(r->payload.deltas[0].sha256, kSha);
  EXPECT_EQ(r->payload.deltas[0].size, 40u);
  EXPECT_EQ(r->payload.deltas[1].url, "https://cdn.example.com/d.zst");
  EXPECT_EQ(r->payload.deltas[1].from_size, 8192u);
}

TEST(ModelRootfs, BadDeltasAreRefusedWithTheirLine) {
  struct Case {
    std::string extra;
    std::string needle;
  };
  const std::string entry = "{from_sha256: " + kBase + ", from_size: 10, image_sha256: " + kSha + ", path: payloads/d.zst, sha256: " + kSha +
                            ", size: 5}";
  for (const auto& c : std::vector<Case>{
           {"    deltas: {a: 1}\n", "expected a list of deltas"},
           {"    deltas:\n      - {from_sha256: xyz, from_size: 10, image_sha256: " + kSha + ", path: p/d.zst, sha256: " + kSha + ", size: 5}\n",
            "is not a SHA-256"},
           {"    deltas:\n      - {from_sha256: " + kBase + ", image_sha256: " + kSha + ", path: p/d.zst, sha256: " + kSha + ", size: 5}\n",
            "from_size"},
           {"    deltas:\n      - {from_sha256: " + kBase + ", from_size: 10, image_sha256: " + kSha + ", sha256: " + kSha + ", size: 5}\n",
            "missing `path`"},
           {"    deltas:\n      - {from_sha256: " + kBase + ", from_size: 10, path: p/d.zst, sha256: " + kSha +
                ", size: 5}\n",
            "image_sha256"},
           {"    deltas:\n      - {from_sha256: " + kBase + ", from_size: 10, image_sha256: 12ab, path: p/d.zst, "
                "sha256: " + kSha + ", size: 5}\n",
            "of the image the delta rebuilds"},
           {"    deltas:\n      - {from_sha256: " + kBase + ", from_size: 10, image_sha256: " + kSha + ", path: ../d.zst, sha256: " + kSha +
                ", size: 5}\n",
            "not a safe path"},
           {"    deltas:\n      - " + entry + "\n      - " + entry + "\n", "same base image"},
           {"    deltas:\n      - {form_sha256: " + kBase + "}\n", "did you mean"},
       }) {
    auto r = parse_release(rootfs_release(c.extra), "releases/os-2.yaml");
    ASSERT_FALSE(r) << c.extra;
    EXPECT_EQ(r.error().code, Errc::invalid_argument) << r.error().message;
    EXPECT_NE(r.error().message.find(c.needle), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("releases/os-2.yaml:"), std::string::npos) << r.error().message;
  }
  auto app = parse_release(rootfs_release("    deltas: [" + entry + "]\n", "app", "web"), "releases/os-2.yaml");
  ASSERT_FALSE(app);
  EXPECT_NE(app.error().message.find("deltas belong to payloads of type rootfs"), std::string::npos)
      << app.error().message;
}

}  // namespace
}  // namespace eddy::ota

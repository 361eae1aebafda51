#include "platform/line_channel.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace {

using eddy::Errc;
using eddy::LineChannel;
using eddy::UniqueFd;

struct Pair {
  UniqueFd a, b;
  Pair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    a = UniqueFd(fds[0]);
    b = UniqueFd(fds[1]);
  }
};

void send_raw(int fd, const std::string& bytes) {
  ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
}

TEST(LineChannelTest, LinesWhateverTheChunks) {
  Pair p;
  LineChannel reader(std::move(p.a), "peer");
  send_raw(p.b.get(), "first li");
  send_raw(p.b.get(), "ne\nsecond\n\nthi");
  send_raw(p.b.get(), "rd\n");
  p.b.reset();
  for (const char* expected : {"first line", "second", "", "third"}) {
    auto line = reader.read();
    ASSERT_TRUE(line) << line.error().message;
    ASSERT_TRUE(*line);
    EXPECT_EQ(**line, expected);
  }
  auto end = reader.read();
  ASSERT_TRUE(end);
  EXPECT_FALSE(*end) << "end of stream";
}

TEST(LineChannelTest, BothWays) {
  Pair p;
  LineChannel left(std::move(p.a), "left");
  LineChannel right(std::move(p.b), "right");
  ASSERT_TRUE(left.write("{\"ping\":1}"));
  auto line = right.read();
  ASSERT_TRUE(line && *line);
  EXPECT_EQ(**line, "{\"ping\":1}");
  ASSERT_TRUE(right.write("pong"));
  line = left.read();
  ASSERT_TRUE(line && *line);
  EXPECT_EQ(**line, "pong");
}

TEST(LineChannelTest, TooLongLineAndTruncatedLineAreErrors) {
  {
    Pair p;
    LineChannel reader(std::move(p.a), "chatty peer", 16);
    send_raw(p.b.get(), std::string(40, 'x') + "\n");
    auto line = reader.read();
    ASSERT_FALSE(line);
    EXPECT_EQ(line.error().code, Errc::too_large);
    EXPECT_NE(line.error().message.find("chatty peer"), std::string::npos) << line.error().message;
  }
  {
    Pair p;
    LineChannel reader(std::move(p.a), "peer");
    send_raw(p.b.get(), "half a li");
    p.b.reset();
    auto line = reader.read();
    ASSERT_FALSE(line);
    EXPECT_EQ(line.error().code, Errc::network);
  }
}

TEST(LineChannelTest, WritingToAClosedPeerIsAnError) {
  Pair p;
  LineChannel writer(std::move(p.a), "gone peer");
  p.b.reset();
  auto st = writer.write("hello");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, Errc::network);
  EXPECT_NE(st.error().message.find("gone peer"), std::string::npos);
}

}  // namespace

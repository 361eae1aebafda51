#include "ota/git_source.hpp"

#include <git2.h>
#include <git2/sys/stream.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <system_error>
#include <utility>

namespace eddy::ota {
namespace {

namespace stdfs = std::filesystem;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// Deadline for network I/O. libgit2 1.5 has no connect or read timeout, and its progress
// callbacks only run while data arrives, so a server that accepts and then says nothing would
// block a fetch forever. We register our own TCP stream (libgit2's git://, http:// and the
// socket under its TLS stream for https:// all come through GIT_STREAM_STANDARD) whose connect,
// read and write wait with poll() until the deadline of the fetch running on this thread.

thread_local std::optional<Clock::time_point> t_deadline;
thread_local bool t_deadline_hit = false;
thread_local std::string t_deadline_what;  // "reading from host:port": TLS errors would hide it

class DeadlineScope {
 public:
  explicit DeadlineScope(Clock::time_point deadline) {
    t_deadline = deadline;
    t_deadline_hit = false;
    t_deadline_what.clear();
  }
  ~DeadlineScope() { t_deadline.reset(); }
  DeadlineScope(const DeadlineScope&) = delete;
  DeadlineScope& operator=(const DeadlineScope&) = delete;
};

// poll() timeout in ms until this thread's deadline (-1: none).
int poll_budget() {
  if (!t_deadline) return -1;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*t_deadline - Clock::now()).count();
  if (left <= 0) return 0;
  return static_cast<int>(std::min<long long>(left, INT_MAX));
}

// 1: ready (or an error for the next call to report), 0: deadline passed, -1: poll failed.
int wait_fd(int fd, short events) {
  for (;;) {
    pollfd pfd{fd, events, 0};
    int r = ::poll(&pfd, 1, poll_budget());
    if (r > 0) return 1;
    if (r == 0) return 0;
    if (errno != EINTR) return -1;
  }
}

struct DeadlineSocket {
  git_stream parent;  // first member: libgit2 hands us back the git_stream*
  char* host;
  char* port;
  int fd;
};

DeadlineSocket* as_socket(git_stream* stream) { return reinterpret_cast<DeadlineSocket*>(stream); }

void set_net_error(const std::string& message) { git_error_set_str(GIT_ERROR_NET, message.c_str()); }

void set_timeout_error(const DeadlineSocket* s, const char* what) {
  t_deadline_hit = true;
  t_deadline_what = std::string(what) + " " + s->host + ":" + s->port + " did not finish before the deadline";
  set_net_error(t_deadline_what);
}

int socket_connect(git_stream* stream) {
  DeadlineSocket* s = as_socket(stream);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* addresses = nullptr;
  // Name resolution is the one step the deadline cannot bound (getaddrinfo blocks).
  if (int rc = ::getaddrinfo(s->host, s->port, &hints, &addresses); rc != 0) {
    set_net_error(std::string("failed to resolve address for ") + s->host + ": " + gai_strerror(rc));
    return -1;
  }
  std::string last_error = "no address";
  for (addrinfo* a = addresses; a != nullptr; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    int err = 0;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        int ready = wait_fd(fd, POLLOUT);
        if (ready == 0) {
          ::close(fd);
          ::freeaddrinfo(addresses);
          set_timeout_error(s, "connecting to");
          return -1;
        }
        socklen_t len = sizeof err;
        if (ready < 0) err = errno;
        else if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      }
    }
    if (err == 0) {
      s->fd = fd;
      ::freeaddrinfo(addresses);
      return 0;
    }
    last_error = std::strerror(err);
    ::close(fd);
  }
  ::freeaddrinfo(addresses);
  set_net_error(std::string("failed to connect to ") + s->host + ":" + s->port + ": " + last_error);
  return -1;
}

ssize_t socket_read(git_stream* stream, void* data, size_t len) {
  DeadlineSocket* s = as_socket(stream);
  for (;;) {
    int ready = wait_fd(s->fd, POLLIN);
    if (ready == 0) {
      set_timeout_error(s, "reading from");
      return -1;
    }
    ssize_t n = ::recv(s->fd, data, len, 0);
    if (n >= 0) return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
    set_net_error(std::string("could not read from ") + s->host + ":" + s->port + ": " + std::strerror(errno));
    return -1;
  }
}

ssize_t socket_write(git_stream* stream, const char* data, size_t len, int /*flags*/) {
  DeadlineSocket* s = as_socket(stream);
  for (;;) {
    int ready = wait_fd(s->fd, POLLOUT);
    if (ready == 0) {
      set_timeout_error(s, "writing to");
      return -1;
    }
    ssize_t n = ::send(s->fd, data, len, MSG_NOSIGNAL);
    if (n >= 0) return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
    set_net_error(std::string("could not write to ") + s->host + ":" + s->port + ": " + std::strerror(errno));
    return -1;
  }
}

int socket_close(git_stream* stream) {
  DeadlineSocket* s = as_socket(stream);
  if (s->fd >= 0) ::close(s->fd);
  s->fd = -1;
  return 0;
}

void socket_free(git_stream* stream) {
  DeadlineSocket* s = as_socket(stream);
  socket_close(stream);
  std::free(s->host);
  std::free(s->port);
  delete s;
}

int socket_new(git_stream** out, const char* host, const char* port) {
  auto* s = new DeadlineSocket{};
  s->parent.version = GIT_STREAM_VERSION;
  s->parent.encrypted = 0;
  s->parent.proxy_support = 0;
  s->parent.connect = socket_connect;
  s->parent.read = socket_read;
  s->parent.write = socket_write;
  s->parent.close = socket_close;
  s->parent.free = socket_free;
  s->host = ::strdup(host);
  s->port = ::strdup(port);
  s->fd = -1;
  *out = &s->parent;
  return 0;
}

// git_libgit2_init() once per process (never shut down: other GitSources may live on), and
// the deadline-aware TCP stream with it.
Status init_libgit2() {
  static std::once_flag once;
  static int result = 0;
  static std::string message;
  std::call_once(once, [] {
    result = git_libgit2_init();
    if (result < 0) {
      const git_error* e = git_error_last();
      message = e && e->message ? e->message : "unknown error";
      return;
    }
    git_stream_registration registration{};
    registration.version = GIT_STREAM_VERSION;
    registration.init = socket_new;
    registration.wrap = nullptr;
    result = git_stream_register(GIT_STREAM_STANDARD, &registration);
    if (result < 0) message = "cannot register the TCP stream";
  });
  if (result < 0) return make_error(Errc::internal, "libgit2 initialisation failed: " + message);
  return {};
}

// ---------------------------------------------------------------------------------------------
// Small RAII holders for libgit2 objects.

template <typename T, void (*Free)(T*)>
struct GitDeleter {
  void operator()(T* p) const {
    if (p) Free(p);
  }
};
template <typename T, void (*Free)(T*)>
using GitPtr = std::unique_ptr<T, GitDeleter<T, Free>>;

using RepoPtr = GitPtr<git_repository, git_repository_free>;
using RemotePtr = GitPtr<git_remote, git_remote_free>;
using CommitPtr = GitPtr<git_commit, git_commit_free>;
using TreePtr = GitPtr<git_tree, git_tree_free>;
using TreeEntryPtr = GitPtr<git_tree_entry, git_tree_entry_free>;
using BlobPtr = GitPtr<git_blob, git_blob_free>;
using OdbPtr = GitPtr<git_odb, git_odb_free>;
using OdbObjectPtr = GitPtr<git_odb_object, git_odb_object_free>;
using ReferencePtr = GitPtr<git_reference, git_reference_free>;
using ConfigPtr = GitPtr<git_config, git_config_free>;

struct StrArray {
  git_strarray array{};
  ~StrArray() { git_strarray_dispose(&array); }
};

std::string git_message() {
  const git_error* e = git_error_last();
  return e && e->message ? e->message : "unknown libgit2 error";
}

Error git_error(Errc code, const std::string& what) { return Error{code, what + ": " + git_message()}; }

// "https://user:secret@host/x" -> "https://user:***@host/x": URLs go into logs and reports.
std::string redact_url(std::string_view url) {
  auto scheme = url.find("://");
  if (scheme == std::string_view::npos) return std::string(url);
  auto host_start = scheme + 3;
  auto path = url.find('/', host_start);
  auto at = url.rfind('@', path == std::string_view::npos ? url.size() : path);
  if (at == std::string_view::npos || at < host_start) return std::string(url);
  auto colon = url.find(':', host_start);
  if (colon == std::string_view::npos || colon > at) return std::string(url);
  return std::string(url.substr(0, colon + 1)) + "***" + std::string(url.substr(at));
}

std::string fetch_refspec(const std::string& branch) {
  return "+refs/heads/" + branch + ":" + std::string(GitSource::fetched_ref);
}

Status check_url(const std::string& url) {
  static constexpr std::string_view schemes[] = {"file://", "git://", "http://", "https://", "ssh://"};
  bool known = std::any_of(std::begin(schemes), std::end(schemes),
                           [&](std::string_view s) { return url.starts_with(s) && url.size() > s.size(); });
  if (!known || url.find_first_of("\n\r") != std::string::npos)
    return make_error(Errc::invalid_argument,
                      "source url '" + redact_url(url) +
                          "' is not supported: use file://, git://, http://, https:// or ssh://");
  return {};
}

Status check_branch(const std::string& branch) {
  int valid = 0;
  std::string ref = "refs/heads/" + branch;
  if (branch.empty() || git_reference_name_is_valid(&valid, ref.c_str()) < 0 || !valid)
    return make_error(Errc::invalid_argument, "source branch '" + branch + "' is not a valid Git branch name");
  return {};
}

Expected<git_oid> parse_id(std::string_view id) {
  bool hex = id.size() == GIT_OID_HEXSZ &&
             std::all_of(id.begin(), id.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
  git_oid oid;
  if (!hex || git_oid_fromstrn(&oid, id.data(), id.size()) < 0)
    return make_error(Errc::invalid_argument, "'" + std::string(id) + "' is not a commit id (40 hex digits)");
  return oid;
}

std::string to_hex(const git_oid& oid) {
  char buf[GIT_OID_HEXSZ + 1];
  git_oid_tostr(buf, sizeof buf, &oid);
  return buf;
}

Status check_path(std::string_view path, std::string_view what) {
  if (path.empty() || path.front() == '/' || path.back() == '/')
    return make_error(Errc::invalid_argument,
                      std::string(what) + " '" + std::string(path) + "' must be a relative path inside the repository");
  return {};
}

// The entry at `path` of a commit's tree; nullptr when it does not exist.
Expected<TreeEntryPtr> entry_at(git_commit* commit, std::string_view path, std::string_view commit_id) {
  git_tree* raw_tree = nullptr;
  if (git_commit_tree(&raw_tree, commit) < 0)
    return std::unexpected(git_error(Errc::io, "read the tree of commit " + std::string(commit_id)));
  TreePtr tree(raw_tree);
  git_tree_entry* raw_entry = nullptr;
  int rc = git_tree_entry_bypath(&raw_entry, tree.get(), std::string(path).c_str());
  if (rc == GIT_ENOTFOUND) return TreeEntryPtr();
  if (rc < 0)
    return std::unexpected(
        git_error(Errc::io, "look up '" + std::string(path) + "' at commit " + std::string(commit_id)));
  return TreeEntryPtr(raw_entry);
}

bool same_entry(const git_tree_entry* a, const git_tree_entry* b) {
  if (!a || !b) return a == b;
  return git_tree_entry_filemode(a) == git_tree_entry_filemode(b) &&
         git_oid_equal(git_tree_entry_id(a), git_tree_entry_id(b));
}

struct FetchContext {
  Clock::time_point deadline;
  bool timed_out = false;
};

int check_deadline(void* payload) {
  auto* ctx = static_cast<FetchContext*>(payload);
  if (Clock::now() < ctx->deadline) return 0;
  ctx->timed_out = true;
  git_error_set_str(GIT_ERROR_NET, "the fetch did not finish before the deadline");
  return GIT_EUSER;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

GitSource::GitSource(git_repository* repo, std::filesystem::path repo_dir, std::string url, std::string branch)
    : repo_(repo), repo_dir_(std::move(repo_dir)), url_(std::move(url)), branch_(std::move(branch)) {}

GitSource::GitSource(GitSource&& other) noexcept
    : repo_(std::exchange(other.repo_, nullptr)),
      repo_dir_(std::move(other.repo_dir_)),
      url_(std::move(other.url_)),
      branch_(std::move(other.branch_)),
      stats_(other.stats_) {}

GitSource& GitSource::operator=(GitSource&& other) noexcept {
  if (this != &other) {
    if (repo_) git_repository_free(repo_);
    repo_ = std::exchange(other.repo_, nullptr);
    repo_dir_ = std::move(other.repo_dir_);
    url_ = std::move(other.url_);
    branch_ = std::move(other.branch_);
    stats_ = other.stats_;
  }
  return *this;
}

GitSource::~GitSource() {
  if (repo_) git_repository_free(repo_);
}

Expected<GitSource> GitSource::open(const std::filesystem::path& repo_dir, std::string url, std::string branch) {
  if (auto s = init_libgit2(); !s) return std::unexpected(s.error());
  if (auto s = check_url(url); !s) return std::unexpected(s.error());
  if (auto s = check_branch(branch); !s) return std::unexpected(s.error());
  const std::string where = "open release repository " + repo_dir.string();

  git_repository* raw = nullptr;
  int rc = git_repository_open_ext(&raw, repo_dir.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr);
  if (rc == GIT_ENOTFOUND) {
    std::error_code ec;
    if (stdfs::exists(repo_dir, ec) && !stdfs::is_empty(repo_dir, ec))
      return make_error(Errc::invalid_argument,
                        where + ": the folder exists, is not empty and is not a Git repository; "
                                "remove it or choose another data folder");
    // Make it beside the target and rename it into place: no half-made repository after a
    // power cut.
    stdfs::path staging = repo_dir;
    staging += ".init";
    stdfs::remove_all(staging, ec);
    git_repository_init_options options = GIT_REPOSITORY_INIT_OPTIONS_INIT;
    options.flags = GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH;
    git_repository* made = nullptr;
    if (git_repository_init_ext(&made, staging.c_str(), &options) < 0)
      return std::unexpected(git_error(Errc::io, where + ": cannot create a repository at " + staging.string()));
    git_repository_free(made);
    stdfs::rename(staging, repo_dir, ec);
    if (ec) {
      stdfs::remove_all(staging, ec);
      return make_error(ec == std::errc::no_space_on_device ? Errc::no_space : Errc::io,
                        where + ": cannot move the new repository into place: " + ec.message());
    }
    rc = git_repository_open_ext(&raw, repo_dir.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr);
  }
  if (rc < 0) return std::unexpected(git_error(Errc::io, where));
  RepoPtr repo(raw);

  // The remote "origin" follows url and branch; an operator can inspect it with plain git.
  const std::string refspec = fetch_refspec(branch);
  git_remote* raw_remote = nullptr;
  rc = git_remote_lookup(&raw_remote, repo.get(), "origin");
  if (rc == GIT_ENOTFOUND) {
    if (git_remote_create_with_fetchspec(&raw_remote, repo.get(), "origin", url.c_str(), refspec.c_str()) < 0)
      return std::unexpected(git_error(Errc::io, where + ": cannot add remote " + redact_url(url)));
  } else if (rc < 0) {
    return std::unexpected(git_error(Errc::io, where + ": cannot read remote 'origin'"));
  }
  RemotePtr remote(raw_remote);
  const char* current_url = git_remote_url(remote.get());
  if (!current_url || url != current_url) {
    if (git_remote_set_url(repo.get(), "origin", url.c_str()) < 0)
      return std::unexpected(git_error(Errc::io, where + ": cannot set the remote url to " + redact_url(url)));
  }
  StrArray refspecs;
  if (git_remote_get_fetch_refspecs(&refspecs.array, remote.get()) < 0)
    return std::unexpected(git_error(Errc::io, where + ": cannot read the remote's refspecs"));
  if (refspecs.array.count != 1 || refspec != refspecs.array.strings[0]) {
    git_config* raw_config = nullptr;
    if (git_repository_config(&raw_config, repo.get()) < 0)
      return std::unexpected(git_error(Errc::io, where + ": cannot open the repository's configuration"));
    ConfigPtr config(raw_config);
    int del = git_config_delete_multivar(config.get(), "remote.origin.fetch", ".*");
    if ((del < 0 && del != GIT_ENOTFOUND) || git_remote_add_fetch(repo.get(), "origin", refspec.c_str()) < 0)
      return std::unexpected(git_error(Errc::io, where + ": cannot set the remote's refspec to " + refspec));
  }
  if (git_remote_set_autotag(repo.get(), "origin", GIT_REMOTE_DOWNLOAD_TAGS_NONE) < 0)
    return std::unexpected(git_error(Errc::io, where + ": cannot configure the remote"));

  return GitSource(repo.release(), repo_dir, std::move(url), std::move(branch));
}

Expected<std::string> GitSource::fetch(std::chrono::seconds timeout) {
  stats_ = {};
  const std::string where = "fetch branch '" + branch_ + "' from " + redact_url(url_);
  // An in-memory remote for url_ (what "origin" holds, for people inspecting the repository
  // with git): looking "origin" up applies url.*.insteadOf through a regular expression, and
  // libgit2 1.5 leaks PCRE2 match data (about 300 KiB) at every such lookup.
  git_remote* raw_remote = nullptr;
  git_remote_create_options create = GIT_REMOTE_CREATE_OPTIONS_INIT;
  create.repository = repo_;
  create.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
  if (git_remote_create_with_opts(&raw_remote, url_.c_str(), &create) < 0)
    return std::unexpected(git_error(Errc::io, where + ": cannot open a remote for " + redact_url(url_)));
  RemotePtr remote(raw_remote);

  FetchContext ctx{Clock::now() + timeout};
  git_fetch_options options = GIT_FETCH_OPTIONS_INIT;
  options.prune = GIT_FETCH_NO_PRUNE;
  options.update_fetchhead = 0;
  options.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
  options.callbacks.payload = &ctx;
  options.callbacks.remote_ready = [](git_remote*, int, void* payload) { return check_deadline(payload); };
  options.callbacks.sideband_progress = [](const char*, int, void* payload) { return check_deadline(payload); };
  options.callbacks.transfer_progress = [](const git_indexer_progress*, void* payload) {
    return check_deadline(payload);
  };

  std::string refspec = fetch_refspec(branch_);
  char* refspec_strings[] = {refspec.data()};
  git_strarray refspecs{refspec_strings, 1};

  int rc;
  std::string timeout_detail;
  {
    DeadlineScope scope(ctx.deadline);
    rc = git_remote_fetch(remote.get(), &refspecs, &options, "eddy: fetch");
    if (rc < 0 && t_deadline_hit) {
      ctx.timed_out = true;
      timeout_detail = t_deadline_what;
    }
  }
  if (const git_indexer_progress* progress = git_remote_stats(remote.get())) {
    stats_.received_objects = progress->received_objects;
    stats_.received_bytes = progress->received_bytes;
  }
  if (rc < 0) {
    if (ctx.timed_out)
      return make_error(Errc::timeout, where + ": no complete answer within " + std::to_string(timeout.count()) +
                                           " s (" + (timeout_detail.empty() ? git_message() : timeout_detail) +
                                           "); check the network and the server");
    std::string message = git_message();
    Errc code = message.find(std::strerror(ENOSPC)) != std::string::npos ? Errc::no_space : Errc::network;
    return make_error(code, where + ": " + message);
  }

  // libgit2 quietly fetches nothing when the refspec matches no remote branch: look at what
  // the remote advertised.
  const git_remote_head** heads = nullptr;
  std::size_t count = 0;
  if (git_remote_ls(&heads, &count, remote.get()) < 0)
    return std::unexpected(git_error(Errc::network, where + ": cannot list the remote's branches"));
  const std::string wanted = "refs/heads/" + branch_;
  const git_remote_head* head = nullptr;
  for (std::size_t i = 0; i < count; ++i)
    if (heads[i]->name && wanted == heads[i]->name) head = heads[i];
  if (!head)
    return make_error(Errc::not_found, where + ": the remote has no branch '" + branch_ +
                                           "'; check source.branch in the configuration");

  git_oid fetched;
  if (git_reference_name_to_id(&fetched, repo_, std::string(fetched_ref).c_str()) < 0)
    return std::unexpected(git_error(Errc::internal, where + ": " + std::string(fetched_ref) + " was not written"));
  if (!git_oid_equal(&fetched, &head->oid))
    return make_error(Errc::internal, where + ": " + std::string(fetched_ref) + " is " + to_hex(fetched) +
                                          " but the remote advertised " + to_hex(head->oid));
  return to_hex(fetched);
}

namespace {

Expected<CommitPtr> lookup_commit(git_repository* repo, const std::filesystem::path& dir, std::string_view id) {
  auto oid = parse_id(id);
  if (!oid) return std::unexpected(oid.error());
  git_commit* raw = nullptr;
  int rc = git_commit_lookup(&raw, repo, &*oid);
  if (rc == GIT_ENOTFOUND || rc == GIT_EINVALIDSPEC)
    return make_error(Errc::not_found, "commit " + std::string(id) + " is not in the release repository " +
                                           dir.string() + " (was it fetched?)");
  if (rc < 0) return std::unexpected(git_error(Errc::io, "read commit " + std::string(id)));
  return CommitPtr(raw);
}

}  // namespace

Expected<CommitInfo> GitSource::commit(std::string_view id) const {
  auto c = lookup_commit(repo_, repo_dir_, id);
  if (!c) return std::unexpected(c.error());
  CommitInfo info;
  info.id = to_hex(*git_commit_id(c->get()));
  info.time = static_cast<std::int64_t>(git_commit_time(c->get()));

  // The object's bytes as stored: exactly what a signature covers once gpgsig is taken out.
  git_odb* raw_odb = nullptr;
  if (git_repository_odb(&raw_odb, repo_) < 0)
    return std::unexpected(git_error(Errc::io, "open the object database of " + repo_dir_.string()));
  OdbPtr odb(raw_odb);
  git_odb_object* raw_object = nullptr;
  if (git_odb_read(&raw_object, odb.get(), git_commit_id(c->get())) < 0)
    return std::unexpected(git_error(Errc::io, "read commit object " + info.id));
  OdbObjectPtr object(raw_object);
  info.raw.assign(static_cast<const char*>(git_odb_object_data(object.get())), git_odb_object_size(object.get()));

  const char* message = git_commit_message(c->get());
  std::string_view text = message ? message : "";
  text = text.substr(0, text.find('\n'));
  while (!text.empty() && (text.back() == '\r' || text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  info.summary = std::string(text);
  return info;
}

Expected<bool> GitSource::descends_from(std::string_view commit, std::string_view ancestor) const {
  auto c = lookup_commit(repo_, repo_dir_, commit);
  if (!c) return std::unexpected(c.error());
  auto a = lookup_commit(repo_, repo_dir_, ancestor);
  if (!a) return std::unexpected(a.error());
  const git_oid* cid = git_commit_id(c->get());
  const git_oid* aid = git_commit_id(a->get());
  if (git_oid_equal(cid, aid)) return true;
  int rc = git_graph_descendant_of(repo_, cid, aid);
  if (rc < 0)
    return std::unexpected(git_error(Errc::io, "walk the history from " + std::string(commit) + " to " +
                                                    std::string(ancestor)));
  return rc == 1;
}

Expected<std::string> GitSource::read_file(std::string_view commit, std::string_view path,
                                           std::size_t max_bytes) const {
  if (auto s = check_path(path, "file"); !s) return std::unexpected(s.error());
  auto c = lookup_commit(repo_, repo_dir_, commit);
  if (!c) return std::unexpected(c.error());
  const std::string where = "'" + std::string(path) + "' at commit " + std::string(commit);
  auto entry = entry_at(c->get(), path, commit);
  if (!entry) return std::unexpected(entry.error());
  if (!*entry) return make_error(Errc::not_found, "file " + where + " does not exist");
  git_filemode_t mode = git_tree_entry_filemode(entry->get());
  if (mode == GIT_FILEMODE_TREE) return make_error(Errc::invalid_argument, where + " is a directory, not a file");
  if (mode == GIT_FILEMODE_LINK)
    return make_error(Errc::invalid_argument, where + " is a symbolic link; store the file itself");
  if (mode == GIT_FILEMODE_COMMIT) return make_error(Errc::invalid_argument, where + " is a submodule, not a file");

  // Check the size from the object header before loading the blob into memory.
  git_odb* raw_odb = nullptr;
  if (git_repository_odb(&raw_odb, repo_) < 0)
    return std::unexpected(git_error(Errc::io, "open the object database of " + repo_dir_.string()));
  OdbPtr odb(raw_odb);
  std::size_t size = 0;
  git_object_t type = GIT_OBJECT_INVALID;
  if (git_odb_read_header(&size, &type, odb.get(), git_tree_entry_id(entry->get())) < 0)
    return std::unexpected(git_error(Errc::io, "read " + where));
  if (size > max_bytes)
    return make_error(Errc::too_large, "file " + where + " has " + std::to_string(size) + " bytes, more than the " +
                                           std::to_string(max_bytes) + " allowed");
  git_blob* raw_blob = nullptr;
  if (git_blob_lookup(&raw_blob, repo_, git_tree_entry_id(entry->get())) < 0)
    return std::unexpected(git_error(Errc::io, "read " + where));
  BlobPtr blob(raw_blob);
  return std::string(static_cast<const char*>(git_blob_rawcontent(blob.get())),
                     static_cast<std::size_t>(git_blob_rawsize(blob.get())));
}

Expected<std::vector<std::string>> GitSource::list_files(std::string_view commit, std::string_view dir) const {
  while (!dir.empty() && dir.back() == '/') dir.remove_suffix(1);
  if (dir == ".") dir = "";
  if (!dir.empty()) {
    if (auto s = check_path(dir, "folder"); !s) return std::unexpected(s.error());
  }
  auto c = lookup_commit(repo_, repo_dir_, commit);
  if (!c) return std::unexpected(c.error());

  git_tree* raw_tree = nullptr;
  if (dir.empty()) {
    if (git_commit_tree(&raw_tree, c->get()) < 0)
      return std::unexpected(git_error(Errc::io, "read the tree of commit " + std::string(commit)));
  } else {
    auto entry = entry_at(c->get(), dir, commit);
    if (!entry) return std::unexpected(entry.error());
    if (!*entry) return std::vector<std::string>{};
    if (git_tree_entry_type(entry->get()) != GIT_OBJECT_TREE)
      return make_error(Errc::invalid_argument, "'" + std::string(dir) + "' at commit " + std::string(commit) +
                                                    " is a file, not a folder");
    if (git_tree_lookup(&raw_tree, repo_, git_tree_entry_id(entry->get())) < 0)
      return std::unexpected(git_error(Errc::io, "read folder '" + std::string(dir) + "' at commit " +
                                                      std::string(commit)));
  }
  TreePtr tree(raw_tree);
  std::vector<std::string> names;
  for (std::size_t i = 0, n = git_tree_entrycount(tree.get()); i < n; ++i) {
    const git_tree_entry* e = git_tree_entry_byindex(tree.get(), i);
    git_filemode_t mode = git_tree_entry_filemode(e);
    if (mode == GIT_FILEMODE_BLOB || mode == GIT_FILEMODE_BLOB_EXECUTABLE) names.emplace_back(git_tree_entry_name(e));
  }
  std::sort(names.begin(), names.end());
  return names;
}

Expected<std::int64_t> GitSource::last_change_time(std::string_view commit, std::string_view path) const {
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  if (auto s = check_path(path, "path"); !s) return std::unexpected(s.error());
  auto start = lookup_commit(repo_, repo_dir_, commit);
  if (!start) return std::unexpected(start.error());
  CommitPtr current = std::move(*start);
  std::string current_id(commit);
  auto entry = entry_at(current.get(), path, current_id);
  if (!entry) return std::unexpected(entry.error());
  if (!*entry)
    return make_error(Errc::not_found, "'" + std::string(path) + "' does not exist at commit " + std::string(commit));
  TreeEntryPtr current_entry = std::move(*entry);

  for (;;) {
    if (git_commit_parentcount(current.get()) == 0) break;  // the root commit introduced it
    git_commit* raw_parent = nullptr;
    if (git_commit_parent(&raw_parent, current.get(), 0) < 0)
      return std::unexpected(git_error(Errc::io, "read the first parent of commit " + current_id +
                                                      " (is the repository complete?)"));
    CommitPtr parent(raw_parent);
    std::string parent_id = to_hex(*git_commit_id(parent.get()));
    auto parent_entry = entry_at(parent.get(), path, parent_id);
    if (!parent_entry) return std::unexpected(parent_entry.error());
    if (!same_entry(current_entry.get(), parent_entry->get())) break;
    current = std::move(parent);
    current_id = std::move(parent_id);
    current_entry = std::move(*parent_entry);
  }
  return static_cast<std::int64_t>(git_commit_time(current.get()));
}

Status GitSource::set_accepted(std::string_view id) {
  auto c = lookup_commit(repo_, repo_dir_, id);
  if (!c) return std::unexpected(c.error().with_context("mark commit accepted"));
  git_reference* raw = nullptr;
  if (git_reference_create(&raw, repo_, std::string(accepted_ref).c_str(), git_commit_id(c->get()), 1,
                           "eddy: accepted") < 0) {
    std::string message = git_message();
    return make_error(message.find(std::strerror(ENOSPC)) != std::string::npos ? Errc::no_space : Errc::io,
                      "write " + std::string(accepted_ref) + " = " + std::string(id) + " in " + repo_dir_.string() +
                          ": " + message);
  }
  ReferencePtr ref(raw);
  return {};
}

}  // namespace eddy::ota

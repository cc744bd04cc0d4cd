// A child process for integration tests: started with posix_spawn, stdout
// captured through a pipe (read line by line) or sent to a log file, stopped
// with a signal and reaped. The destructor kills and reaps a child still
// running, so a failing test leaves no server behind.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace kvscope::testing_util {

class ChildProcess {
 public:
  /// Starts argv[0] (a path) with `argv`. stdout goes to a pipe read by
  /// read_line() when `log_file` is empty, else (with stderr) to the file.
  explicit ChildProcess(const std::vector<std::string>& argv, const std::string& log_file = "") {
    int pipe_fds[2] = {-1, -1};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (log_file.empty()) {
      if (::pipe(pipe_fds) != 0) throw std::runtime_error("pipe failed");
      posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
      posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
    } else {
      posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_file.c_str(),
                                       O_WRONLY | O_CREAT | O_TRUNC, 0644);
      posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int spawned = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (pipe_fds[1] >= 0) ::close(pipe_fds[1]);
    stdout_fd_ = pipe_fds[0];
    if (spawned != 0) {
      if (stdout_fd_ >= 0) ::close(stdout_fd_);
      throw std::runtime_error("cannot start " + argv.at(0));
    }
  }

  ~ChildProcess() {
    if (pid_ > 0 && !exit_status_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    if (stdout_fd_ >= 0) ::close(stdout_fd_);
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  /// The next line of the child's stdout, without its newline; nullopt at
  /// EOF or when nothing arrived within `timeout`.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout) {
    const auto give_up = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (const auto end = buffered_.find('\n'); end != std::string::npos) {
        std::string line = buffered_.substr(0, end);
        buffered_.erase(0, end + 1);
        return line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          give_up - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd fd{stdout_fd_, POLLIN, 0};
      if (::poll(&fd, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[4096];
      const ssize_t n = ::read(stdout_fd_, chunk, sizeof chunk);
      if (n <= 0) return std::nullopt;
      buffered_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  /// Sends `signal` and waits (up to `timeout`, then SIGKILL) for the exit;
  /// returns the exit code, or 128 + the signal that killed it.
  int stop(int signal, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    if (exit_status_) return *exit_status_;
    ::kill(pid_, signal);
    const auto give_up = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > give_up) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return *exit_status_;
  }

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string buffered_;
  std::optional<int> exit_status_;
};

/// Runs `argv` to completion with `input` on stdin; returns {exit code,
/// stdout + stderr}. For short tools (promtool).
inline std::pair<int, std::string> run_tool(const std::vector<std::string>& argv,
                                            const std::string& input) {
  char input_path[] = "/tmp/kvscope-tool-input-XXXXXX";
  const int input_fd = ::mkstemp(input_path);
  if (input_fd < 0) throw std::runtime_error("mkstemp failed");
  if (::write(input_fd, input.data(), input.size()) != static_cast<ssize_t>(input.size()))
    throw std::runtime_error("writing the tool's input failed");
  ::close(input_fd);
  const std::string output_path = std::string(input_path) + ".out";
  std::string command;
  for (const auto& a : argv) command += "'" + a + "' ";
  command += "< '" + std::string(input_path) + "' > '" + output_path + "' 2>&1";
  const int status = std::system(command.c_str());
  std::string output;
  if (FILE* f = std::fopen(output_path.c_str(), "r")) {
    char chunk[4096];
    std::size_t n = 0;
    while ((n = std::fread(chunk, 1, sizeof chunk, f)) > 0) output.append(chunk, n);
    std::fclose(f);
  }
  std::remove(input_path);
  std::remove(output_path.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

}  // namespace kvscope::testing_util

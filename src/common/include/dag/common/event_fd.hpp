// EventFd: a Linux eventfd used to wake a poll() loop from another thread or from code
// that queued work. signal() never blocks (the counter saturates long before 2^64);
// drain() resets it. Thread-safety: signal() and drain() may race freely.
#pragma once

namespace dag {

class EventFd {
 public:
  /// Creates a non-blocking, close-on-exec eventfd. Throws std::system_error at start-up
  /// when the kernel refuses (out of descriptors): there is no useful way to run without.
  EventFd();
  ~EventFd();
  EventFd(const EventFd&) = delete;
  EventFd& operator=(const EventFd&) = delete;

  [[nodiscard]] int fd() const { return fd_; }
  void signal() const noexcept;
  void drain() const noexcept;

 private:
  int fd_;
};

}  // namespace dag

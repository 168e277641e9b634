#include "dag/common/event_fd.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>

namespace dag {

EventFd::EventFd() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
}

EventFd::~EventFd() {
  ::close(fd_);
}

void EventFd::signal() const noexcept {
  const std::uint64_t one = 1;
  // EAGAIN only when the counter is saturated, and then the reader is woken anyway.
  if (::write(fd_, &one, sizeof one) < 0) return;
}

void EventFd::drain() const noexcept {
  std::uint64_t count = 0;
  // EAGAIN when nothing was signalled: nothing to drain.
  if (::read(fd_, &count, sizeof count) < 0) return;
}

}  // namespace dag

// Helpers shared by the LMDB store's test files.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "sessionkit/session.hpp"
#include "sessionkit/session_manager.hpp"
#include "sessionkit/store.hpp"
#include "tests/support/test_support.hpp"

namespace sessionkit::testing {

// A fixed point in time for expiries.
inline const Store::TimePoint kLmdbT0 = Store::TimePoint(std::chrono::milliseconds(1'700'000'000'000));

// Creates `sessions` sessions with n = 0, then forks `procs` children that
// each open every session `rounds` times, add one to n (and, with
// `growing_pad`, store a pad that grows with each round, so the map grows
// meanwhile) and save. Every n must end at exactly procs * rounds.
inline void expect_processes_count_exactly(SessionManager& m, int sessions, int procs, int rounds,
                                           bool growing_pad) {
  std::vector<std::string> cookies;
  for (int k = 0; k < sessions; ++k) {
    Session s = m.open("");
    s.data()["n"] = 0;
    s.save();
    const std::optional<std::string> set = m.set_cookie(s);
    ASSERT_TRUE(set.has_value());
    cookies.push_back(set->substr(0, set->find(';')));
  }
  std::vector<pid_t> pids;
  for (int p = 0; p < procs; ++p) {
    pids.push_back(fork_child([&] {
      m.after_fork();
      for (int i = 0; i < rounds; ++i) {
        for (const std::string& cookie : cookies) {
          Session s = m.open(cookie);
          if (s.is_new()) return 3;
          s.data()["n"] = s.data()["n"].get<int>() + 1;
          if (growing_pad) s.data()["pad"] = std::string(static_cast<std::size_t>(i) * 10, 'p');
          s.save();
        }
      }
      return 0;
    }));
  }
  for (pid_t pid : pids) EXPECT_EQ(wait_child(pid), 0);
  for (const std::string& cookie : cookies) {
    Session s = m.open(cookie);
    EXPECT_FALSE(s.is_new());
    EXPECT_EQ(s.data().value("n", -1), procs * rounds);
  }
}

}  // namespace sessionkit::testing

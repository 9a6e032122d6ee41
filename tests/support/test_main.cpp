// main() of every sessionkit test binary: a helper mode when asked for one,
// GoogleTest otherwise.
#include <gtest/gtest.h>

#include "tests/support/test_support.hpp"

int main(int argc, char** argv) {
  int rc = sessionkit::testing::run_helper_if_requested(argc, argv);
  if (rc >= 0) return rc;
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

// One-line log messages of sessionkit-fcgi-demo on its own stderr
// ("sessionkit-fcgi-demo[pid]: ..."), each written with a single write() so
// lines from several processes and threads never interleave.
#pragma once

namespace sessionkit::fcgi_demo {

[[gnu::format(printf, 1, 2)]] void log(const char* format, ...) noexcept;

}  // namespace sessionkit::fcgi_demo

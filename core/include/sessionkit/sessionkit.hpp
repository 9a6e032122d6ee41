// The whole public API of sessionkit. See README.md and docs/.
#pragma once

#include <nlohmann/json.hpp>

#include "sessionkit/clock.hpp"
#include "sessionkit/config.hpp"
#include "sessionkit/error.hpp"
#include "sessionkit/lock_manager.hpp"
#include "sessionkit/registry.hpp"
#include "sessionkit/resource_lock.hpp"
#include "sessionkit/session.hpp"
#include "sessionkit/session_manager.hpp"
#include "sessionkit/stats.hpp"
#include "sessionkit/store.hpp"

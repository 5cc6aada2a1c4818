// The library's sections of the config file (`redis:`, `limiter:`), read from a parsed
// file: by LoadLimiterConfig for the library, and by config::Load (config/config.h)
// with every other section for the programs.
#pragma once

#include "config/document.h"
#include "dlb/limiter.h"

namespace dlb {

// `base` with the file's `redis:` and `limiter:` fields applied; other sections are
// left to their readers. Errors name the file, the line and the field.
StatusOr<LimiterOptions> ReadLibrarySections(const config::Document& doc, LimiterOptions base = {});

}  // namespace dlb

// What `taskq-worker --help` shows a newcomer: what the program does, the
// flags in groups with readable value names, the environment fallbacks,
// exit codes and an example. Kept apart from the flag definitions
// (cli_options.cpp) so either can change without touching the other.
#pragma once

#include <CLI/CLI.hpp>

namespace taskq {

// Call once every option is added: sets the description and footer, puts
// each option in its group and names its value. Options it does not know
// stay in a general group, so a new flag is never hidden.
void arrange_help(CLI::App& app);

}  // namespace taskq

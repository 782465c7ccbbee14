/* testrun.h - `luaparty test`: a project's Lua tests run in-process against
 * the real runtime (testrun.c; the Lua API is lua/test/luaparty_test.lua). */
#ifndef LP_TESTRUN_H
#define LP_TESTRUN_H

#include "cli.h"
#include "config.h"

/* Reads the project as `dev` would: main.c's loader (partykit.json, then
 * the options). Returns -1 with cfg loaded, or an exit code (cfg freed,
 * the reason printed). */
typedef int (*testrun_loader)(config *cfg, const cli_options *o);

/* Runs the tests o names (or DIR/tests/..._test.lua), prints one line per
 * test and "N passed, N failed" last. Returns 0 if every test passed, 1 if
 * one failed or none ran, 2 if the project cannot be loaded. With --watch
 * it runs them again on every save and returns only on a signal. */
int testrun_main(const cli_options *o, testrun_loader load);

#endif

# taskq — top-level Makefile.
#
# The extension (taskq.so + SQL scripts) is built with PGXS; the worker,
# the GoogleTest suites and the benchmark tools with CMake (build/).
#
#   make && make install    build and install the extension
#   make worker             build taskq-worker and the test programs (CMake)
#   make test               install deps, build, start a throwaway PostgreSQL
#                           and RabbitMQ, run every test, stop them
#   make demo               the same set-up, then a worked example
#   make bench              the benchmark (RESULT lines)
#   make soak               the chaos harness, long form: SOAK_MINUTES (default
#                           20) of mixed faults, then the promise checked
#   make bench-peers        taskq beside graphile-worker and pg-boss in the shared
#                           peer benchmark (ARGS='--quick' etc. go to run-peers.sh)

EXTENSION    = taskq
EXTVERSION   = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" taskq.control)
MODULE_big   = taskq

EXT_SOURCES  = $(sort $(wildcard extension/*.cpp) $(wildcard extension/publisher/*.cpp) $(wildcard extension/core/*.cpp))
OBJS         = $(EXT_SOURCES:.cpp=.o)

# sql/src/*.sql concatenated (in name order) is the install script of the
# current version, generated. Committed beside it: the install scripts of
# released versions, frozen (sql/taskq--X.sql), and the hand-written upgrade
# scripts (sql/taskq--A--B.sql); one wildcard matches both, each once.
# docs/upgrading.md says how they change.
SQL_SOURCES  = $(sort $(wildcard sql/src/*.sql))
DATA_built   = sql/taskq--$(EXTVERSION).sql
DATA         = $(filter-out $(DATA_built),$(wildcard sql/taskq--*.sql))

# Regression tests: test/sql/NAME.sql -> test/expected/NAME.out (pgTAP files
# included, with TAP text as expected output); isolation specs in test/specs.
REGRESS      = $(sort $(basename $(notdir $(wildcard test/sql/*.sql))))
CONTRIB_TESTDB = taskq_regression
REGRESS_OPTS = --inputdir=test --outputdir=build/regress
ISOLATION    = $(sort $(basename $(notdir $(wildcard test/specs/*.spec))))
ISOLATION_OPTS = --inputdir=test --outputdir=build/isolation --load-extension=taskq

PG_CONFIG   ?= pg_config
PG_INCLUDE_SERVER := $(shell $(PG_CONFIG) --includedir-server)

# -isystem: PostgreSQL's headers are not ours to keep warning-free under C++17.
PG_CPPFLAGS  = -isystem $(PG_INCLUDE_SERVER) -Iextension
PG_CXXFLAGS  = -std=c++17 -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
ifeq ($(WERROR),1)
PG_CXXFLAGS += -Werror
endif
SHLIB_LINK   = -lrabbitmq -lcctz -lstdc++

# Header dependencies: PGXS tracks none for C++ unless PostgreSQL itself was
# configured with --enable-depend, so a changed header (a shared-memory
# struct, say) would leave stale objects behind. -MMD writes foo.d beside
# foo.o; the -include below reads them.
PG_CXXFLAGS += -MMD -MP
EXTRA_CLEAN  = $(DATA_built) build/regress build/isolation $(OBJS:.o=.d)

# JIT inlining bitcode would be compiled by clang without PG_CXXFLAGS (and
# fails on C++17); taskq has nothing worth inlining into JIT-compiled
# expressions, so skip it. (Must come before the include to win.)
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
-include $(OBJS:.o=.d)

$(DATA_built): $(SQL_SOURCES) taskq.control
	@mkdir -p $(dir $@)
	{ printf '%s\n' "-- taskq $(EXTVERSION): generated from sql/src/*.sql by make; edit those." \
	    '\echo Use "CREATE EXTENSION taskq" to load this file. \quit'; \
	  cat $(SQL_SOURCES); } > $@

CMAKE_BUILD_TYPE ?= RelWithDebInfo
CMAKE_FLAGS ?=

.PHONY: worker test demo soak bench bench-build bench-peers deps format format-check
build/CMakeCache.txt:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=$(CMAKE_BUILD_TYPE) -DTASKQ_WERROR=$(if $(filter 1,$(WERROR)),ON,OFF) $(CMAKE_FLAGS) >/dev/null

worker: build/CMakeCache.txt
	cmake --build build -j $$(nproc)

deps:
	scripts/install-deps

test:
	scripts/install-deps
	$(MAKE) WERROR=1
	$(MAKE) install >/dev/null
	$(MAKE) WERROR=1 worker
	scripts/test-env run scripts/run-tests

demo:
	scripts/install-deps
	$(MAKE)
	$(MAKE) install >/dev/null
	$(MAKE) worker
	scripts/test-env run scripts/demo

SOAK_MINUTES ?= 20
soak:
	scripts/install-deps
	$(MAKE) WERROR=1
	$(MAKE) install >/dev/null
	$(MAKE) WERROR=1 worker
	scripts/test-env run env SOAK_MINUTES=$(SOAK_MINUTES) \
	  ctest --test-dir build -R '^faults\.' --output-on-failure --timeout $$(( $(SOAK_MINUTES) * 60 + 1200 ))

# What both benchmarks run on: the extension installed, the worker in Release.
bench-build:
	scripts/install-deps
	$(MAKE)
	$(MAKE) install >/dev/null
	$(MAKE) CMAKE_BUILD_TYPE=Release worker

bench: bench-build
	scripts/test-env run bench/run-bench

bench-peers: bench-build
	scripts/test-env run bench/run-peers-with-taskq $(ARGS)

format:
	clang-format -i $$(git ls-files --cached --others --exclude-standard '*.cpp' '*.hpp' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files --cached --others --exclude-standard '*.cpp' '*.hpp' '*.h')

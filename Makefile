# Medallion: build, test and benchmark.
#
#   make demo    run the whole loop on the embedded defaults
#   make test    vet and run every test against real PostgreSQL, a real S3
#                server (versitygw, built from .ci/tools), DuckDB, real
#                Kafka clients (kcat, confluent-kafka) against kfake, and
#                real PostgreSQL clients (psql, pgx, SQLAlchemy, JDBC)
#                against medallion serve
#   make bench   run the benchmarks (figures go in BENCHMARKS.md)

GO       ?= go
BIN      := bin
TESTARGS ?=

.PHONY: all build demo test bench bench-sink bench-year bench-serve bench-workers bench-extract vet fmt tools services clean

all: build

build:
	$(GO) build -o $(BIN)/medallion ./cmd/medallion

demo: build
	./$(BIN)/medallion demo

# The pinned S3-compatible server the storage tests run against.
tools: $(BIN)/versitygw

$(BIN)/versitygw: .ci/tools/go.mod .ci/tools/go.sum
	$(GO) build -modfile=.ci/tools/go.mod -o $@ github.com/versity/versitygw/cmd/versitygw

# PostgreSQL for the tests: starts the local cluster if it is down; and the
# outside Kafka and Prometheus clients the sink tests use (kcat,
# python3-confluent-kafka, promtool), installed from Debian if missing.
services:
	./.ci/ensure-postgres
	./.ci/ensure-clients

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w .

test: tools services vet
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	MEDALLION_VERSITYGW=$(CURDIR)/$(BIN)/versitygw $(GO) test -count=1 -timeout 20m -v $(TESTARGS) ./...

# Engine benchmark (BENCHMARKS.md): one events partition, through the engine
# and as bare DuckDB SQL, each in its own process so peak RSS is its own.
# MEDALLION_BENCH_EVENTS sets the size (default 860000; 5000000 for the
# overhead comparison). Generated bronze is cached in the temp folder.
bench:
	$(GO) test ./pipeline -run '^$$' -bench '^BenchmarkGenerateBronze$$' -benchtime 1x -timeout 60m
	$(GO) test ./pipeline -run '^$$' -bench '^BenchmarkEngine$$' -benchtime 3x -timeout 60m
	$(GO) test ./pipeline -run '^$$' -bench '^BenchmarkDirectDuckDB$$' -benchtime 3x -timeout 60m

# Sink benchmark (BENCHMARKS.md): MEDALLION_SINK_BENCH_MESSAGES (default 1M)
# messages from kfake in its own process; MEDALLION_SINK_BENCH_FLUSH sets
# sink.flush_messages (default 1000). The ceiling (a bare kafka-go reader)
# and the sink alternate, each in its own process, BENCH_PAIRS times
# (default 5), since this machine drifts from minute to minute. The runs'
# bronze stays in .bench/ (55 MB a 1M run, 550 MB a 10M one) until
# `make clean`: deleting thousands of files slows the next minutes' file
# creation on this machine's filesystem (BENCHMARKS.md).
# Each pair prints its sink / ceiling ratio; the last line is their median.
BENCH_PAIRS ?= 5
bench-sink:
	$(GO) test -c -o $(BIN)/sink.test ./sink
	cd sink && for i in $$(seq $(BENCH_PAIRS)); do \
		../$(BIN)/sink.test -test.run '^$$' -test.bench '^BenchmarkConsumeCeiling$$' -test.benchtime 1x -test.timeout 30m && \
		MEDALLION_SINK_BENCH_KEEP=1 ../$(BIN)/sink.test -test.run '^$$' -test.bench '^BenchmarkSink$$' -test.benchtime 1x -test.timeout 30m || { echo "bench-sink: a benchmark failed"; exit 1; }; \
	done | awk '{ print } /^bench-sink: a benchmark failed/ { failed = 1 } \
		/^Benchmark/ { for (i = 2; i < NF; i++) if ($$(i+1) == "msgs/s") rate = $$i } \
		/^BenchmarkConsumeCeiling/ { ceiling = rate } \
		/^BenchmarkSink/ { r[++n] = 100 * rate / ceiling; printf "pair %d: sink / ceiling = %.1f%%\n", n, r[n] } \
		END { if (failed || !n) exit 1; for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (r[j] < r[i]) { t = r[i]; r[i] = r[j]; r[j] = t } \
			printf "median sink / ceiling over %d pairs: %.1f%%\n", n, n % 2 ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2 }'

# A year of daily runs (BENCHMARKS.md): 365 runs on small data with late
# days, backfills and maintain after each, then the same without maintain,
# each in its own process (about 25 minutes each on 2 cores).
# MEDALLION_YEAR_DAYS and MEDALLION_YEAR_EVENTS shrink it.
bench-year:
	$(GO) test -c -o $(BIN)/pipeline.test ./pipeline
	cd pipeline && ../$(BIN)/pipeline.test -test.run '^$$' -test.bench '^BenchmarkYear$$' -test.benchtime 1x -test.v -test.timeout 120m
	cd pipeline && MEDALLION_YEAR_MAINTAIN=0 ../$(BIN)/pipeline.test -test.run '^$$' -test.bench '^BenchmarkYear$$' -test.benchtime 1x -test.v -test.timeout 120m

# Worker processes (BENCHMARKS.md): partitions per minute that 1, 2 and 4
# `medallion worker` processes (DuckDB threads: 1 each) drain from one queue
# on PostgreSQL and versitygw, for many small and a few large partitions,
# best of MEDALLION_WORKERS_BENCH_ROUNDS (2) alternating rounds.
bench-workers: tools services
	MEDALLION_VERSITYGW=$(CURDIR)/$(BIN)/versitygw $(GO) test ./pipeline -run '^$$' -bench '^BenchmarkWorkers$$' -benchtime 1x -timeout 60m -v

# PostgreSQL extraction (BENCHMARKS.md): rows per second of an incremental
# extract (orders with items nested by json_agg) and of a cdc extract, 1M
# orders (MEDALLION_EXTRACT_BENCH_ROWS), into local bronze, on a cluster of
# the benchmark's own.
bench-extract:
	$(GO) test ./extract -run '^$$' -bench '^BenchmarkExtract$$' -benchtime 1x -timeout 30m

# medallion serve under load (BENCHMARKS.md): 32 clients run a mix of gold
# queries for 60 s against a month of demo data at duckdb.memory_limit
# 512MB; then the same queries through medallion query, a process each.
# MEDALLION_SERVE_BENCH_CLIENTS and MEDALLION_SERVE_BENCH_SECONDS change them.
bench-serve:
	cd serve && $(GO) test -run '^$$' -bench '^BenchmarkServeLoad$$' -benchtime 1x -timeout 30m

clean:
	rm -rf $(BIN) .bench

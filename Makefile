# inlet — see README.md. Every target installs or explains what it needs.
GO       ?= go
BIN      := bin/inlet
FUZZTIME ?= 3s

.PHONY: all build run test unit fuzz fuzz-short bench chaos vet clean screenshots

all: build

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/inlet

# Start inlet on the embedded defaults (private PostgreSQL and NATS under
# .data/), load packs/, and print the admin token and a curl to try.
run: build
	@scripts/ensure-postgres.sh
	INLET_LOG_FORMAT=$${INLET_LOG_FORMAT:-text} $(BIN) serve

# Every test, against real PostgreSQL and NATS: the ones on 127.0.0.1 when
# they answer, otherwise servers the tests start themselves; the console's
# in a headless Chromium. Then promtool's checks and unit tests of the alert
# rules, and a short fuzzing pass over every parser. ./test/ is named first
# so that its run, the longest, starts first and the others fit beside it.
test: vet
	@scripts/ensure-postgres.sh
	@scripts/ensure-chromium.sh
	$(GO) test -race -count=1 -timeout 20m ./test/ ./...
	@scripts/check-alerts.sh
	@FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

# The load benchmark (not a test): inlet on embedded PostgreSQL and NATS (or
# DATABASE_URL and NATS_URL), a bare Echo baseline and wrk (installed when
# missing; BENCH_FLAGS=-load go for the Go generator) on this machine, 3
# rounds at 1, 64 and 256 connections, each also with a destination
# forwarding to a sink (-destination=false to skip); prints the tables and
# writes bench/results/. BENCH_FLAGS go to inlet-bench run. bench/README.md.
bench:
	@GO=$(GO) scripts/bench.sh $(BENCH_FLAGS)

# Fuzz every target for longer (FUZZTIME each, default here 1m).
fuzz:
	@FUZZTIME=$(if $(filter command line,$(origin FUZZTIME)),$(FUZZTIME),1m) scripts/fuzz.sh

# The long forms of the reliability tests: a real inlet killed (SIGKILL)
# and stopped (SIGTERM) many times under load, NATS and PostgreSQL outages
# of a minute, the stream's leader in a three-server NATS cluster killed
# again and again, a scanner spraying random keys from random addresses for
# minutes. Each logs the figures the README quotes.
chaos:
	@scripts/ensure-postgres.sh
	INLET_CHAOS=long $(GO) test -count=1 -timeout 60m -v \
		-run '^(TestChaos|TestNATSOutageUnderLoad|TestPostgresOutageUnderLoad|TestNATSClusterFailover|TestScannerMemory|TestLimiterSetsBounded)$$' ./test/

# Refresh the console's screenshots in docs/console/ (1280x800, light mode)
# from the browser tests.
screenshots:
	@scripts/ensure-postgres.sh
	@scripts/ensure-chromium.sh
	INLET_SCREENSHOTS=1 $(GO) test -count=1 -run '^TestConsole' ./test/

clean:
	rm -rf bin

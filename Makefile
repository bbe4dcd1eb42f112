# Fuze: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: ## Install/start PostgreSQL+pgvector and Redis, fetch the model, create the database
	./scripts/setup.sh

run: setup ## Build in release mode, migrate, and run api, worker and clock (Procfile) in the foreground
	cargo build --release --bins
	./target/release/fuze-api migrate
	honcho start api worker clock

test: setup ## Set up, then run the whole test suite (what CI runs)
	./scripts/test.sh

bench: setup ## Benchmarks: embedding throughput and job pickup latency
	./scripts/bench.sh

lint: ## rustfmt and clippy, as CI would want them
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

.PHONY: help setup run test bench lint

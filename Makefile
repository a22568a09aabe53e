.PHONY: demo test bench deps

deps:
	@bash scripts/install-dependencies.sh

demo: deps
	swift run workflow-events demo

test: deps
	swift test

bench: deps
	swift run -c release workflow-events-benchmarks

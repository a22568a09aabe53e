.PHONY: demo test bench reliability deps

deps:
	@bash scripts/install-dependencies.sh

demo: deps
	swift run workflow-events demo

test: deps
	swift test

bench: deps
	swift run -c release workflow-events-benchmarks

reliability: deps
	bash scripts/reliability.sh

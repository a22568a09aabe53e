.PHONY: demo test bench reliability deps

deps:
	@bash scripts/install-dependencies.sh

demo: deps
	swift run workflow-events demo

test: deps
	swift test

bench: deps
	bash Benchmarks/run.sh

reliability: deps
	bash scripts/reliability.sh

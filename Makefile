.PHONY: demo test sanitize bench reliability deps

deps:
	@bash scripts/install-dependencies.sh

demo: deps
	swift run workflow-events demo

test: deps
	swift test

sanitize: deps
	swift test --sanitize=address --scratch-path .build-asan --filter UseAfterClose

bench: deps
	bash Benchmarks/run.sh

reliability: deps
	bash scripts/reliability.sh

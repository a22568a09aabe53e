.PHONY: demo test core lint sanitize bench bench-check reliability deps docs http-example

deps:
	@bash scripts/install-dependencies.sh

demo: deps
	swift run workflow-events demo

test: deps
	swift test

# The consumer's behaviour on the in-memory client alone: no cluster.
core: deps
	swift test --filter CoreTests

# The formatter's rules (.swift-format), as CI checks them; `swift format format -i -r .` applies them.
lint:
	swift format lint --strict -r Sources Tests Examples Benchmarks Package.swift

# Use after free is what this pass looks for; XCTest's runner leaks a few objects at exit,
# which LeakSanitizer would report.
sanitize: deps
	ASAN_OPTIONS=detect_leaks=0 swift test --sanitize=address --scratch-path .build-asan --filter UseAfterClose

bench: deps
	bash Benchmarks/run.sh

# Microbenchmarks (ordo-one/benchmark): times printed, allocation counts checked.
bench-check: deps
	bash Benchmarks/Micro/check.sh

# The DocC documentation of WorkflowEvents (swift-docc-plugin); a warning fails it.
docs: deps
	swift package --disable-sandbox generate-documentation --target WorkflowEvents --warnings-as-errors

reliability: deps
	bash scripts/reliability.sh

# The consumer beside an HTTP server, a package of its own (Examples/HTTPService): built, so
# that it keeps compiling against the library.
http-example: deps
	cd Examples/HTTPService && swift build

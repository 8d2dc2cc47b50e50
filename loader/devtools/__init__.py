"""Development tooling, kept apart from the product: a Storage-compatible server for tests,
benchmarks and the demo (`storage_server`), the synthetic library generator
(`demo_library`), and the end-to-end demo run behind `make demo` (`demo_run`)."""

# The loopback port `loader demo serve` listens on (here so the CLI needs no heavy import).
DEMO_PORT = 54380

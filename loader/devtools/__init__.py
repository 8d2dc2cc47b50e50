"""Development tooling, kept apart from the product: a Storage-compatible server for tests,
benchmarks and the demo (`storage_server`), the synthetic library generator
(`demo_library`), the end-to-end demo run behind `make demo` (`demo_run`), and the commands
that reach them (`commands`: `loader storage serve`, `loader bench`, `loader demo ...`)."""

# The loopback port `loader demo serve` listens on (here so the CLI needs no heavy import):
# below Linux's ephemeral range (32768-60999), where a client's outgoing connection could
# hold it, and clear of the common development ports (3000, 5000, 8000, 8080, 54321-54329).
DEMO_PORT = 15380

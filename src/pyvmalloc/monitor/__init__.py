"""Layer monitor (see docs/design.md): watching real hosts over time: dump diffs, a sample store, live watch, Prometheus metrics."""

"""Layer kernel (see docs/design.md)."""

"""Layer procfs (see shared DESIGN.md)."""

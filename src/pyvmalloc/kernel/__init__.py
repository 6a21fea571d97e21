"""Layer kernel (see shared DESIGN.md)."""

"""Layer analysis (see shared DESIGN.md)."""

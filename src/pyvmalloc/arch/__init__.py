"""Layer arch (see shared DESIGN.md)."""

"""Layer formats (see shared DESIGN.md)."""

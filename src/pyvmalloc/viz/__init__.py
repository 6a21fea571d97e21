"""Layer viz (see shared DESIGN.md)."""

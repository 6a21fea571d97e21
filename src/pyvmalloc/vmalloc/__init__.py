"""Layer vmalloc (see shared DESIGN.md)."""

"""Layer vmalloc (see docs/design.md)."""

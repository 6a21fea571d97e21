"""Layer viz (see docs/design.md)."""

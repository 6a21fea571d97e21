"""Layer cli (see shared DESIGN.md)."""

"""Layer cli (see docs/design.md)."""

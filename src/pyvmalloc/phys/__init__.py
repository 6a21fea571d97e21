"""Layer phys (see shared DESIGN.md)."""

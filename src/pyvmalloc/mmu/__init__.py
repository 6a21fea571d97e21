"""Layer mmu (see shared DESIGN.md)."""

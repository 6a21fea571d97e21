"""Layer course (see docs/design.md): teaching vmalloc: the quiz, the tour, and what they draw."""

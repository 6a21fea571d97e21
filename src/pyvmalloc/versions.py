"""Kernel versions: every rule that changed between Linux releases, with the commit that changed it."""

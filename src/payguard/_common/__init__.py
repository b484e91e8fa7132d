"""Helpers every stage uses: caches, money, text, time, the version."""

"""Features: what only an account's history can tell, computed before matching."""

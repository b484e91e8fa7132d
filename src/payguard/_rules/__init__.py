"""payguard._rules."""

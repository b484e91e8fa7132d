"""payguard._audit."""

"""payguard._common."""

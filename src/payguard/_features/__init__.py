"""payguard._features."""

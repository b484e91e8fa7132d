"""Tools for testing rule sets: the rule-test runner and hypothesis strategies for events."""

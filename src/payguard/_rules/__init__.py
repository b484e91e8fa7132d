"""The rule language: YAML rule files into a validated ``RuleSet``; imports no engine."""

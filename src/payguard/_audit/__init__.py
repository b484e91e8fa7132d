"""The audit trail: one tamper-evident, privacy-masked record for every evaluated event."""

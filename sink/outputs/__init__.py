"""Outputs: responses, rejects, the vault, the audit log, redaction, results and progress."""

"""Use cases (plan, apply, status, history, rollback): each owns its transaction; API and CLI call these."""

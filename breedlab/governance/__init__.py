"""Governance: who may promote, what evidence promotion needs, rollback, history and budgets."""

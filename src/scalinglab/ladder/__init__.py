"""Model ladders: small GPTs trained at several sizes and token budgets, recorded in the run store."""

"""Fitting: Huber objective on log residuals, batched multi-start L-BFGS, bootstrap, diagnostics."""

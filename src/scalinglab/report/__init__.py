"""Reports: plots of data, fit, extrapolation band and residuals."""

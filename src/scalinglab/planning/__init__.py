"""Predict and plan: loss forecasts, compute-optimal allocation, compute to reach a target loss."""

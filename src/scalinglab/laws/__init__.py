"""Scaling laws, one module per family. Each defines a :class:`scalinglab.laws.base.Law`."""

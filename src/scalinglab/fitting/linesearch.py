"""Constants of the L-BFGS iteration and its weak Wolfe line search, shared by the NumPy optimizer
(:mod:`scalinglab.fitting.optimize`) and the compiled Chinchilla kernel (:mod:`scalinglab.fitting.fused_kernels`).

A leaf module (it imports nothing), so both can use one set of constants without importing each other.
Values as in Nocedal & Wright 2006, Sec. 3.1 (c1 = 1e-4, c2 = 0.9 for quasi-Newton methods).
"""

MEMORY = 10  # L-BFGS history pairs (scipy's default)
ARMIJO_C1 = 1e-4  # sufficient-decrease constant c1
WOLFE_C2 = 0.9  # curvature condition c2 of the weak Wolfe line search
MAX_BACKTRACKS = 40  # bisections/doublings before a line search gives up

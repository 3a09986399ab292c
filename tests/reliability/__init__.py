"""Properties every model type keeps: faults, bad input, secrets, leaks, load."""

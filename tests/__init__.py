"""streamwrap's test suite: one folder per part of the package, helpers in ``support``."""

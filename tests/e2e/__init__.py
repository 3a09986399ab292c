"""The package as a user runs it: the command, real signals, a real model server."""

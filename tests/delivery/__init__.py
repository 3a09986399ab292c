"""Response events, sinks, deliver() and the console."""

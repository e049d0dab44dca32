"""Measuring collectives: the registry, bus-bandwidth factors, the timing loop, result rows and the table."""

"""Being a rank: the environment (the only reader of os.environ), starting ranks, the process group, the
watchdog and the signals."""

"""syncd: the daemon core. Never imports a concrete connector by name."""

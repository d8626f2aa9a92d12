"""The service-discovery toolbox behind the ``clusterdns`` subcommands (one module each)."""

"""One module per subcommand; see ``bench.cli`` for the contract each module fulfils."""

"""The audience API: people, accounts, segments and their members."""

"""Store-related subcommands (ingest, search, check); filled in with the stores."""


def add_commands(sub, add_runner_args) -> None:
    return None

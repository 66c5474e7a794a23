"""The `polycloud` command line: commands that display; the work happens in `services`."""

"""The command line: argument parsing and output. The only layer that prints."""

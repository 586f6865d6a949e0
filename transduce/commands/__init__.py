"""The command line: the parser, one module per command family, each calling
a library function."""

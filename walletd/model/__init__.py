"""Pure model code (no I/O, no trio, no sqlite3): the signing policy and its rate windows."""

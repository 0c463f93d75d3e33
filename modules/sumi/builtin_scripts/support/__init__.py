"""Helpers of the built-in scripts (a package, so the script loader, which imports the folder's own *.py
files, never takes them for scripts)."""

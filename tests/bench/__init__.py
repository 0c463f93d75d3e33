"""Tests of the benchmark scripts under bench/ (run end to end, never timed)."""

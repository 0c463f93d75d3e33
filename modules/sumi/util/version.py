"""Sumi's version, written into infotexts (`Version: sumi-0.1.0`)."""

VERSION = "sumi-0.1.0"

"""Sumi's built-in selectable scripts (A1111's Prompt matrix, X/Y/Z plot, Prompts from file or textbox)."""

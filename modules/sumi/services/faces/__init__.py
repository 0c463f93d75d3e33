"""Face restorers (GFPGAN, CodeFormer) found in the user's model folders."""

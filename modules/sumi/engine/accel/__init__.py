"""Speed and memory: precision, compilation, offloading, tiling."""

"""Turning raw pictures into training images: splitting tall or wide pictures into overlapping tiles,
cropping around a focal point, and centre crops at an automatically chosen size (A1111's dataset
preparation operations in the Extras tab). PIL/numpy/OpenCV only; the Extras scripts call these."""

"""Sumi's demo model: a procedural captioned dataset of coloured shapes (`scenes`), a reader that says
what an image shows (`reading`), and the script that trains the model Sumi ships."""

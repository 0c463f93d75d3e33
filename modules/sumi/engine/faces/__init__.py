"""Face restoration: RetinaFace detection, FFHQ alignment, restorer call and paste-back (torch/cv2)."""

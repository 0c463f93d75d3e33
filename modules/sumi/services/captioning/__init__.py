"""Captioning pictures from model files the user put in place: DeepDanbooru tags
(`models/torch_deepdanbooru`) and BLIP captions (`models/BLIP/<folder>`), for the img2img Interrogate
buttons, `POST /sdapi/v1/interrogate`, the Extras Caption script and A1111's facades."""

"""The engine: torch only. Loading a model never reaches a network, so the hub is forced offline."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

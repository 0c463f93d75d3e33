"""A1111's old name for `modules.infotext_utils` (renamed in 1.8): the same module object."""

import sys

from modules import infotext_utils

sys.modules[__name__] = infotext_utils

"""A module for the extraction pool's `preload` test: it notes the process that imported it."""

import os

LOADED_IN = os.getpid()

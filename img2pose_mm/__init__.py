"""img2pose_mm: img2pose 6DoF face pose estimation as MMDetection 3.x components.

``import img2pose_mm`` registers every component into mmdet's registries, so configs
load the package with::

    custom_imports = dict(imports=['img2pose_mm'], allow_failed_imports=False)
"""
from .utils import register_checkpoint_safe_globals
from .version import __version__

register_checkpoint_safe_globals()

from . import structures  # noqa: E402,F401  (pure geometry first)
from . import task_modules  # noqa: E402,F401
from . import losses  # noqa: E402,F401
from . import heads  # noqa: E402,F401
from . import datasets  # noqa: E402,F401
from . import evaluation  # noqa: E402,F401
from . import engine  # noqa: E402,F401
from . import visualization  # noqa: E402,F401
from . import test_time_augs  # noqa: E402,F401

__all__ = ['__version__']

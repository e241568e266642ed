"""img2pose_mm: img2pose 6DoF face pose estimation as MMDetection 3.x components.

``import img2pose_mm`` registers every component into mmdet's registries, so configs
load the package with::

    custom_imports = dict(imports=['img2pose_mm'], allow_failed_imports=False)
"""
# importing the sub-packages registers their components into mmdet's registries
from . import (  # noqa: F401
               backbones,
               data_preprocessors,
               datasets,
               dense_heads,
               engine,
               evaluation,
               heads,
               losses,
               necks,
               structures,
               task_modules,
               test_time_augs,
               visualization,
)
from .utils import register_checkpoint_safe_globals
from .version import __version__

# mmengine checkpoints (``--resume``) load under torch >= 2.6 without weights_only=False
register_checkpoint_safe_globals()

__all__ = ['__version__']

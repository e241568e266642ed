"""The dataset meta every face dataset and the API share: one class, ``face``."""

FACE_METAINFO = {'classes': ('face',), 'palette': [(0, 255, 0)]}

__all__ = ['FACE_METAINFO']

"""Independent references for the tests: img2pose's camera conventions written out by
hand in numpy and scipy (no img2pose_mm code), to check the package against."""
import numpy as np
from scipy.spatial.transform import Rotation


def image_camera(img_shape) -> np.ndarray:
    """``[[w + h, 0, w // 2], [0, w + h, h // 2], [0, 0, 1]]`` of an image ``(h, w)``."""
    h, w = img_shape
    return np.array([[w + h, 0, w // 2], [0, w + h, h // 2], [0, 0, 1]], dtype=np.float64)


def box_local_pose(pose, box, img_shape) -> np.ndarray:
    """img2pose's global -> box-local pose of one face (paper, Sec. 3.2).

    The box camera is the image camera with its principal point at the box centre
    ``(x1 + (x2 - x1) // 2, y1 + (y2 - y1) // 2)``; with ``B = K_box^-1 K`` the local
    translation is ``B t`` with its depth times ``(bw + bh) / (w + h)``, the local
    rotation the rotation nearest to ``B R`` (scipy's ``from_matrix``).
    """
    pose = np.asarray(pose, dtype=np.float64)
    x1, y1, x2, y2 = np.asarray(box, dtype=np.float64)
    camera = image_camera(img_shape)
    box_camera = camera.copy()
    box_camera[:2, 2] = [x1 + (x2 - x1) // 2, y1 + (y2 - y1) // 2]
    bridge = np.linalg.inv(box_camera) @ camera
    rotation = Rotation.from_matrix(bridge @ Rotation.from_rotvec(pose[:3]).as_matrix())
    translation = bridge @ pose[3:]
    translation[2] *= ((x2 - x1) + (y2 - y1)) / camera[0, 0]
    return np.concatenate([rotation.as_rotvec(), translation])


def project(points, pose, img_shape) -> np.ndarray:
    """Pixels ``(M, 2)`` of 3D points ``(M, 3)`` under a global pose, pinhole by hand."""
    pose = np.asarray(pose, dtype=np.float64)
    camera_points = np.asarray(points, np.float64) @ Rotation.from_rotvec(pose[:3]).as_matrix().T
    uvw = (camera_points + pose[3:]) @ image_camera(img_shape).T
    return uvw[:, :2] / uvw[:, 2:]

"""Writers of the real benchmark file formats, used to build test fixtures.

* WIDER FACE: ``wider_face_split/wider_face_val_bbx_gt.txt`` and the eval-tool
  ``.mat`` files (``event_list``, ``file_list``, ``face_bbx_list``, ``gt_list``: cell
  arrays of cell arrays, as MATLAB saves them) via ``scipy.io.savemat``.
* AFLW2000-3D: ``imageXXXXX.jpg`` + ``imageXXXXX.mat`` with ``Pose_Para`` (1x7) and
  ``pt3d_68`` (3x68) (plus the other variables of the release, zero-filled).
* BIWI: ``<seq>/frame_XXXXX_rgb.png`` + ``frame_XXXXX_pose.txt`` (3 rotation rows, a
  blank line, a translation row).
* 300W-LP: ``<subset>/<stem>.jpg`` + ``<stem>.mat`` with ``pt2d`` (2x68) and
  ``Pose_Para`` (1x7) (plus the other variables of the release, zero-filled), and
  ``landmarks/<subset>/<stem>_pts.mat`` with ``pts_2d`` / ``pts_3d`` (68x2).
"""
import os
import os.path as osp

import cv2
import numpy as np
from scipy.io import savemat


def cell(items):
    """A MATLAB column cell array ``{items{1}; items{2}; ...}`` for savemat."""
    arr = np.empty((len(items), 1), dtype=object)
    for i, item in enumerate(items):
        arr[i, 0] = item
    return arr


def write_image(path, height=48, width=64, seed=0):
    os.makedirs(osp.dirname(path), exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    assert cv2.imwrite(path, img)


# ----------------------------------------------------------------------------- WIDER
def write_wider(root, images, settings=None, write_images=False):
    """Write a WIDER FACE val layout under ``root``.

    Args:
        images: list of dicts ``event``, ``name``, ``boxes`` (K x 4 ``x y w h``),
            optional ``attrs`` (K x 6).
        settings: ``{setting: [keep indices (0-based) per image]}`` for the
            ``wider_<setting>_val.mat`` files (default: every face in every setting).
    Returns:
        (annotation txt path, ground-truth .mat folder)
    """
    split_dir = osp.join(root, 'wider_face_split')
    gt_dir = osp.join(root, 'eval_tools', 'ground_truth')
    os.makedirs(split_dir, exist_ok=True)
    os.makedirs(gt_dir, exist_ok=True)
    lines = []
    for img in images:
        boxes = np.asarray(img['boxes'], dtype=float).reshape(-1, 4)
        attrs = np.asarray(img.get('attrs', np.zeros((len(boxes), 6))), dtype=int)
        lines.append(f"{img['event']}/{img['name']}.jpg")
        lines.append(str(len(boxes)))
        if len(boxes) == 0:
            lines.append('0 0 0 0 0 0 0 0 0 0 ')
        for box, attr in zip(boxes, attrs):
            lines.append(' '.join(str(int(v)) for v in box) + ' '
                         + ' '.join(str(v) for v in attr) + ' ')
        if write_images:
            write_image(osp.join(root, 'WIDER_val', 'images', img['event'],
                                 img['name'] + '.jpg'))
    txt = osp.join(split_dir, 'wider_face_val_bbx_gt.txt')
    with open(txt, 'w') as f:
        f.write('\n'.join(lines) + '\n')

    events = list(dict.fromkeys(img['event'] for img in images))
    per_event = {e: [i for i, img in enumerate(images) if img['event'] == e] for e in events}
    savemat(osp.join(gt_dir, 'wider_face_val.mat'), {
        'event_list': cell(events),
        'file_list': cell([cell([images[i]['name'] for i in per_event[e]]) for e in events]),
        'face_bbx_list': cell([cell([np.asarray(images[i]['boxes'], dtype=float).reshape(-1, 4)
                                     for i in per_event[e]]) for e in events]),
    })
    if settings is None:
        all_faces = [list(range(len(img['boxes']))) for img in images]
        settings = {s: all_faces for s in ('easy', 'medium', 'hard')}
    for setting, keeps in settings.items():
        savemat(osp.join(gt_dir, f'wider_{setting}_val.mat'), {
            'gt_list': cell([cell([np.asarray(keeps[i], dtype=float).reshape(-1, 1) + 1
                                   for i in per_event[e]]) for e in events]),
        })
    return txt, gt_dir


# ----------------------------------------------------------------------------- AFLW2000
def write_aflw(folder, stem, pose_para, landmarks, height=120, width=120, seed=0):
    """``<stem>.jpg`` + ``<stem>.mat`` (``Pose_Para`` 1x7, ``pt3d_68`` 3x68, ...)."""
    write_image(osp.join(folder, stem + '.jpg'), height, width, seed)
    landmarks = np.asarray(landmarks, dtype=float)
    pt3d = np.concatenate([landmarks.T, np.zeros((1, 68))], 0)
    savemat(osp.join(folder, stem + '.mat'), {
        'Pose_Para': np.asarray(pose_para, dtype=float).reshape(1, 7),
        'pt3d_68': pt3d,
        'pt2d': landmarks[:21].T,
        'Shape_Para': np.zeros((199, 1)),
        'Exp_Para': np.zeros((29, 1)),
        'Illum_Para': np.zeros((1, 10)),
        'Color_Para': np.zeros((1, 7)),
        'Tex_Para': np.zeros((199, 1)),
        'roi': np.asarray([[0, 0, width, height]], dtype=float),
    })


# ----------------------------------------------------------------------------- BIWI
def write_biwi_frame(root, seq, frame, rotation, translation, height=48, width=64):
    """``<root>/<seq>/frame_<frame>_rgb.png`` and ``_pose.txt``."""
    seq_dir = osp.join(root, seq)
    write_image(osp.join(seq_dir, f'frame_{frame:05d}_rgb.png'), height, width, frame)
    rows = [' '.join(f'{v:.6f}' for v in row) + ' ' for row in np.asarray(rotation)]
    text = '\n'.join(rows) + '\n\n' + ' '.join(f'{v:.6f}' for v in translation) + ' \n'
    path = osp.join(seq_dir, f'frame_{frame:05d}_pose.txt')
    with open(path, 'w') as f:
        f.write(text)
    return path


# ----------------------------------------------------------------------------- 300W-LP
def write_300wlp(root, subset, stem, image, pose_para, pt2d, pts_2d=None, pts_3d=None,
                 overrides=None):
    """``<root>/<subset>/<stem>.jpg`` (``image``: BGR uint8, or None for no image) and
    ``<stem>.mat`` (``pt2d`` 2x68 from ``pt2d`` (68, 2), ``Pose_Para`` 1x7, ...);
    ``landmarks/<subset>/<stem>_pts.mat`` when ``pts_2d`` / ``pts_3d`` (68, 2) are given.
    ``overrides`` (dict) replace .mat variables as written (``None`` leaves one out)."""
    folder = osp.join(root, subset)
    os.makedirs(folder, exist_ok=True)
    if image is not None:
        assert cv2.imwrite(osp.join(folder, stem + '.jpg'), image)
    variables = {
        'pt2d': np.asarray(pt2d, dtype=float).T,
        'Pose_Para': np.asarray(pose_para, dtype=float).reshape(1, 7),
        'Shape_Para': np.zeros((199, 1)),
        'Exp_Para': np.zeros((29, 1)),
        'Tex_Para': np.zeros((199, 1)),
        'Color_Para': np.zeros((1, 7)),
        'Illum_Para': np.zeros((1, 10)),
        'roi': np.zeros((1, 4)),
    }
    variables.update(overrides or {})
    savemat(osp.join(folder, stem + '.mat'),
            {k: v for k, v in variables.items() if v is not None})
    if pts_2d is not None or pts_3d is not None:
        pts_dir = osp.join(root, 'landmarks', subset)
        os.makedirs(pts_dir, exist_ok=True)
        pts = {k: np.asarray(v, dtype=float) for k, v in
               (('pts_2d', pts_2d), ('pts_3d', pts_3d)) if v is not None}
        savemat(osp.join(pts_dir, stem + '_pts.mat'), pts)
    return osp.join(folder, stem + '.mat')

